"""Per-AU Bernoulli KL divergence at temperature τ for multi-label online distillation (KS Eq. 1–2).

The symbols of KS Eq. 1–2 are lost in the available copy of the paper. From the prose ("KL divergence ... between
the probability distributions of the student networks and their corresponding ensembles", temperature τ = 1,
batch size B, online distillation after Guo et al. [8], Hinton et al. [10]) we reconstruct::

    L_KL = τ² · (1 / (B·U)) Σ_i Σ_{j=1..U} KL( Bern(p_ij) ‖ Bern(q_ij) ),
    KL(Bern(p) ‖ Bern(q)) = p log(p / q) + (1 − p) log((1 − p) / (1 − q))

AU detection is multi-label, so each network output is a vector of U independent Bernoulli distributions
``q_j = σ(z_j / τ)``. The per-AU KLs are **averaged** over AUs and the batch, exactly like the weighted BCE of Eq. 3
(``weighted_bce.py``) averages over AUs and frames: Eq. 4 weighs a network's distillation term against its supervised
term with λ = 0.5, and that trade-off only means "half as much as a label" when both terms use the same reduction.
(Until 2026-12 the KL was *summed* over AUs, which weighed it λ·U per AU against the labels: 6× on BP4D; issue 17.)
The direction is KL(target ‖ student), as in Hinton distillation: the student is pulled towards the target. The
target is **detached**: distillation only updates the student (the target network learns from its own supervised
terms), as in online ensemble distillation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bernoulli_kl(target_probs: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``τ² · mean_{i,j} KL(Bern(p_ij) ‖ Bern(σ(z_ij/τ)))`` (mean over the batch and the U AUs), target detached.

    Args:
        target_probs: ``(B, U)`` soft targets ``p_t`` in [0, 1] (already softened at τ by the caller).
        student_logits: ``(B, U)`` student logits ``z`` (softened here: ``σ(z/τ)``).
        temperature: τ (KS uses 1).

    Returns:
        A scalar; 0 for an empty batch.
    """
    if target_probs.shape != student_logits.shape:
        raise ValueError(f"target {tuple(target_probs.shape)} and student {tuple(student_logits.shape)} differ in shape")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    p = target_probs.detach().float().clamp(0.0, 1.0)
    z = student_logits.float() / temperature
    # p log p + (1-p) log(1-p)  -  [p log q + (1-p) log(1-q)],  with log q = logσ(z), log(1-q) = logσ(-z)
    neg_entropy = torch.xlogy(p, p) + torch.xlogy(1.0 - p, 1.0 - p)
    cross = p * F.logsigmoid(z) + (1.0 - p) * F.logsigmoid(-z)
    kl = neg_entropy - cross  # (B, U)
    return kl.mean() * temperature**2  # mean over AUs and the batch: the reduction of the Eq. 3 BCE


def bernoulli_kl_from_logits(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KS Eq. 2 form: the target is a single teacher's softened output ``σ(z_teacher/τ)`` (detached)."""
    return bernoulli_kl(torch.sigmoid(teacher_logits.detach().float() / temperature), student_logits, temperature)
