"""The rows of a :class:`~auspread.predict.options.PredictionTable`, one per (frame, face), for both the main face
and ``--all-faces``: a frame without a face gets one row with ``face_id = -1``, ``success = 0`` and NaN box,
confidence and AU values."""

from __future__ import annotations

import numpy as np

from auspread.faces.detect import Detections
from auspread.media import Frame
from auspread.predict.frames import DecodeLog
from auspread.predict.options import PredictionTable

NO_BOX = (np.nan,) * 4


def fit_rows(probs: np.ndarray, n: int, u: int) -> np.ndarray:
    """``predict_video`` output as exactly ``n`` rows (a method that returned fewer rows leaves NaN)."""
    probs = np.asarray(probs, np.float64).reshape(-1, u)
    if len(probs) >= n:
        return probs[:n].copy()
    out = np.full((n, u), np.nan)
    out[: len(probs)] = probs
    return out


class RowBuilder:
    """Collects rows in order; :meth:`table` turns them into a :class:`PredictionTable`."""

    def __init__(self, aus: tuple[int, ...]):
        self.aus = aus
        self.frame: list[int] = []
        self.timestamp: list[float] = []
        self.face_id: list[int] = []
        self.success: list[bool] = []
        self.confidence: list[float] = []
        self.box: list[tuple[float, float, float, float]] = []
        self.held: list[bool] = []
        self.probs: list[np.ndarray | None] = []  # per row, or given to :meth:`table` for all rows

    def __len__(self) -> int:
        return len(self.frame)

    def add(self, f: Frame, face_id: int, success: bool, confidence: float, box: tuple, held: bool,
            probs: np.ndarray | None = None) -> None:
        self.frame.append(f.index)
        self.timestamp.append(f.timestamp)
        self.face_id.append(face_id)
        self.success.append(success)
        self.confidence.append(confidence)
        self.box.append(box)
        self.held.append(held)
        self.probs.append(probs)

    def face(self, f: Frame, dets: Detections, k: int, face_id: int, held: bool,
             probs: np.ndarray | None = None) -> None:
        """Face ``k`` of ``dets`` on frame ``f``: its box as (x, y, w, h) and its detection score."""
        x1, y1, x2, y2 = dets.boxes[k].tolist()
        self.add(f, face_id, True, float(dets.scores[k]), (x1, y1, x2 - x1, y2 - y1), held, probs)

    def no_face(self, f: Frame, held: bool = False) -> None:
        self.add(f, -1, False, np.nan, NO_BOX, held)

    def whole_frame(self, f: Frame) -> None:
        """An input that is an aligned crop already: the whole frame is the face (no face if unreadable)."""
        ok = f.image is not None
        h, w = f.image.shape[:2] if ok else (np.nan, np.nan)
        self.add(f, 0 if ok else -1, ok, np.nan, (0.0, 0.0, float(w), float(h)), False)

    def table(self, num_frames: int, fps: float, log: DecodeLog, face_search: dict,
              probs: np.ndarray | None = None) -> PredictionTable:
        """The table; ``probs``: the model's output for every row in order, else each row's own (NaN if none).
        Rows without a face get NaN AU values either way."""
        n, u = len(self), len(self.aus)
        if probs is None:
            nan = np.full(u, np.nan)
            probs = np.asarray([nan if p is None else p for p in self.probs], np.float64)
        probs = fit_rows(probs, n, u)
        success = np.asarray(self.success, bool)
        probs[~success] = np.nan
        return PredictionTable(
            frame=np.asarray(self.frame, np.int64), timestamp=np.asarray(self.timestamp, np.float64),
            face_id=np.asarray(self.face_id, np.int64), success=success,
            confidence=np.asarray(self.confidence, np.float64), box=np.asarray(self.box, np.float64).reshape(n, 4),
            probs=probs, aus=self.aus, num_frames=num_frames, fps=fps, held=np.asarray(self.held, bool),
            error=log.text(), face_search=dict(face_search),
        )
