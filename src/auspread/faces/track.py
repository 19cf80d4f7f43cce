"""Simple IoU box tracking: stable face ids across frames (``--all-faces``).

Greedy matching: each new box goes to the live track with the highest IoU above ``iou_threshold`` (pairs taken in
decreasing IoU order); unmatched boxes start new tracks with the next integer id (0, 1, 2, …); a track not matched
for more than ``max_missed`` detection rounds ends. Ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auspread.faces.detect import Detections


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
