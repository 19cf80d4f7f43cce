"""Small pieces shared by the semi-supervised baselines (Pseudo-Label, FixMatch, TCL).

- ``linear_ramp``: the unsupervised-weight warm-up of USB / google-research (linear over a fraction of training)
  and, with a start offset, Lee (2013)'s α(t).
- ``frozen_bn_stats``: USB's ``bn_controller.freeze_bn``: a forward pass that uses batch statistics but leaves the
  BatchNorm running statistics untouched (Pseudo-Label's unlabelled pass).
- ``pseudo_label_logs``: mask ratio and (logging only) pseudo-label accuracy against the hidden ground truth.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn



def linear_ramp(progress: float, start: float, end: float) -> float:
    """0 before ``start``, rising linearly to 1 at ``end``, then 1 (``progress`` and bounds in the same unit).

    ``start = end`` is a step at ``start``. USB's ``clip(it / (0.4·T), 0, 1)`` is ``linear_ramp(it, 0, 0.4·T)``;
    Lee (2013)'s α(t)/α_f with T1, T2 is ``linear_ramp(t, T1, T2)``.
    """
    if end < start:
        raise ValueError(f"ramp end {end} is before its start {start}")
    if progress < start:
        return 0.0
    if progress >= end:
        return 1.0
    return (progress - start) / (end - start)


@contextlib.contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Run forward passes whose BatchNorm layers normalise with batch statistics as usual but leave the running
    mean/var/count as they were (USB ``freeze_bn`` / ``unfreeze_bn``).

    The layers update throw-away copies of their buffers, and the original tensors are put back afterwards; the
    originals are never written in place, so graphs built before or inside the block still back-propagate.
    """
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None:
            saved.append((m, m.running_mean, m.running_var, m.num_batches_tracked))
            m.running_mean = m.running_mean.clone()
            m.running_var = m.running_var.clone()
            m.num_batches_tracked = m.num_batches_tracked.clone()
    try:
        yield
    finally:
        for m, mean, var, count in saved:
            m.running_mean, m.running_var, m.num_batches_tracked = mean, var, count


def flatten_frames(x: torch.Tensor) -> torch.Tensor:
    """``(B, n, ...) -> (B·n, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


@torch.no_grad()
def pseudo_label_logs(targets: torch.Tensor, mask: torch.Tensor, true_labels: torch.Tensor | None) -> dict[str, float]:
    """``mask_ratio`` (kept AU entries / all) and, when ground truth is given, ``pl_acc`` on the kept, known
    entries. The ground truth is used for this log only, never in a loss."""
    logs = {"mask_ratio": float(mask.float().mean()) if mask.numel() else 0.0}
    if true_labels is not None:
        true_labels = true_labels.reshape(targets.shape)
        known = (true_labels >= 0) & (mask > 0)
        if known.any():
            logs["pl_acc"] = float((targets[known] == true_labels[known].to(targets.dtype)).float().mean())
    return logs
