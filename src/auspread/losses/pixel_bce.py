"""Pixel-level binary cross-entropy of PI maps (PIAP-DF Eq. 1) and the stage-3 mixture (Eq. 3).

    L_PI = −1/(HW) Σ_h Σ_w [ Y_hw log Ŷ_hw + (1 − Y_hw) log(1 − Ŷ_hw) ]            (Eq. 1)

averaged over maps (one per AU) and images as well. ``Y`` may be soft (the stage-3 targets are the PI generator's
probabilities). Computed from logits for numerical stability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``logits`` and ``target`` ``(B, U, H, W)`` (target in [0, 1]) → scalar mean over all pixels."""
    if logits.shape != target.shape:
        raise ValueError(f"PI-map logits {tuple(logits.shape)} and targets {tuple(target.shape)} differ in shape")
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="mean")

