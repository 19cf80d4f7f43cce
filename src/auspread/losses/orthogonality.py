"""Anti Person-Specific orthogonality loss (PIAP-DF Eq. 4) and its weighting with L_AU (Eq. 5).

    L_AP = −1/N Σ_n log(1 − |⟨v_P, v_AU⟩| / (‖v_P‖₂ ‖v_AU‖₂))                           (Eq. 4)
    L    = β·L_AU + (1 − β)·L_AP                                                           (Eq. 5)

``v_AU`` are the AU encoder's pooled features, ``v_P`` the (frozen) person encoder's. The absolute cosine is
clamped to ``1 − eps`` so that exactly parallel vectors give a large finite loss instead of ``inf``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def orthogonality_loss(v_au: torch.Tensor, v_p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 4 over a batch: ``v_au``, ``v_p`` ``(N, C)`` → scalar."""
    if v_au.shape != v_p.shape:
        raise ValueError(f"v_AU {tuple(v_au.shape)} and v_P {tuple(v_p.shape)} differ in shape "
                         "(the person encoder must have the AU encoder's architecture)")
    cos = F.cosine_similarity(v_au.float(), v_p.float(), dim=-1, eps=1e-8).abs().clamp(max=1.0 - eps)
    return -torch.log1p(-cos).mean()

