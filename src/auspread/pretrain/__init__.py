"""Self-supervised pretraining of a method's trunk on the unlabelled frames of a fold's training subjects
(``auspread pretrain``; docs/methods/pretraining.md).

- :mod:`.config`: the typed run config (recipe, data, optimiser) and the cache key;
- :mod:`.views`: face augmentations and the two-view batches (frames of the training split only);
- :mod:`.byol`: the BYOL objective with temporal positives as a :class:`~auspread.methods.base.Method` for the
  engine's one loop (not registered as a detector);
- :mod:`.run`: the run (resume, torchrun, trunk checkpoint, cache), ``pretrained=pretrain:auto``, the linear probe.
"""
