"""Can an encoder fit a trivially learnable multi-label target in a few steps? (issue 19: PIAP-DF's AU encoder
learns nothing on `bp4d-like`, even from a pretrained EfficientNet-B1, where the supervised ResNet-18 learns.)

512 random 64-px images; AU u is "on" when one image patch (its own channel and rows) is bright on average, so every
label is a simple function of the pixels. Each encoder (random weights) + global average pooling + a linear head is
trained with the project's weighted BCE (all weights 1) and Adam 1e-3 for 60 steps of 32, and the mean loss of the
first and last 10 steps is printed. Variants: PIAP-DF's own model (``PIAPNet``) with the EfficientNet-B1 and the
``small`` encoder, torchvision's EfficientNet-B1 features with and without stochastic depth, and the supervised
counterpart's ResNet-18 trunk. About 4 minutes on one thread.

    python benchmarks/diag_encoder_fit.py
"""

from __future__ import annotations

import time

import torch
import torchvision
from torch import nn

from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.models.backbones import PooledResNet
from auspread.models.piap import PIAPNet

U, SIZE, N, STEPS, BATCH = 12, 64, 512, 60, 32


class Pooled(nn.Module):
    """``trunk`` → global average pooling → linear head (the supervised counterpart's shape)."""

    def __init__(self, trunk: nn.Module, channels: int, pooled: bool = False):
        super().__init__()
        self.trunk, self.pooled, self.head = trunk, pooled, nn.Linear(channels, U)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.trunk(x)
        return self.head(f if self.pooled else f.mean((2, 3)))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(N, 3, SIZE, SIZE)
    rows = SIZE // 4
    y = torch.stack([(x[:, u % 3, (u // 3) * rows:(u // 3 + 1) * rows, : SIZE // 2].mean((1, 2)) > 0.5).float()
                     for u in range(U)], 1)
    return x, y


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    losses, t0 = [], time.perf_counter()
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        i = torch.randint(0, N, (BATCH,), generator=g)
        out = net(x[i])
        loss = weighted_bce_with_logits(getattr(out, "logits", out), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10, time.perf_counter() - t0


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = data()
    print(f"positive rate of the toy labels {y.mean():.2f}; {STEPS} Adam steps of {BATCH}, lr 1e-3, {SIZE} px, 1 thread")
    variants = {
        "PIAPNet, EfficientNet-B1": lambda: PIAPNet(U, "efficientnet_b1", 16, False),
        "PIAPNet, small": lambda: PIAPNet(U, "small", 16, False),
        "EfficientNet-B1 features + head": lambda: Pooled(torchvision.models.efficientnet_b1().features, 1280),
        "EfficientNet-B1, no stochastic depth": lambda: Pooled(
            torchvision.models.efficientnet_b1(stochastic_depth_prob=0.0).features, 1280),
        "ResNet-18 (supervised counterpart's trunk) + head": lambda: Pooled(PooledResNet("resnet18"), 512, pooled=True),
    }
    print("| encoder + head | loss, first 10 steps | loss, last 10 steps | seconds |\n|---|---:|---:|---:|")
    for name, build in variants.items():
        torch.manual_seed(0)
        first, last, secs = fit(build(), x, y)
        print(f"| {name} | {first:.3f} | {last:.3f} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
