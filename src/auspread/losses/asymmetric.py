"""Weighted asymmetric loss on probabilities (MDHR Eq. 10; ME-GraphAU's ``WeightedAsymmetricLoss``).

MDHR's SC head outputs probabilities ``p ∈ [0, 1]`` directly (no logits). For a known label ``y ∈ {0, 1}`` of AU
``j`` the per-entry loss is (reference C.5)::

    ℓ_ij = − w_j · [ y_ij · log(max(p_ij, ε)) + (1 − y_ij) · sg(p_ij) · log(max(1 − p_ij, ε)) ]

with ``ε = 1e-8`` and ``sg`` = stop-gradient: the factor ``p`` that down-weights easy negatives is computed without
gradient, as in the official code (it turns grad mode off to compute ``neg_weight = 1 − (1 − p)``).

**Masking.** Entries whose label is −1 (unknown: hidden by a sparse label policy or not coded by the dataset) are
dropped and the loss is the mean over the *known* entries only. This differs from ME-GraphAU/MDHR's version,
which has no mask and averages over every entry (a −1 label would there act as a negative with weight ``−2·p``).
With every label known the two are identical: the official ``mean over samples of (1/U) Σ_j`` equals the mean over
all ``N·U`` entries. Eq. 10 in the paper writes a sum over frames and AUs; the code (and this function) averages.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def weighted_asymmetric_loss(
    probs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None, eps: float = EPS
) -> torch.Tensor:
    """Masked weighted asymmetric loss (MDHR Eq. 10), averaged over known entries.

    Args:
        probs: ``(..., U)`` probabilities in ``[0, 1]``.
        labels: ``(..., U)`` with values 1, 0 or −1 (unknown, masked out).
        weights: ``(U,)`` per-AU weights ``w_j`` (``None``: all ones).
        eps: floor inside both logarithms.

    Returns:
        A float32 scalar; ``0`` (still attached to the graph) when no label is known.
    """
    if probs.shape != labels.shape:
        raise ValueError(f"probs {tuple(probs.shape)} and labels {tuple(labels.shape)} differ in shape")
    p = probs.float()
    y = labels.to(device=p.device, dtype=p.dtype)
    known = (y >= 0).to(p.dtype)
    y = y.clamp(min=0)
    pos = y * torch.log(p.clamp(min=eps))
    neg = (1.0 - y) * p.detach() * torch.log((1.0 - p).clamp(min=eps))
    per = -(pos + neg)
    if weights is not None:
        per = per * weights.to(device=p.device, dtype=p.dtype)
    return (per * known).sum() / known.sum().clamp(min=1.0)
