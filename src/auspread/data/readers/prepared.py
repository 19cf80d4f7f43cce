"""Reader of an ``auspread prepare`` output folder: its ``auspread_index.json`` (written by
:func:`auspread.faces.prepare.prepare_dataset`), with image paths made absolute; and
:func:`with_prepared_crops`, which puts a prepared folder's face crops under a raw dataset's index."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from auspread.data.index import ImageFiles, VideoFile, VideoIndex, index_from_json
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
    return dataclasses.replace(index, videos=videos, root=str(base), face_crops=True)


def default_prepared_dir(index: VideoIndex, reader: str) -> Path:
    """Where ``auspread prepare`` writes by default and training looks for the face crops of a camera-frame dataset:
    ``$AUSPREAD_CACHE/prepared/<reader>-<root name>-<hash>``, the hash taken over the reader and the absolute paths
    of the videos' frame sources (video files, image folders), so DISFA's two cameras or two copies never share
    a folder while reader options that change only labels (DISFA's threshold) do."""
    from auspread.data.store import cache_root

    places = sorted({os.path.abspath(v.source.path if isinstance(v.source, VideoFile)
                                     else os.path.dirname(v.source.paths[0]) if len(v.source) else v.video_id)
                     for v in index.videos})
    key = hashlib.sha256(json.dumps([reader, places]).encode()).hexdigest()[:12]
    stem = Path(index.root).stem or "data"
    return cache_root() / "prepared" / f"{reader.replace('+', 'plus')}-{stem}-{key}"


def with_prepared_crops(raw: VideoIndex, prepared: VideoIndex) -> VideoIndex:
    """``raw``'s videos, frames and labels with ``prepared``'s pixels (the aligned crops), crop-pixel landmarks and
    ``meta["no_face_frames"]``. ``prepared`` is an ``auspread prepare`` output of the same data; labels are taken
    from ``raw`` (read just now), so edited labels need no new preparation. A raw video the prepared folder lacks,
    or holds with other frame numbers, is a :class:`DataError` naming the prepared folder."""
    by_id = {v.video_id: v for v in prepared.videos}
    videos = []
    for v in raw.videos:
        p = by_id.get(v.video_id)
        if p is None:
            raise DataError(prepared.root, f"has no face crops of {v.video_id} (rerun `auspread prepare` into it)")
        if not np.array_equal(p.frame_numbers, v.frame_numbers):
            raise DataError(prepared.root, f"holds other frames of {v.video_id} than {raw.root} lists now "
                                           f"(delete the folder to prepare it again)")
        meta = {**v.meta, "no_face_frames": list(p.meta.get("no_face_frames") or []),
                "prepared_from": p.meta.get("prepared_from")}
        videos.append(dataclasses.replace(v, source=p.source, landmarks=p.landmarks, meta=meta))
    return dataclasses.replace(raw, videos=videos, face_crops=True)
