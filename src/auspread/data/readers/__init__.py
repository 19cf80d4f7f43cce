"""Dataset readers: every layout becomes one :class:`~auspread.data.index.VideoIndex`.

``read_dataset(name, root, **options)`` with ``name`` in ``bp4d``, ``bp4d+``, ``disfa``, ``lists``, ``generic``,
``prepared`` (an ``auspread prepare`` output) or ``auto`` (probe the layout with :func:`probe_dataset`). Options are
each reader's typed ``*Options`` fields (unknown options are a :class:`~auspread.errors.ConfigError`); bad data is a
:class:`~auspread.errors.DataError` naming the file and the problem. Layouts and label semantics: docs/datasets.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from auspread.data.index import VideoIndex
from auspread.data.readers import bp4d, bp4d_plus, disfa, generic, lists, prepared
from auspread.data.readers._common import find_child
from auspread.errors import ConfigError, DataError

PREPARED_INDEX = prepared.INDEX_NAME

READERS: dict[str, Callable[..., VideoIndex]] = {
    "bp4d": bp4d.read,
    "bp4d+": bp4d_plus.read,
    "disfa": disfa.read,
    "lists": lists.read,
    "generic": generic.read,
    "prepared": prepared.read,
}

_ALIASES = {"bp4dplus": "bp4d+", "bp4d_plus": "bp4d+", "bp4d-plus": "bp4d+", "mmse": "bp4d+", "list": "lists",
            "manifest": "generic"}


def reader_name(name: str) -> str:
    """Normalise a user's dataset name (``BP4D``, ``bp4d_plus``, ``DISFA``, ``auto`` …) to a reader key."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key != "auto" and key not in READERS:
        raise ConfigError(f"unknown dataset {name!r}; choose auto, {', '.join(READERS)}")
    return key


def probe_dataset(root: str | Path) -> str:
    """Guess which reader fits ``root`` (``bp4d``, ``bp4d+``, ``disfa``, ``lists``, ``generic`` or ``prepared``).

    A folder with ``auspread_index.json`` (``auspread prepare`` output) → prepared; a ``.csv``/``.json`` file or a
    folder with ``auspread_manifest.*`` → generic; ``ActionUnit_Labels/`` → disfa; ``AUCoding/`` occurrence CSVs →
    bp4d when their header is exactly ``0,1,…,N`` (BP4D), else bp4d+ (whose header holds AU numbers);
    ME-GraphAU/MDHR list files → lists.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(root, "does not exist")
    if root.is_file():
        if root.suffix.lower() in (".csv", ".json"):
            return "generic"
        raise DataError(root, "is a file but not a .csv/.json manifest; pass a dataset folder")
    if (root / PREPARED_INDEX).is_file():
        return "prepared"
    if any((root / n).is_file() for n in generic.MANIFEST_NAMES):
        return "generic"
    if find_child(root, ["ActionUnit_Labels"], want_dir=True) is not None:
        return "disfa"
    label_dir = bp4d.find_label_dir(root)
    if label_dir is not None:
        first = next(p for p in sorted(label_dir.iterdir()) if p.suffix.lower() == ".csv")
        try:
            header = [str(h).strip() for h in pd.read_csv(first, nrows=0).columns]
        except Exception as e:
            raise DataError(first, f"cannot read the CSV header ({e})") from None
        return "bp4d" if header == [str(i) for i in range(len(header))] else "bp4d+"
    if lists.list_folder(root) is not None:
        return "lists"
    if not any(root.iterdir()):
        raise DataError(root, "is an empty folder")
    raise DataError(
        root,
        "unknown dataset layout: expected AUCoding/AU_OCC/*.csv (BP4D, BP4D+), ActionUnit_Labels/ (DISFA), "
        "ME-GraphAU/MDHR list files (lists) or auspread_manifest.csv/.json (generic); see docs/datasets.md",
    )


def read_dataset(name: str, root: str | Path, **options) -> VideoIndex:
    """Read ``root`` with the reader ``name`` (``auto`` probes the layout)."""
    key = reader_name(name)
    if key == "auto":
        key = probe_dataset(root)
    root = Path(root)
    if not root.exists():
        raise DataError(root, "does not exist")
    return READERS[key](root, **options)


__all__ = ["READERS", "probe_dataset", "read_dataset", "reader_name"]
