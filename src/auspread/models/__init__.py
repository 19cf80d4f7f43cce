"""Networks of each method (no losses here) and the shared backbones."""
