"""What the labelling page shows and stores: the manifest's frames, each frame's aligned face with the frames
around it, and the answers (written into the manifest at once, atomically; :mod:`auspread.labelling.manifest`).

The face is detected (MTCNN, :mod:`auspread.faces.detect`) on the suggested frame and aligned with the 5-point
similarity of ``auspread prepare`` (:mod:`auspread.faces.align`). The surrounding frames (about ``clip_seconds``
on each side) are warped with the *same* transform, so in the loop only the face moves, as FACS coders judge onset
and apex from motion. A frame without a detected face is shown whole (its centre square) with a note.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from auspread.errors import ConfigError, DataError
from auspread.labelling.frames import FrameReader
from auspread.labelling.manifest import LabelManifest

KEYS = "1234567890qwertyuiop"  # the shortcut of the i-th AU (by physical key: Digit1 … KeyP)
FACE_SIZE = 320  # aligned face side on the page (px)
CLIP_SIZE = 160  # side of the loop's frames


def look_for() -> dict[int, str]:
    d = json.loads(resources.files("auspread.labelling").joinpath("static/facs_look_for.json").read_text())
    return {int(k): v for k, v in d.items() if not k.startswith("_")}


def _jpeg(img: np.ndarray, quality: int = 88) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class LabelSession:
    """The state behind the page: one manifest, the AUs asked, readers for its sources, a small frame cache."""

    def __init__(self, manifest: str | Path, aus: Sequence[int] | None = None, detector=None,
                 clip_seconds: float = 0.5, clip_frames: int = 9, default_fps: float = 25.0):
        from auspread.aus import action_unit

        self.manifest = LabelManifest.read(manifest)
        have = self.manifest.aus
        if aus:
            missing = [a for a in aus if a not in have]
            if missing:
                raise ConfigError(f"--aus: {self.manifest.path} has no column for AU{', AU'.join(map(str, missing))} "
                                  f"(it has AUs {have})")
            self.aus = [int(a) for a in aus]
        else:
            self.aus = have
        if len(self.aus) > len(KEYS):
            raise ConfigError(f"the page shows at most {len(KEYS)} AUs at a time; choose them with --aus "
                              f"(the manifest has {len(self.aus)})")
        self.rows = self.manifest.frame_rows()
        if not self.rows:
            raise DataError(self.manifest.path, "lists no frame to label (run `auspread suggest-labels` first)")
        texts = look_for()
        self.au_info = []
        for i, a in enumerate(self.aus):
            try:
                name = action_unit(a).name
            except KeyError:
                name = "(not in the AU vocabulary)"
            self.au_info.append({"au": a, "code": f"AU{a:02d}", "name": name, "look_for": texts.get(a, ""),
                                 "key": KEYS[i]})
        self._detector = detector
        self._readers: dict[str, FrameReader] = {}
        self._cache: collections.OrderedDict[int, dict] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.clip_seconds = clip_seconds
        self.clip_frames = clip_frames
        self.default_fps = default_fps

    # --- state ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        m = self.manifest
        frames = []
        for k, i in enumerate(self.rows):
            r = m.rows[i]
            vals = m.values(i)
            frames.append({"k": k, "source": m.get(r, "source"), "frame": int(float(m.get(r, "frame"))),
                           "reason": m.get(r, "reason"), "answered": m.is_answered(i),
                           "values": {str(a): vals[a] for a in self.aus}})
        return {"manifest": str(m.path), "aus": self.au_info, "frames": frames, "first_open": m.first_open(),
                "answered": sum(f["answered"] for f in frames), "total": len(frames)}

    def answer(self, k: int, values: dict) -> dict:
        """Store the answer for frame ``k``: ``{"12": 1, "4": 0, "6": null}`` (null: not sure → stays unknown)."""
        if not isinstance(k, int) or not 0 <= k < len(self.rows):
            raise ValueError(f"frame {k!r} is not one of the {len(self.rows)} frames")
        if not isinstance(values, dict):
            raise ValueError("values must be an object {AU: 1, 0 or null}")
        parsed: dict[int, int | None] = {}
        for key, v in values.items():
            try:
                a = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{key!r} is not an AU number") from None
            if a not in self.aus:
                raise ValueError(f"AU{a} is not asked on this page")
            if v not in (0, 1, None) or isinstance(v, bool):
                raise ValueError(f"AU{a}: {v!r} must be 1, 0 or null")
            parsed[a] = v
        self.manifest.answer(self.rows[k], parsed)
        answered = sum(self.manifest.is_answered(i) for i in self.rows)
        return {"ok": True, "answered": answered, "total": len(self.rows), "first_open": self.manifest.first_open()}

    # --- pixels --------------------------------------------------------------------------------------------
    def _reader(self, source: str) -> FrameReader:
        r = self._readers.get(source)
        if r is None:
            p = Path(source) if Path(source).is_absolute() else self.manifest.path.parent / source
            r = self._readers[source] = FrameReader(p, self.default_fps)
        return r

    def _detector_(self):
        if self._detector is None:
            from auspread.faces.detect import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def frame(self, k: int, prefetch: bool = True) -> dict:
        """``{"face": JPEG data URL, "clip": [data URLs], "centre": position of the frame in the clip,
        "interval_ms", "note"}`` or ``{"error": message}`` (a source that cannot be read, a missing frame).
        With ``prefetch``, frame ``k + 1`` is then prepared in the background while the coder looks at ``k``."""
        if not 0 <= k < len(self.rows):
            return {"error": f"frame {k} is not one of the {len(self.rows)} frames"}
        out = self._frame(k)
        if prefetch and k + 1 < len(self.rows) and k + 1 not in self._cache:
            threading.Thread(target=self._frame, args=(k + 1,), daemon=True).start()
        return out

    def _frame(self, k: int) -> dict:
        with self._lock:
            if k in self._cache:
                self._cache.move_to_end(k)
                return self._cache[k]
            try:
                out = self._render(k)
            except DataError as e:
                out = {"error": str(e)}
            self._cache[k] = out
            while len(self._cache) > 6:
                self._cache.popitem(last=False)
            return out

    def _render(self, k: int) -> dict:
        from auspread.faces.align import alignment_matrices, centre_square_matrix, warp_many

        m = self.manifest
        r = m.rows[self.rows[k]]
        source, t = m.get(r, "source"), int(float(m.get(r, "frame")))
        reader = self._reader(source)
        radius = max(1, round(self.clip_seconds * reader.fps))
        offsets = sorted({int(round(o)) for o in np.linspace(-radius, radius, self.clip_frames)} | {0})
        frames = reader.window(t, offsets)
        centre = frames[t]
        det = self._detector_().detect([centre])[0]
        note = ""
        if len(det):
            mat = alignment_matrices(det.landmarks[:1].astype(np.float64), FACE_SIZE)[0]
        else:
            mat = centre_square_matrix(*centre.shape[:2], FACE_SIZE)
            note = "no face detected on this frame: the centre of the whole frame is shown"
        order = sorted(frames)
        crops = warp_many([frames[i] for i in order], np.repeat(mat[None], len(order), 0), FACE_SIZE)
        f = FACE_SIZE // CLIP_SIZE  # 2x2 mean pooling to the loop's size
        small = crops.reshape(len(crops), CLIP_SIZE, f, CLIP_SIZE, f, 3).mean((2, 4)).round().astype(np.uint8)
        step = (order[-1] - order[0]) / max(1, len(order) - 1)
        return {"k": k, "source": source, "frame": t, "face": _jpeg(crops[order.index(t)]),
                "clip": [_jpeg(s, 80) for s in small], "clip_frames": order, "centre": order.index(t),
                "interval_ms": int(round(1000 * max(step, 1) / reader.fps)), "note": note}

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
