"""Video and image inputs: video files, images, folders and globs, read lazily (a one-hour video is never held in
memory). Used by ``auspread predict`` and ``auspread prepare`` (below both ``faces`` and ``predict``).

Expansion rules (:func:`expand_inputs`):

* a video file (any extension PyAV can open; see :data:`VIDEO_EXTS`) → one sequence;
* an image file → a one-frame sequence;
* a folder → each video in it is its own sequence, and all its images (natural sort order) form **one** sequence
  (like OpenFace's ``-fdir``), so a folder of extracted frames is treated as a video;
* a glob (``"clips/*.mp4"``) → its matches, expanded by the same rules.

Each :class:`Source` yields :class:`Frame` objects one at a time. A video that fails part-way (truncated, corrupt)
yields every frame that decoded and then raises :class:`~auspread.errors.DataError` naming the file; a video that
decodes fewer frames than its container declares is reported as truncated.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from auspread.errors import DataError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Frame:
    index: int  # 0-based decode index within the source
    timestamp: float  # seconds
    image: np.ndarray | None  # (H, W, 3) uint8 RGB; None for an unreadable image in an image sequence
    error: str | None = None  # why ``image`` is None


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


class Source:
    """One sequence of frames with a name (used for output file names)."""

    name: str
    path: str
    kind: str
    fps: float

    def frames(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def num_frames_hint(self) -> int | None:
        return None

    def count_frames(self) -> int | None:
        """The frame count found by reading the source without decoding it (``None``: unknown)."""
        return self.num_frames_hint()


class VideoSource(Source):
    kind = "video"

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.name = Path(path).stem
        self.fps = 30.0
        self._declared: int | None = None

    def _open(self):
        import av

        p = Path(self.path)
        if not p.is_file():
            raise DataError(p, "file not found")
        if p.stat().st_size == 0:
            raise DataError(p, "empty file (0 bytes)")
        try:
            container = av.open(self.path)
        except Exception as e:  # av.error.InvalidDataError, OSError, ...
            raise DataError(p, f"not a readable video ({type(e).__name__}: {e})") from None
        if not container.streams.video:
            container.close()
            raise DataError(p, "contains no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self._declared = int(stream.frames) if stream.frames else None
        return container, stream

    def probe(self) -> None:
        """Open and close the file: raises :class:`DataError` for files that are not videos."""
        c, _ = self._open()
        c.close()

    def num_frames_hint(self) -> int | None:
        return self._declared

    def count_frames(self) -> int | None:
        """The video packets holding data, demuxed without decoding: an upper bound on the decoded frames (an edit
        list can drop some); ``None`` when the file cannot be read."""
        import av

        try:
            with av.open(self.path) as c:
                return max(1, sum(1 for p in c.demux(c.streams.video[0]) if p.size))
        except Exception:  # noqa: BLE001 - unreadable here: decoding reports it, naming the file
            return None

    def frames(self) -> Iterator[Frame]:
        container, stream = self._open()
        n = packets = 0
        t0: float | None = None

        def emit(vf):
            nonlocal n, t0
            t = vf.time
            if t is not None and t0 is None:
                t0 = float(t)
            ts = (float(t) - t0) if (t is not None and t0 is not None) else n / self.fps
            fr = Frame(n, ts, vf.to_ndarray(format="rgb24"))
            n += 1
            return fr

        try:
            try:
                for pkt in container.demux(stream):
                    if pkt.size:
                        packets += 1
                    for vf in pkt.decode():  # the final empty packet flushes the decoder
                        yield emit(vf)
            except (GeneratorExit, KeyboardInterrupt):
                raise
            except Exception as e:
                raise DataError(self.path, f"decoding failed after {n} frames ({type(e).__name__}: {e})") from None
        finally:
            container.close()
        if n == 0:
            raise DataError(self.path, "no frame could be decoded")
        # a file cut short has fewer packets than its index declares (decoded frames may legitimately be fewer
        # than packets: edit lists drop some, so frames are not compared)
        if self._declared and packets < self._declared:
            raise DataError(self.path, f"truncated: {packets} of the {self._declared} video packets the file "
                                       f"declares are present ({n} frames decoded)")


class ImageSequence(Source):
    """One or more image files treated as consecutive frames (``fps`` is nominal, for timestamps)."""

    kind = "images"

    def __init__(self, paths: list[str], name: str, fps: float = 30.0):
        self.paths = list(paths)
        self.path = str(Path(paths[0]).parent) if len(paths) > 1 else paths[0]
        self.name = name
        self.fps = fps

    def num_frames_hint(self) -> int | None:
        return len(self.paths)

    def frames(self) -> Iterator[Frame]:
        """One frame per path; an unreadable image still yields its frame (``image=None`` and the error), so one
        bad file in a folder of frames costs one row, not the sequence."""
        for i, p in enumerate(self.paths):
            try:
                yield Frame(i, i / self.fps, load_image(p))
            except DataError as e:
                yield Frame(i, i / self.fps, None, str(e))


def load_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except Exception as e:
        raise DataError(path, f"not a readable image ({type(e).__name__}: {e})") from None


def _kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    return None


def expand_inputs(inputs: list[str], image_fps: float = 30.0) -> list[Source]:
    """Turn command-line inputs into sources (see the module docstring). Raises :class:`DataError` when an input
    does not exist, a folder holds no video or image, or nothing at all was found."""
    sources: list[Source] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted((f for f in p.iterdir() if f.is_file()), key=lambda f: _natural_key(f.name))
            videos = [f for f in files if _kind(f) == "video"]
            images = [str(f) for f in files if _kind(f) == "image"]
            if not videos and not images:
                raise DataError(p, "folder contains no video or image files "
                                   f"(videos: {', '.join(sorted(VIDEO_EXTS))}; images: {', '.join(sorted(IMAGE_EXTS))})")
            sources.extend(VideoSource(f) for f in videos)
            if images:
                sources.append(ImageSequence(images, p.name or "images", image_fps))
        elif p.is_file():
            k = _kind(p)
            if k == "image":
                sources.append(ImageSequence([str(p)], p.stem, image_fps))
            else:  # unknown extensions are tried as videos (PyAV decides)
                sources.append(VideoSource(p))
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=True), key=_natural_key)
            if not matches:
                raise DataError(raw, "pattern matches no file")
            sources.extend(expand_inputs(matches, image_fps))
        else:
            raise DataError(p, "no such file or folder")
    _dedupe_names(sources)
    return sources


def _dedupe_names(sources: list[Source]) -> None:
    """Make output names unique (``clip``, ``clip_2``, …) when two inputs share a stem."""
    seen: dict[str, int] = {}
    for s in sources:
        k = s.name
        if k in seen:
            seen[k] += 1
            s.name = f"{k}_{seen[k]}"
        else:
            seen[k] = 1
