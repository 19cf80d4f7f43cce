"""TCL's instance contrastive loss (Singh et al. CVPR'21, Eq. 2; the NT-Xent of SimCLR) on probability vectors.

With ``a_i`` (fast pathway, detached by the caller) and ``b_i`` (slow pathway) for N clips, S = {a, b} (2N
vectors), cosine similarity s(x, y) and temperature τ::

    ℓ_ic = mean_{x ∈ S} −log[ exp(s(x, x⁺)/τ) / Σ_{y ∈ S, y ≠ x} exp(s(x, y)/τ) ]

x⁺ is the other pathway's vector of the same clip. The authors' code removes the self term by subtracting e^{1/τ}
from the full sum; we drop the diagonal instead, which is the same whenever s(x, x) = 1 (every non-zero vector)
and stays finite for a zero vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent between paired rows of ``a`` and ``b`` (``(N, D)`` each); 0 when N = 0."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"expected two (N, D) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    if n == 0:
        return a.sum() * 0.0
    z = F.normalize(torch.cat([a, b]).float(), dim=1)
    sim = z @ z.t() / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)
