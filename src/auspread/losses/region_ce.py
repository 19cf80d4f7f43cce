"""Cross-entropy of MDHR's auxiliary region-combination classifiers (MDHR Eq. 11).

Each facial region ``r`` has a softmax classifier over the ``2^{n_r}`` combinations of its ``n_r`` AUs. The official
code averages the per-region CE over frames and then over regions (``mean_r CE(P_r, Y_r)``; Eq. 11 writes a sum).

**Masking.** A region's class is defined only where *all* of the region's AU labels are known; elsewhere its target is
−1 and the frame is skipped for that region. The loss is the mean, over regions with at least one known target, of
the per-region CE averaged over its known frames; ``0`` (attached to the graph) when no region has a known target.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def region_cross_entropy(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Masked auxiliary CE (MDHR Eq. 11).

    Args:
        logits: one ``(M, C_r)`` tensor per region (``C_r = 2^{n_r}`` classes).
        targets: one ``(M,)`` long tensor per region, class ids in ``[0, C_r)`` or −1 (unknown).
    """
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} region logits but {len(targets)} region targets")
    total = None
    used = 0
    for z, t in zip(logits, targets):
        z = z.float()
        anchor = z.sum() * 0.0  # keeps the graph when nothing is known
        total = anchor if total is None else total + anchor
        if bool((t >= 0).any()):
            total = total + F.cross_entropy(z, t.long(), ignore_index=-1)
            used += 1
    if total is None:
        raise ValueError("region_cross_entropy needs at least one region")
    return total / max(used, 1)
