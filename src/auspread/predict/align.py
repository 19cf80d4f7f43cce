"""Frames → aligned face crops for ``auspread predict``: the same similarity transform as ``auspread prepare``
(:mod:`auspread.faces.align`), or a plain resize for inputs that are already aligned crops.

A block of frames travels from the detection stage to the alignment stage as a typed chunk: a :class:`FrameChunk`
(frames and their frame→crop matrices, warped by the alignment stage) or a :class:`CropChunk` (crops made already).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from auspread.faces.align import alignment_matrices, warp, warp_many
from auspread.faces.detect import Detections
from auspread.media import Frame


def chosen_matrix(det: Detections, k: int, size: int, margin: float) -> np.ndarray:
    """The frame→crop matrix of face ``k`` of ``det``."""
    return alignment_matrices(det.landmarks[k : k + 1].astype(np.float64), size, margin)[0]


def _warp_frames(images: list[np.ndarray | None], mats: np.ndarray, size: int) -> np.ndarray:
    """Warp a block; unreadable frames (None) give black crops."""
    ok = [i for i, im in enumerate(images) if im is not None]
    if len(ok) == len(images) and len({im.shape for im in images}) == 1:
        return warp(np.stack(images), mats, size)
    out = np.zeros((len(images), size, size, 3), np.uint8)
    if ok:
        out[ok] = warp_many([images[i] for i in ok], mats[ok], size)
    return out


def resized_crops(frames: list[Frame], size: int) -> np.ndarray:
    """Already-aligned inputs: the whole frame resized to the alignment size (as the frame store does); unreadable
    frames give black crops."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, f in enumerate(frames):
        if f.image is None:
            out[i] = 0
            continue
        t = torch.from_numpy(np.ascontiguousarray(f.image)).permute(2, 0, 1)[None].float()
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = t.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    return out


@dataclass
class FrameChunk:
    """Frames (``None``: unreadable) and their frame→crop matrices ``(k, 2, 3)``, to be warped."""

    images: list[np.ndarray | None]
    mats: np.ndarray

    def crops(self, size: int) -> np.ndarray:
        return _warp_frames(self.images, self.mats, size)


@dataclass
class CropChunk:
    """Crops ``(k, A, A, 3)`` made already (inputs that are aligned face crops)."""

    aligned: np.ndarray

    def crops(self, size: int) -> np.ndarray:
        return self.aligned
