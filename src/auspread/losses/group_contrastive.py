"""TCL's group contrastive loss (Singh et al. CVPR'21, Eq. 3) adapted to multi-label AUs.

TCL groups the fast-pathway vectors by their argmax class and the slow-pathway vectors by theirs, averages the
probability vectors in each group, and applies NT-Xent (``instance_contrastive.nt_xent``) between the group means
of the classes present in both pathways, clamped at ≥ 0. Multi-label AUs have no single argmax: a clip's *group*
is its hard AU pattern ``1[σ(z) ≥ 0.5]`` (a tuple of U bits; see ``docs/methods/tcl.md``).
"""

from __future__ import annotations

import torch

from auspread.losses.instance_contrastive import nt_xent


def group_keys(probs: torch.Tensor) -> list[tuple[int, ...]]:
    """The group of every row: its AU pattern ``1[p ≥ 0.5]`` as a tuple."""
    bits = (probs.detach() >= 0.5).to(torch.int64).cpu().tolist()
    return [tuple(b) for b in bits]


def group_means(probs: torch.Tensor, keys: list[tuple[int, ...]]) -> dict[tuple[int, ...], torch.Tensor]:
    """Mean probability vector of each group (keeps the graph of ``probs``)."""
    out: dict[tuple[int, ...], list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return {k: probs[idx].mean(dim=0) for k, idx in out.items()}


def group_contrastive(fast: torch.Tensor, slow: torch.Tensor, temperature: float = 0.5,
                      fast_probs: torch.Tensor | None = None, slow_probs: torch.Tensor | None = None) -> torch.Tensor:
    """``max(0, NT-Xent(fast group means, slow group means))`` over the AU patterns found in both pathways.

    ``fast`` and ``slow`` are ``(N, D)`` vectors (the caller detaches ``fast``, as TCL does): the AU probabilities
    themselves (TCL), or clip embeddings grouped by the AU patterns of ``fast_probs`` / ``slow_probs``.
    Groups are matched in order of first appearance in ``fast``; no shared group gives 0.
    """
    fm = group_means(fast, group_keys(fast if fast_probs is None else fast_probs))
    sm = group_means(slow, group_keys(slow if slow_probs is None else slow_probs))
    shared = [k for k in fm if k in sm]
    if not shared:
        return slow.sum() * 0.0
    a = torch.stack([fm[k] for k in shared])
    b = torch.stack([sm[k] for k in shared])
    return nt_xent(a, b, temperature).clamp(min=0.0)
