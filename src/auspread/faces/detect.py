"""MTCNN face detection with 5 landmarks (facenet-pytorch 2.5.3, whose P/R/O-net weights ship inside the wheel:
nothing is downloaded).

:class:`FaceDetector` takes a batch of RGB uint8 frames and returns, per frame, every face's box
``(x1, y1, x2, y2)``, score and 5 landmarks (left eye, right eye, nose, left mouth corner, right mouth corner, in the
image's own left/right), sorted largest face first. Frames can be detected on a downscaled copy
(``detect_side``) for speed; the results are mapped back to the frame's pixels.

:meth:`FaceDetector.refine` runs MTCNN's last stage (O-net) alone on given boxes of one frame: a 48×48 network pass
per face instead of the whole image pyramid. It is the per-frame step of the face tracker
(:class:`auspread.faces.track.FaceTracker`) between full detections.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field


def fp32_guard(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off, entered only when it is on (a caller's bf16 autocast in this thread).

    Leaving the outermost ``torch.autocast`` block clears autocast's process-wide cast cache under a C++ mutex
    without releasing the GIL. ``auspread predict`` detects faces in its own thread while the AU model runs under
    autocast in another; when that model is being traced by ``torch.compile`` (fake tensors: Python code runs while the
    mutex is held), an unconditional ``autocast(enabled=False)`` here deadlocked the two threads (seen on a bf16-native
    CPU, session 15). A thread where autocast is off needs no guard, so it never touches the cache."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


@dataclass
class Detections:
    """Faces found in one frame, largest first. ``boxes (N, 4)`` x1,y1,x2,y2; ``scores (N,)``; ``landmarks (N, 5, 2)``."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, i: int) -> "Detections":
        return Detections(self.boxes[i : i + 1], self.scores[i : i + 1], self.landmarks[i : i + 1])


class DetectorOptions(BaseModel):
    """MTCNN settings. ``min_face_size`` is in pixels of the frame (not of the downscaled copy)."""

    model_config = ConfigDict(extra="forbid")
    min_face_size: int = Field(40, ge=8)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-net (facenet-pytorch defaults)
    factor: float = Field(0.709, gt=0.1, lt=1.0)  # image-pyramid scale step
    detect_side: int | None = Field(640, ge=64)  # downscale so the longer side is at most this (None: never)
    min_score: float = Field(0.9, ge=0, le=1)  # faces below this O-net probability are dropped


class FaceDetector:
    """Batched, device-agnostic MTCNN. ``device`` defaults to CPU; pass ``torch.device('cuda')`` to use a GPU."""

    def __init__(self, options: DetectorOptions | None = None, device: torch.device | str | None = None):
        from facenet_pytorch import MTCNN

        self.options = options or DetectorOptions()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        o = self.options
        self._mtcnn = MTCNN(
            min_face_size=o.min_face_size, thresholds=list(o.thresholds), factor=o.factor,
            select_largest=True, keep_all=True, device=self.device,
        )
        self._mtcnn.eval()

    def detect(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[Detections]:
        """``frames``: ``(B, H, W, 3)`` uint8 RGB, or a list of such images (sizes may differ). One result per frame."""
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = frames[None]
        out: list[Detections | None] = [None] * len(frames)
        # MTCNN batches only same-size images: group by shape
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(tuple(f.shape), []).append(i)
        for shape, idx in groups.items():
            for i, d in zip(idx, self._detect_same_size(np.stack([np.asarray(frames[i]) for i in idx]))):
                out[i] = d
        return out  # type: ignore[return-value]

    def _detect_same_size(self, batch: np.ndarray) -> list[Detections]:
        o = self.options
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected (B, H, W, 3) uint8 RGB frames, got {batch.shape} {batch.dtype}")
        h, w = batch.shape[1:3]
        scale = 1.0
        if o.detect_side is not None and max(h, w) > o.detect_side:
            scale = o.detect_side / max(h, w)
            t = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
            t = torch.nn.functional.interpolate(t, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                mode="bilinear", antialias=True, align_corners=False)
            batch = t.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        # min_face_size is given in frame pixels; MTCNN sees the downscaled copy
        self._mtcnn.min_face_size = max(8, int(round(o.min_face_size * scale)))
        if min(batch.shape[1:3]) < self._mtcnn.min_face_size:  # no image pyramid level: MTCNN's torch.cat fails
            return [Detections() for _ in range(len(batch))]
        with torch.no_grad(), fp32_guard(self.device.type):  # fp32 even under a caller's autocast
            boxes, probs, points = self._mtcnn.detect(batch, landmarks=True)
        res = []
        for b, p, l in zip(boxes, probs, points):
            if b is None:
                res.append(Detections())
                continue
            b = np.asarray(b, np.float32) / scale
            p = np.asarray(p, np.float32)
            l = np.asarray(l, np.float32) / scale
            keep = p >= o.min_score
            b, p, l = b[keep], p[keep], l[keep]
            order = np.argsort(-(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")
            res.append(Detections(b[order], p[order], l[order]))
        return res

    def refine(self, frame: np.ndarray, boxes: np.ndarray) -> Detections:
        """O-net on the square around each of ``boxes`` (``(N, 4)`` x1, y1, x2, y2 in ``frame`` pixels): the face's
        box, probability and 5 landmarks in this frame, as MTCNN's third stage computes them from the R-net box
        (same 1-based crop convention, box regression and landmark mapping, so a box equal to R-net's gives
        MTCNN's own answer). The crop is taken from the full-resolution frame (zero outside it) and area-resized
        to 48×48. Results keep the order of ``boxes``; nothing is filtered by score."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return Detections()
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        arr = np.ascontiguousarray(frame)
        img = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)  # read-only (decoded) frames
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # rerec: square, same centre
        sq = np.stack([(boxes[:, 0] + boxes[:, 2] - side) / 2, (boxes[:, 1] + boxes[:, 3] - side) / 2], 1)
        sq = np.concatenate([sq, sq + side[:, None]], 1)
        crops = []
        for x1, y1, x2, y2 in sq:
            # MTCNN's crop: pixels trunc(x1) - 1 … trunc(x2) - 1 (inclusive), likewise in y
            cx1, cy1, cx2, cy2 = int(x1) - 1, int(y1) - 1, int(x2), int(y2)
            cw, ch = max(1, cx2 - cx1), max(1, cy2 - cy1)
            crop = torch.zeros((3, ch, cw), dtype=torch.float32)
            ax1, ay1, ax2, ay2 = max(cx1, 0), max(cy1, 0), min(cx2, w), min(cy2, h)
            if ax2 > ax1 and ay2 > ay1:
                crop[:, ay1 - cy1 : ay2 - cy1, ax1 - cx1 : ax2 - cx1] = img[:, ay1:ay2, ax1:ax2]
            crops.append(torch.nn.functional.interpolate(crop[None], size=(48, 48), mode="area"))
        x = (torch.cat(crops).to(self.device) - 127.5) * 0.0078125
        with torch.no_grad(), fp32_guard(self.device.type):
            reg, pts, prob = self._mtcnn.onet(x)
        reg, pts, score = reg.double().cpu().numpy(), pts.double().cpu().numpy(), prob[:, 1].float().cpu().numpy()
        bw = (sq[:, 2] - sq[:, 0] + 1)[:, None]
        bh = (sq[:, 3] - sq[:, 1] + 1)[:, None]
        lm = np.stack([bw * pts[:, :5] + sq[:, :1] - 1, bh * pts[:, 5:] + sq[:, 1:2] - 1], -1)
        out = sq + reg * np.concatenate([bw, bh, bw, bh], 1)
        return Detections(out.astype(np.float32), score.astype(np.float32), lm.astype(np.float32))
