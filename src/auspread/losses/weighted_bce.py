"""Weighted binary cross-entropy with logits for multi-label AU detection (KS Eq. 3).

The equation text of KS Eq. 3 is lost in the available copy of the paper; the prose says "weighted BCE with logits
as the multi-label classification loss" against data imbalance. We use the standard per-AU weighted BCE with the
ME-GraphAU class weights ``w_j = U·(1/r_j)/Σ_k(1/r_k)`` (reference C.4)::

    L = (1 / |K|) Σ_{(i,j) ∈ K} w_j · [ −y_ij log σ(z_ij) − (1 − y_ij) log(1 − σ(z_ij)) ]

where ``K`` is the set of known entries (labels ≠ −1: unknown labels are masked, never treated as negatives) and
the mean is over known entries only. See docs/methods/supervised.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_bce_with_logits(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked, per-AU weighted BCE with logits, averaged over known entries.

    Args:
        logits: ``(..., U)`` raw scores.
        labels: ``(..., U)`` with values 1, 0 or −1 (unknown, masked out).
        weights: ``(U,)`` per-AU weights ``w_j`` (``None``: all ones).

    Returns:
        A scalar. When no entry is known it is ``0`` (still attached to the graph, so ``backward`` works).
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in shape")
    logits = logits.float()
    labels = labels.to(logits.dtype)
    known = labels >= 0
    per = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    if weights is not None:
        per = per * weights.to(device=logits.device, dtype=logits.dtype)
    per = per * known
    return per.sum() / known.sum().clamp(min=1)
