"""The supervised counterpart (KS §4.3.2, Table 4): a torchvision ResNet-18 frame
classifier trained on the labelled frames only, at any label ratio, with the weighted BCE of KS Eq. 3
(``auspread.losses.weighted_bce``). See docs/methods/supervised.md.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, register_method
from auspread.models.backbones import feature_dim, pooled_trunk


class SupervisedOptions(MethodOptions):
    name: Literal["supervised"] = "supervised"
    backbone: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2"] = "resnet18"
    dropout: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = True  # w_j of reference C.4 in the loss; False = plain masked BCE
    freeze_bn: bool = False  # BatchNorm layers use running statistics (the same as optim.freeze_bn, for any method)


@register_method
class Supervised(Method):
    """ResNet / MobileNetV2 trunk → global average pooling → dropout → linear head with one logit per AU."""

    name = "supervised"
    Options = SupervisedOptions

    def __init__(self, options: SupervisedOptions, info: DatasetInfo, pretrained: str | None = None):
        super().__init__(options, info)
        self.backbone = pooled_trunk(options.backbone, pretrained)
        self.dropout = nn.Dropout(options.dropout)
        self.head = nn.Linear(feature_dim(options.backbone), info.num_aus)
        self.register_class_weights(info, options.class_weights)
        self.batchnorm_frozen = options.freeze_bn

    def data_spec(self) -> DataSpec:
        return DataSpec(clip_len=1, sampling="key_frames")

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """``(k, 3, H, W) -> (k, U)`` logits."""
        return self.head(self.dropout(self.backbone(frames)))

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        frames, labels = batch["frames"], batch["labels"]  # (B, 1, 3, H, W), (B, 1, U)
        b, n = frames.shape[:2]
        logits = self.logits(frames.reshape(b * n, *frames.shape[2:])).reshape(b, n, -1)
        loss = weighted_bce_with_logits(logits, labels, self.class_weights)
        return StepOutput(loss, {"bce": float(loss.detach())})

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(frames).float())

    def export_module(self) -> nn.Module:
        """The inference model for ``auspread export``: ``(k, 3, H, W) -> (k, U)`` probabilities."""
        import copy

        return _SupervisedProbabilities(copy.deepcopy(self.backbone), copy.deepcopy(self.head)).eval()


class _SupervisedProbabilities(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.backbone(frames)))
