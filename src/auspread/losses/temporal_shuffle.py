"""Temporal Confirmed Pseudo-label (TPL, KS §3.1.3): temporal feature shuffling, the self-supervised loss L_self
and the rule that discards pseudo-labels of clips judged perturbed.

KS: "We first label the i-th collection of sequential features D_b as true while the shuffled feature collection
D̃_b as false. Afterward, D_b and D̃_b are sequentially fed into model T_b. The loss L_self encourages the model to
classify them correctly." We reconstruct L_self as the binary cross-entropy of T_b's order head::

    L_self = ½ [ BCE(h(D_b), 1) + BCE(h(D̃_b), 0) ]      (mean over clips)

where ``D̃_b`` permutes the n frame tokens of each clip with a random permutation that is never the identity
(the tokens are shuffled *before* the temporal embeddings are added, so the content moves and the positions stay).

Filter rule (our definition; the paper only says pseudo-labels "from clips judged perturbed are discarded"): a clip
keeps its pseudo-labels iff the order head, applied to its *original* token sequence, judges it original:
``σ(h(D_b)) ≥ threshold`` (default 0.5); otherwise all of the clip's pseudo-labels are discarded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_non_identity_permutations(batch: int, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """``(batch, n)`` long: one random permutation of ``range(n)`` per clip, never the identity (needs n ≥ 2).

    A uniformly drawn permutation that happens to be the identity is replaced by a cyclic shift by one.
    """
    if n < 2:
        raise ValueError(f"temporal shuffling needs at least 2 frames per clip, got n={n}")
    perms = torch.argsort(torch.rand(batch, n, generator=generator), dim=1).to(device)
    ident = torch.arange(n, device=device)
    is_identity = (perms == ident).all(dim=1)
    perms[is_identity] = torch.roll(ident, 1)
    return perms


def shuffle_tokens(tokens: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``tokens (B, n, W)``, ``perms (B, n)`` → ``shuffled[i, j] = tokens[i, perms[i, j]]``."""
    index = perms.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    return torch.gather(tokens, 1, index)


def temporal_order_loss(logit_original: torch.Tensor, logit_shuffled: torch.Tensor) -> torch.Tensor:
    """L_self: BCE of the order head, target 1 for original clips and 0 for shuffled ones. ``(B,)`` logits each."""
    if logit_original.numel() == 0:
        return logit_original.sum() * 0.0
    pos = F.binary_cross_entropy_with_logits(logit_original.float(), torch.ones_like(logit_original, dtype=torch.float32))
    neg = F.binary_cross_entropy_with_logits(logit_shuffled.float(), torch.zeros_like(logit_shuffled, dtype=torch.float32))
    return 0.5 * (pos + neg)


def tpl_keep(logit_original: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``(B,)`` bool: keep a clip's pseudo-labels iff the order head judges its original sequence unperturbed."""
    return torch.sigmoid(logit_original.detach().float()) >= threshold
