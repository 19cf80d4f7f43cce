"""Small fake training data in the documented batch format, for engine tests without the data pipeline."""

from __future__ import annotations

import numpy as np
import torch

from auspread.engine.config import load_config
from auspread.evaluation.metrics import au_scores
from auspread.methods.base import DatasetInfo

AUS = (1, 2, 4)


def info(size: int = 32) -> DatasetInfo:
    return DatasetInfo(dataset="BP4D", aus=AUS, class_weights=torch.tensor([1.0, 1.5, 0.5]), num_subjects=2,
                       image_size=size, fps=25.0)


def _data(seed: int, n: int, size: int):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, len(AUS), generator=g) < 0.4).float()
    x = torch.randn(n, 3, size, size, generator=g) * 0.3
    band = size // len(AUS)
    for k in range(len(AUS)):
        x[:, :, k * band:(k + 1) * band] += 1.5 * y[:, k, None, None, None]
    return x, y


class FakeBatches:
    """``set_epoch``/``len``/iteration like ``TrainBatches``: a seeded permutation per epoch, global batch split
    over ranks (rank r takes slice r)."""

    def __init__(self, n: int = 24, batch_size: int = 4, size: int = 32, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.x, self.y = _data(seed, n, size)
        self.b, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, e: int) -> None:
        self.epoch = e

    def __len__(self) -> int:
        return len(self.x) // (self.b * self.world)

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))
        g = self.b * self.world
        for s in range(len(self)):
            idx = order[s * g:(s + 1) * g][self.rank * self.b:(self.rank + 1) * self.b]
            x, y = self.x[idx], self.y[idx]
            yield {"frames": x[:, None], "labels": y[:, None], "true_labels": y[:, None],
                   "key_pos": torch.zeros(len(idx), dtype=torch.long), "subject": torch.zeros(len(idx), dtype=torch.long),
                   "video": torch.zeros(len(idx), dtype=torch.long), "frame": torch.zeros(len(idx), 1, dtype=torch.long)}


def make_validate(size: int = 32, n: int = 12):
    x, y = _data(123, n, size)

    def validate(model):
        model.eval()
        with torch.no_grad():
            p = model.predict_frames(x)
        return au_scores(p, y, AUS)

    return validate


def config(tmp_path, *overrides: str):
    return load_config(None, ["method.name=supervised", "data.image_size=32", "optim.epochs=2", "optim.batch_size=4",
                              f"out_dir={tmp_path}", "log_every=1", *overrides])
