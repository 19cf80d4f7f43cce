"""Frames of one manifest source (a video file or a folder of frame images), addressed by the generic manifest's
0-based frame position: the decode order of a video (as :class:`auspread.media.VideoSource` counts it), or the
position among the folder's images in natural name order (as the generic reader lists them).

Videos are decoded forward only, and a frame is converted to RGB only when it is wanted, so scanning every K-th
frame of a long video costs one decoding pass. :class:`FrameReader.window` keeps the decoder open between calls:
the labelling page walks a video's suggested frames in time order, so one pass serves them all (a step backwards
reopens the file).
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from auspread.data.readers._common import IMAGE_SUFFIXES, natural_key
from auspread.errors import DataError
from auspread.media import VideoSource, load_image


def image_files(folder: Path) -> list[Path]:
    """A frame folder's images in the generic manifest's order."""
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                   key=natural_key)
    if not files:
        raise DataError(folder, "frame folder contains no images (.jpg, .jpeg, .png, .bmp)")
    return files


class FrameReader:
    """Frames of one source. ``fps`` is the video's rate (``default_fps`` for frame folders)."""

    def __init__(self, path: str | Path, default_fps: float = 25.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cursor = None  # (container, frame iterator, next index, recent frames) of an open video
        self.num_frames: int | None = None  # known after a complete scan
        if self.path.is_dir():
            self.kind = "folder"
            self.files = image_files(self.path)
            self.fps = float(default_fps)
        elif self.path.is_file():
            self.kind = "video"
            vs = VideoSource(self.path)
            vs.probe()  # DataError for files that are not videos; reads the frame rate
            self.fps = vs.fps
        else:
            raise DataError(self.path, "no such video or frame folder")

    # --- scanning --------------------------------------------------------------------------------------------
    def scan(self, wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame, RGB image)`` for every frame position where ``wanted(frame)``, in order. Unreadable images
        of a folder are skipped (they cannot be labelled). After a complete pass, ``num_frames`` holds the number
        of frames (decoded frames of a video)."""
        if self.kind == "folder":
            self.num_frames = len(self.files)
            for i, p in enumerate(self.files):
                if wanted(i):
                    try:
                        yield i, load_image(str(p))
                    except DataError:
                        continue
            return
        container, frames = self._open_video()
        n = 0
        try:
            for i, vf in enumerate(frames):
                n = i + 1
                if wanted(i):
                    yield i, vf.to_ndarray(format="rgb24")
        finally:
            container.close()
        self.num_frames = n

    def _open_video(self):
        import av

        try:
            container = av.open(str(self.path))
        except Exception as e:
            raise DataError(self.path, f"not a readable video ({type(e).__name__}: {e})") from None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"

        def frames():
            try:
                yield from container.decode(stream)
            except (GeneratorExit, KeyboardInterrupt):
                raise
            except Exception as e:
                raise DataError(self.path, f"decoding failed ({type(e).__name__}: {e})") from None

        return container, frames()

    # --- windows around one frame (the labelling page) ---------------------------------------------------------
    def window(self, center: int, offsets: list[int]) -> dict[int, np.ndarray]:
        """The frames ``center + o`` for ``o`` in ``offsets`` that exist, as ``{frame: RGB image}``. Raises
        :class:`DataError` when the source has no frame ``center``."""
        wanted = sorted({center + o for o in offsets if center + o >= 0} | {center})
        if self.kind == "folder":
            if center >= len(self.files):
                raise DataError(self.path, f"has no frame {center} (it holds {len(self.files)} images)")
            return {i: load_image(str(self.files[i])) for i in wanted if i < len(self.files)}
        with self._lock:
            return self._video_window(center, wanted)

    def _video_window(self, center: int, wanted: list[int]) -> dict[int, np.ndarray]:
        keep = wanted[-1] - wanted[0] + 1
        if self._cursor is not None:  # frames already passed must still be in the recent buffer
            passed = {i for i, _ in self._cursor[3]}
            if any(i < self._cursor[2] and i not in passed for i in wanted):
                self.close()
        if self._cursor is None:
            container, frames = self._open_video()
            self._cursor = [container, frames, 0, collections.deque(maxlen=keep)]
        cur = self._cursor
        recent: collections.deque = cur[3]
        if recent.maxlen < keep:
            cur[3] = recent = collections.deque(recent, maxlen=keep)
        while cur[2] <= wanted[-1]:
            vf = next(cur[1], None)
            if vf is None:
                break
            if cur[2] >= wanted[0]:
                recent.append((cur[2], vf.to_ndarray(format="rgb24")))
            cur[2] += 1
        have = dict(recent)
        if center not in have:
            total = cur[2]
            self.close()
            raise DataError(self.path, f"has no frame {center} (it decodes {total} frames)")
        return {i: have[i] for i in wanted if i in have}

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor[0].close()
            self._cursor = None
