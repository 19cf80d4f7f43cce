"""Helpers shared by the dataset readers: typed options, case-insensitive path lookup, numbered image folders,
video frame counts without decoding pixels, AU selection and the ``Landmarks_68`` side files."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterable, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from auspread.aus import dataset_aus
from auspread.errors import ConfigError, DataError

log = logging.getLogger("auspread.data")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


class ReaderOptions(BaseModel):
    """Base of every reader's options: unknown keys are an error, not silently ignored.

    ``face_crops``: whether the frames are aligned face crops (``VideoIndex.face_crops``); ``None`` lets the reader
    decide from the layout (docs/datasets.md, "Face crops or camera frames")."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    face_crops: bool | None = None


def is_synthetic_tree(root: Path) -> bool:
    """Whether ``root`` was written by the synthetic benchmark (its ``manifest.json`` names ``auspread.data.synth``):
    its frames are face crops already (the face fills the square frame; no camera background)."""
    m = Path(root) / "manifest.json"
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("generator") == "auspread.data.synth"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
        return False


O = TypeVar("O", bound=ReaderOptions)


def parse_options(model: type[O], options: dict, reader: str) -> O:
    try:
        return model(**options)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in e.errors())
        if any(err["type"] == "extra_forbidden" for err in e.errors()):
            problems += f" (valid options: {', '.join(model.model_fields)})"
        raise ConfigError(f"bad option for the {reader} reader: {problems}") from None


def require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(path, f"{what} does not exist")
    if not path.is_dir():
        raise DataError(path, f"{what} is not a folder")
    return path


def children(folder: Path) -> dict[str, Path]:
    """``{lower-case name: path}`` of a folder's entries (names differ only in case between dataset copies)."""
    try:
        return {p.name.lower(): p for p in sorted(folder.iterdir())}
    except OSError:
        return {}


def find_child(folder: Path, names: Iterable[str], want_dir: bool | None = None) -> Path | None:
    """The first entry of ``folder`` whose name matches one of ``names`` case-insensitively."""
    entries = children(folder)
    for name in names:
        p = entries.get(name.lower())
        if p is not None and (want_dir is None or p.is_dir() == want_dir):
            return p
    return None


_NUM = re.compile(r"(\d+)$")


def numbered_images(folder: Path) -> dict[int, Path]:
    """``{frame number: path}`` for image files whose stem ends in a number (``643.jpg``, ``0643.jpg``,
    ``SN003_0.png``). Works for any zero padding, also mixed within one folder. If two files share a number
    (``0643.jpg`` and ``0643.bmp``), the suffix earlier in ``IMAGE_SUFFIXES`` wins (JPEG frames over BMP textures)."""
    best: dict[int, tuple[int, str]] = {}
    rank = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
    for name in sorted(os.listdir(folder)):
        stem, dot, ext = name.rpartition(".")
        r = rank.get("." + ext.lower()) if dot else None
        if r is None or name.startswith("."):
            continue
        m = _NUM.search(stem)
        if m:
            n = int(m.group(1))
            if n not in best or r < best[n][0]:
                best[n] = (r, name)
    return {n: folder / name for n, (_, name) in best.items()}


def padding_of(paths: Iterable[Path]) -> str:
    """Describe the zero padding seen in image names: ``"none"``, ``"3"``, ``"4"`` or ``"mixed"``."""
    widths = set()
    for p in paths:
        m = _NUM.search(p.stem)
        if m and m.group(1).startswith("0") and len(m.group(1)) > 1:
            widths.add(str(len(m.group(1))))
        elif m:
            widths.add("none")
    if not widths:
        return "none"
    if len(widths - {"none"}) > 1:
        return "mixed"
    fixed = widths - {"none"}
    return fixed.pop() if fixed else "none"


def natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name))


def select_aus(dataset: str, aus: Iterable[int] | None) -> tuple[int, ...]:
    """The AU columns to read: the benchmark set by default, else any subset of the AUs the dataset codes."""
    info = dataset_aus(dataset)
    if aus is None:
        return info.aus
    chosen = tuple(int(a) for a in aus)
    bad = [a for a in chosen if a not in info.coded_aus]
    if bad:
        raise ConfigError(
            f"{info.name} does not code AU{', AU'.join(map(str, bad))}; coded AUs: {', '.join(map(str, info.coded_aus))}"
        )
    if len(set(chosen)) != len(chosen) or not chosen:
        raise ConfigError(f"aus must be a non-empty list without repeats, got {list(chosen)}")
    return chosen


def count_video_frames(path: Path, mode: str = "metadata") -> int:
    """Number of frames in a video.

    ``mode="metadata"`` (default) trusts the container's frame count (``stream.frames``, the AVI/MP4 header) and
    falls back to counting packets when the container records none; ``"packets"`` counts the video packets
    (demuxing only, no pixel decoding: one packet per frame for the codecs these datasets use); ``"decode"``
    decodes every frame (slow, exact; for containers whose header and packets disagree with decoders).
    Raises :class:`DataError` if the file cannot be opened.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "has no video stream")
            stream = container.streams.video[0]
            n = int(stream.frames or 0)
            if mode == "metadata" and n > 0:
                return n
            if mode == "decode":
                return sum(1 for _ in container.decode(stream))
            return sum(1 for pkt in container.demux(stream) if pkt.size > 0)
    except DataError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, FileNotFoundError, ...)
        raise DataError(path, f"cannot be read as a video ({e.__class__.__name__}: {e})") from None


def video_fps(path: Path) -> float | None:
    import av

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else None
    except Exception:
        return None


def landmarks_path(root: Path, video_id: str) -> Path:
    return root / "Landmarks_68" / (video_id.replace("/", "_") + ".npz")


def attach_landmarks(root: Path, video_id: str, frame_numbers: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Landmarks for a record from ``<root>/Landmarks_68/<video_id with / → _>.npz`` if the file exists.

    Rows are matched by frame number; frames the file lacks get NaN. If no frame number matches but the file
    has exactly one row per frame, rows are taken in order (the note says so). Returns ``(points, note)``.
    """
    path = landmarks_path(root, video_id)
    if not path.is_file():
        return None, None
    try:
        with np.load(path) as z:
            fns = np.asarray(z["frame_numbers"], dtype=np.int64)
            pts = np.asarray(z["points"], dtype=np.float32)
    except Exception as e:
        raise DataError(path, f"is not a landmark file with 'frame_numbers' and 'points' ({e})") from None
    if pts.ndim != 3 or pts.shape[-1] != 2 or len(pts) != len(fns):
        raise DataError(path, f"'points' must be (T, P, 2) with T = len(frame_numbers), got {pts.shape} and {len(fns)}")
    pos = {int(f): i for i, f in enumerate(fns)}
    rows = np.array([pos.get(int(f), -1) for f in frame_numbers])
    if (rows < 0).all() and len(pts) == len(frame_numbers):
        return pts.copy(), "landmarks aligned by position (no frame number matched)"
    out = np.full((len(frame_numbers),) + pts.shape[1:], np.nan, dtype=np.float32)
    ok = rows >= 0
    out[ok] = pts[rows[ok]]
    note = None if ok.all() else f"{int((~ok).sum())} frames have no landmarks (NaN)"
    return out, note
