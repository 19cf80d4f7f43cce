"""BYOL (Grill et al., NeurIPS 2020) with temporal positives (ρBYOL, Feichtenhofer et al., CVPR 2021) as a method
of the engine's one loop.

online   trunk f_θ → projector g_θ → predictor q_θ         (trained)
target   trunk f_ξ → projector g_ξ                        (ξ ← τ ξ + (1 − τ) θ after every step, τ cosine → 1)
loss     byol_loss(q_θ(g_θ(f_θ(v1))), g_ξ(f_ξ(v2))) + byol_loss(q_θ(g_θ(f_θ(v2))), g_ξ(f_ξ(v1)))   (Eq. 2–3)

v1 and v2 are independently augmented views of frames t and t + d of one video (:mod:`auspread.pretrain.views`).
The projector and predictor are BYOL's MLPs (Linear → BN → ReLU → Linear). The target update of step k is applied
at the start of step k + 1 (inside ``train_step``, before the forward pass), which is the same sequence of
weights as updating after the optimiser step; the last update is never needed. The result is the online trunk
(torchvision names, no classification head): :meth:`trunk_state`.

This is a :class:`~auspread.methods.base.Method` for the Trainer but not a registered detector: it has no AU
head, so ``auspread train`` cannot pick it; ``auspread pretrain`` builds it directly.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import nn

from auspread.losses.byol import byol_loss, byol_momentum
from auspread.methods.base import DatasetInfo, Method, StepContext, StepOutput
from auspread.pretrain.config import PretrainRecipe


def make_trunk(arch: str, pretrained: str | None = None) -> nn.Module:
    """A torchvision ``arch`` with its classification head replaced by the identity: ``(B, 3, H, W) -> (B, C)``
    pooled features; its ``state_dict`` keeps torchvision's names (loadable with ``pretrained=<trunk.pt>``)."""
    from auspread.models.backbones import build_torchvision

    m = build_torchvision(arch, pretrained)
    if hasattr(m, "fc"):
        m.fc = nn.Identity()
    else:  # EfficientNet: dropout + linear
        m.classifier = nn.Identity()
    return m


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """BYOL's projector / predictor (§3.3): Linear → BatchNorm → ReLU → Linear."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


class BYOLPretrainer(Method):
    name = "pretrain-byol"
    Options = PretrainRecipe
    is_detector: ClassVar[bool] = False  # no AU output: not in the method registry

    def __init__(self, options: PretrainRecipe, info: DatasetInfo | None = None):
        super().__init__(options, info)
        from auspread.models.backbones import feature_dim

        o = options
        self.online = nn.Sequential(make_trunk(o.arch), mlp(feature_dim(o.arch), o.proj_hidden, o.proj_dim))
        self.predictor = mlp(o.proj_dim, o.proj_hidden, o.proj_dim)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        for t, o in zip(self.target.parameters(), self.online.parameters()):
            t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        if ctx.step > 0:
            total = ctx.epochs * ctx.steps_per_epoch
            self.update_target(byol_momentum(ctx.step - 1, total, self.options.momentum))
        x = batch["frames"]  # (B, 2, 3, H, W)
        b = x.shape[0]
        both = torch.cat([x[:, 0], x[:, 1]])  # one pass for the two views
        z_on = self.online(both)
        p = self.predictor(z_on)
        with torch.no_grad():
            z_t = self.target(both)
        loss = byol_loss(p[:b], z_t[b:]) + byol_loss(p[b:], z_t[:b])
        with torch.no_grad():  # collapse monitor: per-dimension std of the normalised projections (~1/√D healthy, 0 collapsed)
            spread = float(nn.functional.normalize(z_on.float(), dim=1).std(0).mean())
        tau = byol_momentum(max(ctx.step - 1, 0), ctx.epochs * ctx.steps_per_epoch, self.options.momentum)
        return StepOutput(loss, {"byol": float(loss.detach()), "tau": tau, "z_std": spread})

    def trunk(self) -> nn.Module:
        return self.online[0]

    def trunk_state(self) -> dict[str, torch.Tensor]:
        """The online trunk's weights, torchvision names, on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.trunk().state_dict().items()}
