"""TCL's network (Singh et al. CVPR'21): a shared-weight Temporal Shift Module ResNet applied to clips.

TCL runs one TSM ResNet (Lin et al. ICCV'19) over two *pathways* of the same video: "fast" (n frames) and "slow"
(every ``stride``-th of those frames, n / stride). Here the trunk is the shared ``PooledResNet("resnet18")``; a
temporal shift (1/``shift_div`` of the channels one frame back, 1/``shift_div`` one frame forward, zero-padded at
the clip ends) is inserted before the first convolution of every residual block (TSM's "residual shift"). The head
gives per-frame AU logits; ``consensus`` averages them over the clip (TSN/TSM average consensus) for the clip-level
vectors TCL contrasts.
"""

from __future__ import annotations

import torch
from torch import nn

from auspread.models.backbones import PooledResNet, feature_dim, pooled_trunk


def temporal_shift(x: torch.Tensor, n: int, shift_div: int = 8) -> torch.Tensor:
    """TSM shift of ``(B·n, C, H, W)`` features along the clip axis (zero padding at the ends)."""
    if n <= 1:
        return x
    bn, c, h, w = x.shape
    if bn % n:
        raise ValueError(f"batch of {bn} frames is not a whole number of clips of {n}")
    x = x.view(bn // n, n, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # channel block 1 sees the next frame
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # block 2 sees the previous frame
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(bn, c, h, w)


class TemporalShift(nn.Module):
    """Wraps a conv: shift, then convolve. ``clip_len`` is set by :class:`TCLNet` before each forward."""

    def __init__(self, conv: nn.Module, shift_div: int = 8):
        super().__init__()
        self.conv = conv
        self.shift_div = shift_div
        self.clip_len = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(temporal_shift(x, self.clip_len, self.shift_div))


class TCLNet(nn.Module):
    """``(B, n, 3, H, W) -> (B, n, U)`` per-frame AU logits from a (TSM) ResNet trunk and a linear head."""

    def __init__(self, num_aus: int, backbone: str = "resnet18", pretrained: str | None = None, shift: bool = True, shift_div: int = 8, dropout: float = 0.0):
        super().__init__()
        self.backbone = pooled_trunk(backbone, pretrained)
        self._shifts: list[TemporalShift] = []
        if shift and isinstance(self.backbone, PooledResNet):
            for layer in (self.backbone.layer1, self.backbone.layer2, self.backbone.layer3, self.backbone.layer4):
                for block in layer:
                    block.conv1 = TemporalShift(block.conv1, shift_div)
                    self._shifts.append(block.conv1)
        elif shift:  # MobileNetV2: TSM's own placement, the first convolution of every residual inverted block
            for block in self.backbone.features:
                if getattr(block, "use_res_connect", False):
                    block.conv[0] = TemporalShift(block.conv[0], shift_div)
                    self._shifts.append(block.conv[0])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim(backbone), num_aus)

    def forward(self, clips: torch.Tensor, return_features: bool = False):
        """Per-frame logits ``(B, n, U)``; with ``return_features`` also the pooled features ``(B, n, C)``."""
        b, n = clips.shape[:2]
        for s in self._shifts:
            s.clip_len = n
        feats = self.backbone(clips.reshape(b * n, *clips.shape[2:]))
        logits = self.head(self.dropout(feats)).view(b, n, -1)
        return (logits, feats.view(b, n, -1)) if return_features else logits

    @staticmethod
    def consensus(logits: torch.Tensor) -> torch.Tensor:
        """Clip-level logits ``(B, n, U) -> (B, U)``: the average over frames."""
        return logits.mean(dim=1)
