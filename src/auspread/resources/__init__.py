"""Packaged data files (AU vocabulary, standard folds)."""
