"""User-facing errors. The CLI turns these into one clear line and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path


class AuspreadError(Exception):
    """Base class: an error a user can act on; its message is shown as is."""

    exit_code = 2


class DataError(AuspreadError):
    """Bad or missing input data. The message always names the file or folder and what is wrong."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable, so it crosses process pools (parallel frame-store builds) intact
        return (type(self), (self.path, self.problem))


class ConfigError(AuspreadError):
    """A bad configuration value or override."""


class RunError(AuspreadError):
    """A run folder or checkpoint that is missing, incomplete or not a run."""
