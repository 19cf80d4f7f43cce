"""SimCLR (Chen et al., ICML 2020) as a method of the engine's one loop, with within-video negatives.

trunk f → projector g (Linear → BN → ReLU → Linear, as BYOL's) → z;   loss = NT-Xent(z(v1), z(v2); τ)   (SimCLR Eq. 1)

v1 and v2 are two augmented views of one frame (``temporal_offset = 0``) or of frames t and t + d. With
``frames_per_video = M > 1`` (:class:`~auspread.pretrain.views.PretrainBatches`) a batch holds M frames spread over
each of B/M videos, so the other frames of the same video are among each view's negatives: same face, same person,
other AUs, pose and lighting. The loss then cannot be lowered by identity alone; the trunk has to tell frames of
one face apart, which is what an AU detector needs (BYOL's temporal positives ask the opposite: frames a few apart,
which differ mostly in their AUs, mapped to one point; docs/methods/pretraining.md). The result is the trunk
(torchvision names, no classification head): :meth:`trunk_state`.

Not a registered detector (no AU head): ``auspread pretrain`` builds it directly, like BYOL.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from auspread.losses.instance_contrastive import nt_xent
from auspread.methods.base import DatasetInfo, Method, StepContext, StepOutput
from auspread.pretrain.byol import make_trunk, mlp
from auspread.pretrain.config import PretrainRecipe


class SimCLRPretrainer(Method):
    name = "pretrain-simclr"
    Options = PretrainRecipe
    is_detector: ClassVar[bool] = False

    def __init__(self, options: PretrainRecipe, info: DatasetInfo | None = None):
        super().__init__(options, info)
        from auspread.models.backbones import feature_dim

        o = options
        self.online = nn.Sequential(make_trunk(o.arch), mlp(feature_dim(o.arch), o.proj_hidden, o.proj_dim))

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        x = batch["frames"]  # (B, 2, 3, H, W)
        b = x.shape[0]
        z = self.online(torch.cat([x[:, 0], x[:, 1]]))  # one pass for the two views
        loss = nt_xent(z[:b], z[b:], self.options.temperature)
        with torch.no_grad():  # collapse monitor, as BYOL's: per-dimension std of the normalised projections
            spread = float(nn.functional.normalize(z.float(), dim=1).std(0).mean())
            sim = nn.functional.normalize(z[:b].float(), dim=1) @ nn.functional.normalize(z[b:].float(), dim=1).t()
            top1 = float((sim.argmax(1) == torch.arange(b, device=sim.device)).float().mean())
        return StepOutput(loss, {"nt_xent": float(loss.detach()), "z_std": spread, "pair_top1": top1})

    def trunk(self) -> nn.Module:
        return self.online[0]

    def trunk_state(self) -> dict[str, torch.Tensor]:
        """The trunk's weights, torchvision names, on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.trunk().state_dict().items()}


def build_pretrainer(options: PretrainRecipe, info: DatasetInfo | None = None) -> Method:
    """The pretrainer of ``options.objective``."""
    from auspread.pretrain.byol import BYOLPretrainer

    return {"byol": BYOLPretrainer, "simclr": SimCLRPretrainer}[options.objective](options, info)
