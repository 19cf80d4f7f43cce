"""Confidence-masked hard pseudo-label BCE for multi-label AUs (Pseudo-Label, FixMatch, TCL's self-training stage).

The single-label rule of Lee (2013) / FixMatch (Sohn 2020) — ŷ = argmax p, mask = 1[max_c p_c ≥ τ],
ℓ_u = mean_i mask_i · CE(ŷ_i, z_i) — becomes, per AU k of item i (``docs/methods/fixmatch.md``)::

    p_ik = sg σ(z^target_ik)          ŷ_ik = 1[p_ik ≥ 0.5]
    m_ik = 1[p_ik ≥ τ_pos] + 1[p_ik ≤ 1 − τ_neg]            (one of the two at most, since τ ≥ 0.5)
    ℓ_u  = Σ_ik m_ik · BCE(ŷ_ik, z_ik) / (B·U)               normalise="all"  (USB / google-research: mean over
                                                                               the whole unlabelled batch)
         = Σ_ik m_ik · BCE(ŷ_ik, z_ik) / max(1, Σ m)          normalise="masked"
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def hard_pseudo_labels(probs: torch.Tensor, tau_pos: float, tau_neg: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-AU hard labels ``ŷ = 1[p ≥ 0.5]`` and the confidence mask (float 0/1, same shape as ``probs``).

    An entry is kept as a positive when ``p ≥ tau_pos`` and as a negative when ``p ≤ 1 − tau_neg``
    (``tau_neg`` defaults to ``tau_pos``). ``tau = 0.5`` keeps every entry (Lee 2013: no threshold).
    """
    tau_neg = tau_pos if tau_neg is None else tau_neg
    for name, t in (("tau_pos", tau_pos), ("tau_neg", tau_neg)):
        if not 0.5 <= t <= 1.0:
            raise ValueError(f"{name} must be in [0.5, 1], got {t}")
    probs = probs.detach()
    targets = (probs >= 0.5).to(probs.dtype)
    pos = (probs >= tau_pos) & (targets > 0)
    neg = (probs <= 1.0 - tau_neg) & (targets == 0)
    return targets, (pos | neg).to(probs.dtype)


def masked_pseudo_label_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalise: Literal["all", "masked"] = "all",
) -> torch.Tensor:
    """``Σ mask·BCE(targets, logits)`` divided by all entries (``"all"``) or by the kept entries (``"masked"``).

    ``targets`` and ``mask`` are treated as constants (no gradient flows into them).
    """
    if not (logits.shape == targets.shape == mask.shape):
        raise ValueError(f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, mask {tuple(mask.shape)}")
    logits = logits.float()
    per = F.binary_cross_entropy_with_logits(logits, targets.detach().float(), reduction="none") * mask.detach().float()
    if normalise == "all":
        return per.sum() / max(1, per.numel())
    if normalise == "masked":
        return per.sum() / mask.detach().sum().clamp(min=1)
    raise ValueError(f"normalise must be 'all' or 'masked', got {normalise!r}")
