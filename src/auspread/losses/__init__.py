"""Losses, one per file (each cites the equation it implements)."""
