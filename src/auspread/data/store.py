"""The packed frame store: decode each video once per size, then read memory-mapped uint8 frames.

Each video of a :class:`~auspread.data.index.VideoIndex` becomes one ``.npy`` file of shape ``(T, S, S, 3)`` uint8
(the whole frame resized to S×S with PIL's bilinear filter; inputs are aligned face crops, so no cropping) plus a
small ``.json`` with the source frame size (to scale landmarks). Files are keyed by a SHA-256 of the video's source
(kind, paths, decode indices, each file's size and mtime) and S, so two datasets, two folds sharing videos, or two
sizes never collide and shared videos are decoded once. Location: ``cache_dir`` or ``$AUSPREAD_CACHE/frames`` or
``~/.cache/auspread/frames``.

Building is atomic per video (write ``<key>.<pid>.partial``, then rename): a killed build leaves the finished
videos in place, and the next :meth:`FrameStore.open` builds only the rest. Reads open each ``np.memmap`` lazily
and per process, so a store can be handed to forked DataLoader workers.

Decoding: images with PIL (JPEGs at least 4·S wide use ``Image.draft`` for a fast DCT-domain downscale to no less
than 2·S before the bilinear resize, so pixels stay close to a full decode: tested);
videos with PyAV, sequentially. A video must contain every decode index the index asks for, and when the index
claims the whole video (indices ``0..T-1``) the decoded frame count must equal ``T``; otherwise a
:class:`~auspread.errors.DataError` names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from auspread.data.index import FrameSource, ImageFiles, VideoFile, VideoIndex
from auspread.errors import DataError
from auspread.io import atomic_write_text

STORE_VERSION = 1  # bump when the pixel pipeline changes: old entries are then never reused


def cache_root() -> Path:
    """``$AUSPREAD_CACHE``, else ``~/.cache/auspread``: the frame store, prepared face crops and synthetic data."""
    root = os.environ.get("AUSPREAD_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "auspread"


def default_cache_dir() -> Path:
    return cache_root() / "frames"


def _stat_key(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        raise DataError(path, "frame source not found") from None
    return [path, st.st_size, st.st_mtime_ns]


def source_key(source: FrameSource, size: int) -> str:
    """Hash of (source files with sizes and mtimes, decode indices, S, store version)."""
    if isinstance(source, ImageFiles):
        desc = {"kind": "images", "files": [_stat_key(p) for p in source.paths]}
    elif isinstance(source, VideoFile):
        desc = {"kind": "video", "file": _stat_key(source.path), "indices": list(source.indices)}
    else:  # pragma: no cover - guarded by the index types
        raise TypeError(f"unknown frame source {type(source).__name__}")
    desc.update(size=int(size), version=STORE_VERSION)
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


# --- decoding --------------------------------------------------------------------------------------------------
def load_image(path: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file → ``(S, S, 3)`` uint8 and its original ``(width, height)``."""
    try:
        with Image.open(path) as im:
            orig = im.size
            if im.format == "JPEG" and min(orig) >= 4 * size:
                im.draft("RGB", (2 * size, 2 * size))  # DCT-domain downscale, still ≥ 2·S before the resize
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8), orig
    except (OSError, ValueError) as e:
        raise DataError(path, f"cannot decode image ({e})") from None


def _resize_frame(im: Image.Image, size: int) -> np.ndarray:
    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _decode_images(source: ImageFiles, size: int, out: np.ndarray) -> tuple[int, int]:
    orig = (0, 0)
    for i, p in enumerate(source.paths):
        out[i], o = load_image(p, size)
        if i == 0:
            orig = o
    return orig


def _decode_video(source: VideoFile, size: int, out: np.ndarray) -> tuple[int, int]:
    import av

    wanted: dict[int, list[int]] = {}
    for pos, idx in enumerate(source.indices):
        wanted.setdefault(int(idx), []).append(pos)
    last = max(wanted) if wanted else -1
    whole = list(source.indices) == list(range(len(source.indices)))
    count = 0
    orig = (0, 0)
    try:
        with av.open(source.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if count in wanted:
                    arr = _resize_frame(frame.to_image(), size)
                    for pos in wanted[count]:
                        out[pos] = arr
                    orig = (frame.width, frame.height)
                count += 1
                if count > last and not whole:
                    break
    except av.error.FFmpegError as e:
        raise DataError(source.path, f"cannot decode video ({e})") from None
    if count <= last:
        raise DataError(source.path, f"video has {count} frames but the index needs frame {last} (0-based)")
    if whole and count != len(source.indices):
        raise DataError(source.path, f"video has {count} frames but the index (labels) has {len(source.indices)}")
    return orig


def build_video(source: FrameSource, size: int, target: str) -> dict:
    """Decode one video into ``target`` (.npy) atomically; returns its metadata (also written as .json)."""
    target_p = Path(target)
    tmp = target_p.with_name(f"{target_p.stem}.{os.getpid()}.partial")
    n = len(source)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    try:
        if isinstance(source, ImageFiles):
            orig = _decode_images(source, size, arr)
        else:
            orig = _decode_video(source, size, arr)
        arr.flush()
        del arr
        meta = {"frames": n, "size": size, "source_width": orig[0], "source_height": orig[1]}
        atomic_write_text(target_p.with_suffix(".json"), json.dumps(meta))
        os.replace(tmp, target_p)
        return meta
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the store -------------------------------------------------------------------------------------------------
class FrameStore:
    """Memory-mapped uint8 frames ``(T, S, S, 3)`` for every video of an index. Build with :meth:`open`.

    At most ``max_open`` memory maps are kept open per process (least recently used are dropped; each holds a
    file descriptor), so datasets with thousands of videos stay under the usual 1024-descriptor limit.
    """

    max_open = 256

    def __init__(self, paths: list[Path], meta: list[dict], size: int):
        self.paths = paths
        self.meta = meta
        self.size = size
        self._lock = threading.Lock()
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pid = os.getpid()

    @classmethod
    def open(
        cls,
        index: VideoIndex,
        size: int,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        workers: int = 1,
    ) -> "FrameStore":
        """Build what is missing (in ``workers`` processes when > 1), then return the store."""
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        root = root / f"s{int(size)}"
        keys = [source_key(v.source, size) for v in index.videos]
        paths = [root / k[:2] / f"{k}.npy" for k in keys]
        todo = [i for i, p in enumerate(paths) if not (p.is_file() and p.with_suffix(".json").is_file())]
        for i in todo:
            paths[i].parent.mkdir(parents=True, exist_ok=True)
            for stale in paths[i].parent.glob(f"{keys[i]}.*.partial"):
                pid = stale.name.split(".")[-2]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    stale.unlink(missing_ok=True)
        if todo:
            from auspread.progress import progress_bar

            bar = progress_bar(total=sum(len(index.videos[i]) for i in todo), unit="frame",
                               desc=f"frame store {size}px ({len(todo)} videos)", disable=not progress)
            if workers > 1 and len(todo) > 1:
                with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as ex:
                    futs = {ex.submit(build_video, index.videos[i].source, size, str(paths[i])): i for i in todo}
                    for f in as_completed(futs):
                        f.result()
                        bar.update(len(index.videos[futs[f]]))
            else:
                for i in todo:
                    build_video(index.videos[i].source, size, str(paths[i]))
                    bar.update(len(index.videos[i]))
            bar.close()
        meta = []
        for i, p in enumerate(paths):
            m = json.loads(p.with_suffix(".json").read_text())
            if m["frames"] != len(index.videos[i]) or m["size"] != size:
                raise DataError(p, f"frame store entry does not match {index.videos[i].video_id}; delete it")
            meta.append(m)
        return cls(paths, meta, size)

    # --- pickling: memmaps are reopened lazily in each process ---------------------------------------------
    def __getstate__(self) -> dict:
        return {"paths": self.paths, "meta": self.meta, "size": self.size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["paths"], state["meta"], state["size"])

    def _map(self, video_i: int) -> np.ndarray:
        if os.getpid() != self._pid:  # forked: do not share the parent's maps
            self._maps, self._pid, self._lock = OrderedDict(), os.getpid(), threading.Lock()
        with self._lock:
            m = self._maps.get(video_i)
            if m is None:
                m = np.load(self.paths[video_i], mmap_mode="r")
                self._maps[video_i] = m
                while len(self._maps) > self.max_open:
                    self._maps.popitem(last=False)  # readers still holding it keep it alive
            else:
                self._maps.move_to_end(video_i)
        return m

    # --- reads ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def num_frames(self, video_i: int) -> int:
        return int(self.meta[video_i]["frames"])

    def source_size(self, video_i: int) -> tuple[int, int]:
        """``(width, height)`` of the source frames (first frame), to scale source-pixel landmarks to S."""
        return int(self.meta[video_i]["source_width"]), int(self.meta[video_i]["source_height"])

    def frames(self, video_i: int, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(k, S, S, 3)`` uint8 copies of the given frame positions."""
        pos = np.asarray(positions, dtype=np.int64)
        return np.ascontiguousarray(self._map(video_i)[pos])
