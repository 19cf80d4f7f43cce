"""BYOL's regression loss (Grill et al., NeurIPS 2020, Eq. 2) and its target-network momentum (§3.2).

    L(p, z) = ‖p̄ − z̄‖²₂ = 2 − 2·⟨p, z⟩ / (‖p‖₂ ‖z‖₂)                                       (Eq. 2)

``p`` is the online network's prediction, ``z`` the target network's projection of the *other* view; the
gradient never flows into ``z`` (stop-gradient, Fig. 2). The loss is averaged over the batch; the symmetric form
of the paper (Eq. 3, both views swapped) is the caller's sum of two calls. A row's value is in [0, 4].

    τ_k = 1 − (1 − τ_base)·(cos(π k / K) + 1) / 2                                          (§3.2)

rises from τ_base at step 0 to 1 at the last step K.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def byol_loss(p: torch.Tensor, z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 2 over a batch: ``p``, ``z`` ``(N, D)`` → scalar (mean over rows); ``z`` is detached."""
    if p.shape != z.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(z.shape)} differ in shape")
    cos = F.cosine_similarity(p.float(), z.detach().float(), dim=-1, eps=eps)
    return (2.0 - 2.0 * cos).mean()


def byol_momentum(step: int, total_steps: int, base: float) -> float:
    """§3.2: the target's EMA decay τ at optimisation step ``step`` of ``total_steps`` (τ_base → 1, cosine)."""
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"momentum base must be in [0, 1], got {base}")
    k = min(max(step, 0), total_steps) / max(1, total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k) + 1.0) / 2.0
