"""Gaussian ramp-up weight of the semi- and self-supervised terms (KS Eq. 8, after Laine & Aila [14]).

    w(t) = exp(−5 (1 − t)²),   t = min(1, epoch / ramp_epochs)

KS: "w(t) is set as 1 after 5 epochs' warming-up". ``epoch`` is the fractional epoch (``StepContext.progress``),
so the weight grows smoothly within an epoch. ``ramp_epochs = 0`` means no ramp-up (w = 1 from the start).
"""

from __future__ import annotations

import math


def gaussian_rampup(epoch: float, ramp_epochs: float = 5.0) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = clip(epoch / ramp_epochs, 0, 1)``: exp(-5) ≈ 0.0067 at 0, 1 from ramp_epochs on."""
    if ramp_epochs < 0:
        raise ValueError(f"ramp_epochs must be >= 0, got {ramp_epochs}")
    if ramp_epochs == 0:
        return 1.0
    t = min(1.0, max(0.0, float(epoch) / ramp_epochs))
    return math.exp(-5.0 * (1.0 - t) ** 2)
