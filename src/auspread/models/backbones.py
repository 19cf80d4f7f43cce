"""torchvision backbones with offline-safe ImageNet weights.

``pretrained`` is ``None`` (random init), ``"imagenet"`` (torchvision's weights, only if already in the torch hub
cache: nothing is downloaded), or a path to a local ``.pth`` state dict. When ImageNet weights cannot be had, the
backbone falls back to random init and says so once, clearly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

log = logging.getLogger(__name__)
_WARNED: set[str] = set()

# name -> (constructor, feature channels of the last stage)
_BACKBONES: dict[str, tuple[callable, int]] = {
    "resnet18": (tvm.resnet18, 512),
    "resnet34": (tvm.resnet34, 512),
    "resnet50": (tvm.resnet50, 2048),
    "efficientnet_b0": (tvm.efficientnet_b0, 1280),
    "efficientnet_b1": (tvm.efficientnet_b1, 1280),
    "swin_b": (tvm.swin_b, 1024),
    "swin_t": (tvm.swin_t, 768),
}


def backbone_names() -> list[str]:
    return sorted(_BACKBONES)


def feature_dim(name: str) -> int:
    return _BACKBONES[name][1]


def _hub_checkpoint_file(name: str) -> Path | None:
    """The cached file torchvision would download for ``name``'s default ImageNet weights, if present."""
    weights = tvm.get_model_weights(name).DEFAULT
    fname = os.path.basename(weights.url)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / fname
    return hub if hub.is_file() else None


def load_pretrained_state(name: str, pretrained: str | None) -> dict | None:
    """ImageNet (cached only) or local-file weights for backbone ``name``; ``None`` → random init."""
    if not pretrained:
        return None
    if pretrained == "imagenet":
        path = _hub_checkpoint_file(name)
        if path is None:
            if name not in _WARNED:
                _WARNED.add(name)
                weights = tvm.get_model_weights(name).DEFAULT
                msg = (
                    f"ImageNet weights for {name} are not in the torch cache ({torch.hub.get_dir()}/checkpoints/"
                    f"{os.path.basename(weights.url)}) and auspread never downloads: using random initialisation. "
                    f"To use them, copy that file there or pass --pretrained /path/to/{name}.pth"
                )
                import sys

                print(f"warning: {msg}", file=sys.stderr)
            return None
    else:
        path = Path(pretrained)
        if not path.is_file():
            from auspread.errors import ConfigError

            raise ConfigError(f"{path}: pretrained weights file not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "model" in state and "config" in state:  # an auspread checkpoint
        state = resnet_state_from_checkpoint(state["model"], path)
    return state


def resnet_state_from_checkpoint(model_state: dict, path: Path | str = "checkpoint") -> dict:
    """The torchvision-named ResNet weights of the first ResNet trunk (``…stem.0.weight``, ``…layer1…``) in an
    auspread model state dict, e.g. a supervised run's ``best.pt``, to warm-start another method's backbones."""
    prefixes = sorted(k[: -len("stem.0.weight")] for k in model_state if k.endswith("stem.0.weight"))
    if not prefixes:
        from auspread.errors import ConfigError

        raise ConfigError(f"{path}: this checkpoint has no ResNet trunk to take pretrained weights from")
    p = prefixes[0]
    out = {}
    for k, v in model_state.items():
        if not k.startswith(p):
            continue
        rest = k[len(p):]
        if rest.startswith("stem.0."):
            out["conv1." + rest[len("stem.0."):]] = v
        elif rest.startswith("stem.1."):
            out["bn1." + rest[len("stem.1."):]] = v
        elif rest.startswith(("layer1.", "layer2.", "layer3.", "layer4.")):
            out[rest] = v
    return out


def build_torchvision(name: str, pretrained: str | None = None) -> nn.Module:
    """A torchvision classification model with its ImageNet head intact (callers take the parts they need)."""
    if name not in _BACKBONES:
        from auspread.errors import ConfigError

        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(backbone_names())}")
    model = _BACKBONES[name][0](weights=None)
    state = load_pretrained_state(name, pretrained)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        head = {k for k in missing + unexpected if k.startswith(("fc.", "classifier.", "head."))}
        bad = [k for k in missing + unexpected if k not in head]
        if bad:
            from auspread.errors import ConfigError

            raise ConfigError(f"pretrained weights for {name} do not match the model: {bad[:5]} ...")
    return model


class ResNetFeatures(nn.Module):
    """ResNet trunk returning the last stage map ``(B, C, h, w)``; ``forward_pyramid`` returns all four stages."""

    def __init__(self, name: str = "resnet18", pretrained: str | None = None):
        super().__init__()
        m = build_torchvision(name, pretrained)
        self.stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = m.layer1, m.layer2, m.layer3, m.layer4
        self.out_channels = feature_dim(name)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pyramid(x)[-1]


class PooledResNet(ResNetFeatures):
    """ResNet trunk + global average pooling: ``(B, 3, H, W) -> (B, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).mean(dim=(2, 3))
