"""torchvision backbones with ImageNet weights that are real or refused, never silently random.

``pretrained`` is ``None`` (random init), ``"imagenet"`` (torchvision's default ImageNet weights for the backbone)
or one of torchvision's weight names (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``), or a path to a local
``.pth`` state dict or auspread checkpoint. ImageNet weights are read from the torch hub cache
(``$TORCH_HOME/hub/checkpoints``); where they are absent they are downloaded there (hash-checked, atomically) if the
machine is online; where neither works, a :class:`ConfigError` names the file and where to put it. A model is
never trained from random weights under an ImageNet label.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from auspread.errors import ConfigError
from auspread.models.weights import CONFIG_KEY, MODEL_KEY

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
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation; an offline machine answers at once or times out here


def backbone_names() -> list[str]:
    return sorted(_BACKBONES)


def feature_dim(name: str) -> int:
    return _BACKBONES[name][1]


def is_imagenet_spec(pretrained: str | None) -> bool:
    """True for ``"imagenet"`` and torchvision weight names (``IMAGENET1K_V1``, ``DEFAULT``, ...), not for paths."""
    if not pretrained:
        return False
    return pretrained.lower() == "imagenet" or pretrained.upper() == "DEFAULT" or re.fullmatch(r"IMAGENET1K_[A-Z0-9_]+", pretrained.upper()) is not None


def imagenet_weights(name: str, pretrained: str = "imagenet"):
    """torchvision's weights enum member for backbone ``name`` and spec ``pretrained``; ConfigError if unknown."""
    enum = tvm.get_model_weights(name)
    if pretrained.lower() == "imagenet":
        return enum.DEFAULT
    try:
        return enum[pretrained.upper()]
    except KeyError:
        raise ConfigError(f"pretrained={pretrained!r}: {name} has no such torchvision weights; known: "
                          f"imagenet, DEFAULT, {', '.join(m.name for m in enum)}") from None


def imagenet_cache_file(name: str, pretrained: str = "imagenet") -> Path:
    """Where torchvision keeps (or would download) these ImageNet weights: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_weights(name, pretrained).url)


def download_weights(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` atomically, checking torchvision's hash prefix in the file name (module-level so
    tests can stand in for the network)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    m = re.search(r"-([a-f0-9]{6,})\.", os.path.basename(url))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=sys.stderr.isatty())
    finally:
        socket.setdefaulttimeout(old)


def _imagenet_file(name: str, pretrained: str) -> Path:
    """The cached ImageNet weights file, downloaded first if absent and the machine is online; else ConfigError."""
    path = imagenet_cache_file(name, pretrained)
    if path.is_file():
        return path
    url = imagenet_weights(name, pretrained).url
    try:
        print(f"downloading ImageNet weights for {name} to {path}", file=sys.stderr)
        download_weights(url, path)
    except Exception as e:  # offline, refused, timed out, bad hash: refuse rather than train from random weights
        raise ConfigError(
            f"{path}: ImageNet weights for {name} (pretrained={pretrained}) are not in the torch cache and could not "
            f"be downloaded ({type(e).__name__}: {e}). Copy {path.name} (from {url}) to {path.parent}/ "
            f"(or set TORCH_HOME), or pass pretrained=/path/to/{path.name}; auspread does not train from random "
            f"weights under an ImageNet label (pretrained=null trains from random weights)"
        ) from None
    if not path.is_file():
        raise ConfigError(f"{path}: the download of ImageNet weights for {name} left no file")
    return path


def load_pretrained_state(name: str, pretrained: str | None) -> dict | None:
    """ImageNet (cached or downloaded) or local-file weights for backbone ``name``; ``None`` → random init."""
    if not pretrained:
        return None
    if is_imagenet_spec(pretrained):
        path = _imagenet_file(name, pretrained)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise ConfigError(f"{path}: pretrained weights file not found (pretrained=imagenet, a torchvision weights "
                              f"name such as IMAGENET1K_V1, or a local .pth / auspread checkpoint)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and state.get("format") == PRETRAIN_TRUNK_FORMAT:  # an `auspread pretrain` trunk
        state = pretrain_trunk_state(state, name, path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and MODEL_KEY in state and CONFIG_KEY in state:  # an auspread checkpoint
        state = resnet_state_from_checkpoint(state[MODEL_KEY], path)
    return state


def resnet_state_from_checkpoint(model_state: dict, path: Path | str = "checkpoint") -> dict:
    """The torchvision-named ResNet weights of the first ResNet trunk (``…stem.0.weight``, ``…layer1…``) in an
    auspread model state dict, e.g. a supervised run's ``best.pt``, to warm-start another method's backbones."""
    prefixes = sorted(k[: -len("stem.0.weight")] for k in model_state if k.endswith("stem.0.weight"))
    if not prefixes:
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


PRETRAIN_TRUNK_FORMAT = "auspread-pretrain-trunk/1"  # the `format` of `auspread pretrain`'s trunk.pt (auspread.pretrain)


def pretrain_trunk_state(trunk: dict, name: str, path: Path | str = "trunk.pt") -> dict:
    """The torchvision-named weights of an ``auspread pretrain`` trunk file for backbone ``name``; ``ConfigError``
    when the trunk is another architecture (the image size is checked by ``auspread.pretrain.run.check_trunk``)."""
    if trunk.get("arch") != name:
        raise ConfigError(f"{path}: this trunk is a pretrained {trunk.get('arch')} but the model's backbone is {name}; "
                          f"pretrain one for it (auspread pretrain recipe.arch={name} ...) or use pretrained=pretrain:auto")
    return dict(trunk["state_dict"])


def build_torchvision(name: str, pretrained: str | None = None, **kwargs) -> nn.Module:
    """A torchvision classification model with its ImageNet head intact (callers take the parts they need);
    ``kwargs`` go to torchvision's constructor (e.g. EfficientNet's ``stochastic_depth_prob``)."""
    if name not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(backbone_names())}")
    model = _BACKBONES[name][0](weights=None, **kwargs)
    state = load_pretrained_state(name, pretrained)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        head = {k for k in missing + unexpected if k.startswith(("fc.", "classifier.", "head."))}
        bad = [k for k in missing + unexpected if k not in head]
        if bad:
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
