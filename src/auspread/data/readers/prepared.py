"""Reader of an ``auspread prepare`` output folder: its ``auspread_index.json`` (written by
:func:`auspread.faces.prepare.prepare_dataset`), with image paths made absolute."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from auspread.data.index import ImageFiles, VideoIndex, index_from_json
from auspread.errors import ConfigError, DataError

INDEX_NAME = "auspread_index.json"


def read(root: str | Path, **options) -> VideoIndex:
    """The prepared folder ``root`` (or its index file) as a :class:`VideoIndex`; takes no options."""
    if options:
        raise ConfigError(f"the prepared reader takes no options, got {', '.join(options)}")
    return read_prepared(root)


def read_prepared(root: str | Path) -> VideoIndex:
    """Load ``OUT/auspread_index.json`` written by ``auspread prepare`` (image paths made absolute)."""
    root = Path(root)
    path = root / INDEX_NAME if root.is_dir() else root
    if not path.is_file():
        raise DataError(path, "not found (run `auspread prepare` first)")
    try:
        index = index_from_json(path.read_text())
    except (json.JSONDecodeError, KeyError, ValueError) as e:
        raise DataError(path, f"not a valid prepared index ({e})") from None
    base = path.parent
    videos = [dataclasses.replace(v, source=ImageFiles(tuple(str(base / p) for p in v.source.paths)))
              for v in index.videos]
    return dataclasses.replace(index, videos=videos, root=str(base))
