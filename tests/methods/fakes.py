"""Fake batches in the format of ``auspread.methods.base`` (for method unit tests without the data pipeline)."""

from __future__ import annotations

import torch

from auspread.methods.base import DatasetInfo, StepContext

AUS = (1, 2, 4)


def info(size: int = 32) -> DatasetInfo:
    return DatasetInfo(dataset="synthetic", aus=AUS, class_weights=torch.tensor([1.0, 2.0, 0.5]), num_subjects=2, image_size=size, fps=25.0)


def clips(g: torch.Generator, b: int, n: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips whose AU k is on iff the k-th horizontal band of the frame is bright (a learnable signal)."""
    labels = (torch.rand(b, n, len(AUS), generator=g) < 0.5).float()
    frames = torch.randn(b, n, 3, size, size, generator=g) * 0.3
    band = size // len(AUS)
    for k in range(len(AUS)):
        frames[:, :, :, k * band : (k + 1) * band] += 2.0 * labels[:, :, k, None, None, None]
    return frames, labels


def batch(g: torch.Generator, b: int = 4, n: int = 1, mu: float = 0.0, strong: bool = False, key_only: bool = True, size: int = 32) -> dict:
    frames, truth = clips(g, b, n, size)
    key = torch.randint(0, n, (b,), generator=g)
    labels = torch.full_like(truth, -1.0)
    labels[torch.arange(b), key] = truth[torch.arange(b), key]
    out = {"frames": frames, "labels": labels if key_only else truth, "key_pos": key, "true_labels": truth,
           "subject": torch.zeros(b, dtype=torch.long), "video": torch.zeros(b, dtype=torch.long),
           "frame": torch.arange(n).repeat(b, 1)}
    if strong:
        out["strong"] = frames + 0.5 * torch.randn(frames.shape, generator=g)
    if mu > 0:
        u = batch(g, int(mu * b), n, 0.0, strong, size=size)
        u["labels"] = torch.full_like(u["labels"], -1.0)
        u["key_pos"] = torch.full_like(u["key_pos"], -1)
        out["unlabelled"] = u
    return out


def ctx(progress: float, epochs: int = 10, steps: int = 100) -> StepContext:
    epoch = int(progress)
    return StepContext(epoch=epoch, step=int(progress * steps), batch_in_epoch=int(round((progress - epoch) * steps)),
                       steps_per_epoch=steps, epochs=epochs, device=torch.device("cpu"))
