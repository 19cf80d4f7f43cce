"""Discrete Feedback pieces (PIAP-DF §3.3, Eq. 10–11).

    fb          = g_{ξ',l}ᵀ · g_{ξ,u}                 (Eq. 10; the student's labelled gradient after its pseudo-label
                                                      step · its pseudo-label gradient)
    fb_Discrete = σ · h(fb),  h(z) = 1 if z > 0 else −0.1,  σ = 0 with probability 5 %, else 1
    θ'          = θ − η (fb_Discrete · g_{θ,u} + g_{θ,l})                                              (Eq. 11)

By a first-order Taylor expansion ``L_l(ξ) − L_l(ξ') ≈ η g_{ξ',l}ᵀ g_{ξ,u}`` (ξ' = ξ − η g_{ξ,u}), so the
*change of the student's labelled loss* across its pseudo-label step has the sign of fb (the form used by Meta
Pseudo Labels implementations, and exact for the actual optimiser step, momentum included). Both are provided.
"""

from __future__ import annotations

from typing import Iterable

import torch

POSITIVE = 1.0
NEGATIVE = -0.1
DISABLE_PROB = 0.05


def gradient_feedback(grads_l: Iterable[torch.Tensor | None], grads_u: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """Eq. 10 ``fb = g_{ξ',l}ᵀ g_{ξ,u}`` over matching lists of parameter gradients (None = zero)."""
    total = None
    for a, b in zip(grads_l, grads_u, strict=True):
        if a is None or b is None:
            continue
        d = (a.float() * b.float()).sum()
        total = d if total is None else total + d
    return total if total is not None else torch.zeros(())


def loss_change_feedback(loss_before: torch.Tensor, loss_after: torch.Tensor) -> torch.Tensor:
    """``L_l(ξ) − L_l(ξ')``: positive when the pseudo-label step lowered the student's labelled loss."""
    return (loss_before.detach() - loss_after.detach()).float()


def feedback_enabled(generator: torch.Generator, disable_prob: float = DISABLE_PROB) -> bool:
    """σ of Eq. 10: ``False`` (feedback disabled) with probability ``disable_prob``."""
    if not 0.0 <= disable_prob <= 1.0:
        raise ValueError(f"disable_prob must be in [0, 1], got {disable_prob}")
    return bool(torch.rand((), generator=generator) >= disable_prob)


def discrete_feedback(fb: torch.Tensor | float, enabled: bool = True, positive: float = POSITIVE,
                      negative: float = NEGATIVE) -> float:
    """Eq. 10: ``σ · h(fb)`` with ``h(z) = positive (1) if z > 0 else negative (−0.1)``; 0 when disabled."""
    if not enabled:
        return 0.0
    return positive if float(fb) > 0 else negative
