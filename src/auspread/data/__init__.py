"""Data layer: readers → VideoIndex → label policies → samplers → batches (see docs/architecture.md)."""
