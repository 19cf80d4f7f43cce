"""Engine: typed configs, the training loop, checkpoints, logging and distribution."""
