"""Face tracking between detections, and IoU box tracking for stable face ids.

:class:`FaceTracker` (``auspread predict``, main face): full MTCNN detection runs on scheduled key frames (every K-th
frame); on the frames in between, the face is followed with MTCNN's O-net alone
(:meth:`~auspread.faces.detect.FaceDetector.refine`) on the square around the previous frame's face box, which gives
this frame's box, probability and 5 landmarks for one 48×48 network pass. A full detection runs early, on the frame
itself, when

* the tracked face's O-net probability drops below ``min_score`` (the face left, turned away or is occluded),
* the box jumps: its centre moves more than ``max_shift`` × its side, or its side changes by more than
  ``max_zoom`` (relative), from one frame to the next (the track slipped),
* the scene cuts: the mean absolute grey-level change between consecutive frames, on a copy subsampled 8× in each
  direction, exceeds ``scene_cut`` (0–255 scale).

Without a face to follow, a full detection runs early on a frame that differs from the last frame detected on by
more than ``appear`` (the same grey-level measure): a face walking in, or a change of scene too gradual for
``scene_cut``. A static scene without a face costs one detection per key frame only.

:class:`IoUTracker` (``--all-faces``): greedy matching, each new box goes to the live track with the highest IoU
above ``iou_threshold`` (pairs taken in decreasing IoU order); unmatched boxes start new tracks with the next integer
id (0, 1, 2, …); a track not matched for more than ``max_missed`` detection rounds ends. Ids are never reused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from auspread.faces.detect import Detections


class TrackOptions(BaseModel):
    """When :class:`FaceTracker` gives up following a face and runs a full detection on the frame."""

    model_config = ConfigDict(extra="forbid")
    min_score: float = Field(0.9, ge=0, le=1)  # O-net probability of the tracked face
    max_shift: float = Field(0.25, gt=0)  # centre movement in one frame, in box sides
    max_zoom: float = Field(0.25, gt=0)  # relative change of the box side in one frame
    scene_cut: float = Field(30.0, gt=0)  # mean |Δ grey| (0–255) of 8×-subsampled consecutive frames
    appear: float = Field(6.0, gt=0)  # no face followed: the same measure against the last frame detected on


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A grey copy subsampled 8× in each direction (float32), for the scene-cut test."""
    return image[::8, ::8].astype(np.float32).mean(-1)


def scene_change(a: np.ndarray | None, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails (infinite when there is no previous one of that size)."""
    if a is None or a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).mean())


def box_jump(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(centre shift in units of ``a``'s side, relative side change) from box ``a`` to box ``b`` (x1, y1, x2, y2)."""
    sa = max(float(np.sqrt(max((a[2] - a[0]) * (a[3] - a[1]), 1e-6))), 1e-3)
    sb = float(np.sqrt(max((b[2] - b[0]) * (b[3] - b[1]), 0.0)))
    shift = float(np.linalg.norm((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / sa
    return shift, abs(sb / sa - 1)


class FaceTracker:
    """Follows the main (largest) face of one sequence, or with ``all_faces`` every face of the last detection,
    between full detections (see the module docstring).

    ``step(frame, key_detections)`` is called once per frame in order; ``key_detections`` is the frame's full MTCNN
    result on a scheduled key frame, else ``None``. ``counts`` tallies what happened on each frame: ``key``
    (scheduled detection), ``tracked``, ``lost``/``jump``/``cut``/``change`` (early detection, by cause), ``idle``
    (no face to follow, no detection). With ``all_faces`` one lost face re-detects the frame; a new face next to
    followed ones waits for the next key frame."""

    def __init__(self, detector, options: TrackOptions | None = None, all_faces: bool = False):
        self.detector = detector
        self.options = options or TrackOptions()
        self.all_faces = all_faces
        self._faces: Detections | None = None  # followed faces (never empty: None instead)
        self._thumb: np.ndarray | None = None
        self._detected_thumb: np.ndarray | None = None  # the last frame a full detection ran on
        self.counts: Counter = Counter()

    def step(self, frame: np.ndarray, key: Detections | None) -> tuple[Detections, bool]:
        """The faces in ``frame`` (main face: 0 or 1 entries; largest first after a detection) and whether they were
        tracked rather than detected."""
        o = self.options
        thumb = thumbnail(frame)
        cut = self._thumb is not None and scene_change(self._thumb, thumb) > o.scene_cut
        self._thumb = thumb
        if key is None:
            cause = "cut" if cut else None
            if cause is None and self._faces is not None:
                prev = self._faces.boxes
                r = self.detector.refine(frame, prev)
                if (r.scores < o.min_score).any():
                    cause = "lost"
                elif any(sh > o.max_shift or z > o.max_zoom for sh, z in map(box_jump, prev, r.boxes)):
                    cause = "jump"
                else:
                    self._faces = r
                    self.counts["tracked"] += 1
                    return r, True
            if cause is None and self._faces is None and scene_change(self._detected_thumb, thumb) > o.appear:
                cause = "change"
            if cause is None:
                self.counts["idle"] += 1
                return Detections(), False
            self.counts[cause] += 1
            key = self.detector.detect(frame[None])[0]
        else:
            self.counts["key"] += 1
        self._detected_thumb = thumb
        self._faces = (key if self.all_faces else key.take(0)) if len(key) else None
        return (self._faces if self._faces is not None else Detections()), False

    def reset(self) -> None:
        """Forget the faces and the previous frame (an unreadable frame breaks the sequence)."""
        self._faces, self._thumb, self._detected_thumb = None, None, None


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` x1,y1,x2,y2 boxes → ``(N, M)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    missed: int = 0


class IoUTracker:
    """Assigns track ids to each frame's detections."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next = 0

    def update(self, dets: Detections) -> np.ndarray:
        """Track ids ``(N,)`` int64 for ``dets`` (same order as its boxes)."""
        n = len(dets)
        ids = np.full(n, -1, np.int64)
        if self._tracks and n:
            m = iou(dets.boxes, np.stack([t.box for t in self._tracks]))
            pairs = sorted(((m[i, j], i, j) for i in range(n) for j in range(len(self._tracks))
                            if m[i, j] >= self.iou_threshold), reverse=True)
            used_t: set[int] = set()
            for _, i, j in pairs:
                if ids[i] < 0 and j not in used_t:
                    ids[i] = self._tracks[j].id
                    used_t.add(j)
                    self._tracks[j].box = dets.boxes[i].copy()
                    self._tracks[j].missed = 0
            for j, t in enumerate(self._tracks):
                if j not in used_t:
                    t.missed += 1
        else:
            for t in self._tracks:
                t.missed += 1
        for i in range(n):
            if ids[i] < 0:
                ids[i] = self._next
                self._tracks.append(_Track(self._next, dets.boxes[i].copy()))
                self._next += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return ids
