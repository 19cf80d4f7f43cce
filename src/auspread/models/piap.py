"""PIAP-DF networks (Tang et al., "PIAP-DF", §3.1–3.3). Networks only: losses are in ``auspread.losses``
(``pixel_bce``, ``orthogonality``, ``discrete_feedback``) and the stage logic in ``auspread.methods.piap_df``.

- :func:`pi_maps` — the *predefined PI maps* (§3.1 stage 1, the paper's Fig. 3): one binary map per AU, the union of
  polygons and disks placed on the 68 iBUG landmarks (the paper's figure is not in our copy; the regions are ours,
  from FACS muscle anatomy, listed in :data:`AU_REGIONS` and drawn in ``docs/methods/img/piap_pi_maps.png``).
- :class:`DWUNet` — the PI generator: a UNet whose convolutions are depthwise separable (§3.1, "DW-UNet").
- :class:`Encoder` — the AU encoder / person encoder trunk: torchvision EfficientNet-B1 (paper) with any number of
  input channels (12 = grayscale × PI maps in stage 2), or ``"small"``, a reduced depthwise CNN for CPU runs.
- :class:`PIDecoder` — the stage-3 decoder branch: DWConv + upsampling from the encoder's last feature map
  (1280 × 7 × 7 at 224 px) to one PI map per AU at the input resolution.
- :class:`PIAPNet` — one "f" of §3.3: RGB encoder + AU head (+ decoder); teacher and student are copies of it.
- :class:`PI2Net` — the stage-2 model: generator → grayscale × maps → 12-channel encoder → AU head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from auspread.errors import ConfigError

# --- predefined PI maps (Fig. 3) ------------------------------------------------------------------------------
#: iBUG-68 left/right mirror of every landmark index (0-based).
IBUG_MIRROR: tuple[int, ...] = tuple(
    [16 - i for i in range(17)]  # jaw
    + [26 - (i - 17) for i in range(17, 27)]  # brows 17..21 <-> 26..22
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nose bottom
    + [45, 44, 43, 42, 47, 46]  # right eye 36..41 <-> left eye
    + [39, 38, 37, 36, 41, 40]  # left eye 42..47 <-> right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)

Anchor = int | tuple[int, ...]  # a landmark index, or several (their centroid)


@dataclass(frozen=True)
class Poly:
    """A polygon; each vertex is ``(anchor, dx, dy)``: the anchor landmark(s) moved by ``(dx, dy)`` face units
    (× inter-ocular distance) along the face's own axes (x: towards the subject's left eye, y: towards the chin)."""

    vertices: tuple[tuple[Anchor, float, float], ...]


@dataclass(frozen=True)
class Disk:
    """A disk of radius ``r`` face units around ``anchor`` moved by ``(dx, dy)`` (drawn as a 16-gon)."""

    anchor: Anchor
    dx: float
    dy: float
    r: float


@dataclass(frozen=True)
class Region:
    shapes: tuple[Poly | Disk, ...]
    bilateral: bool  # True: the shapes are the subject's right side; their mirror image is added


def _p(*v) -> Poly:
    return Poly(tuple(v))


#: The predefined PI region of each AU (FACS muscle → landmarks). Shapes of bilateral AUs are written for the
#: subject's right side (image left in a frontal face: points 17–21, 36–41, 48) and mirrored.
AU_REGIONS: dict[int, Region] = {
    # frontalis, pars medialis: forehead above the inner half of each brow
    1: Region((_p((19, 0, 0), (20, 0, 0), (21, 0, 0), (21, 0, -0.45), (19, 0, -0.45)),), True),
    # frontalis, pars lateralis: forehead above the outer half of each brow
    2: Region((_p((17, 0, 0), (18, 0, 0), (19, 0, 0), (19, 0, -0.45), (17, 0, -0.45)),), True),
    # corrugator / procerus / depressor supercilii: inner brows and glabella down to the nose bridge
    4: Region((_p((20, 0, -0.2), (23, 0, -0.2), (23, 0, 0.15), (42, 0, 0), (28, 0, 0), (39, 0, 0), (20, 0, 0.15)),), False),
    # orbicularis oculi, pars orbitalis (infra-orbital band, crow's feet) + the raised cheek (Fig. 1: two regions)
    6: Region((_p((36, -0.2, 0.05), (41, 0, 0.08), (40, 0, 0.08), (39, 0, 0.08), (39, 0, 0.4), (36, -0.2, 0.4)),
               Disk((1, 31, 41), 0, 0, 0.28)), True),
    # orbicularis oculi, pars palpebralis: both eyelids around the eye
    7: Region((_p((36, -0.12, 0), (37, 0, -0.1), (38, 0, -0.1), (39, 0.08, 0), (40, 0, 0.12), (41, 0, 0.12)),), True),
    # levator labii superioris alaeque nasi: nose bridge and sides down to the nostril wings
    9: Region((_p((39, 0, 0), (42, 0, 0), (35, 0.1, 0), (31, -0.1, 0)),), False),
    # levator labii superioris: between the nose and the upper lip, the upper lip itself
    10: Region((_p((31, -0.15, 0), (32, 0, 0), (33, 0, 0), (34, 0, 0), (35, 0.15, 0), (54, 0.05, 0), (64, 0, 0),
                   (63, 0, 0), (62, 0, 0), (61, 0, 0), (60, 0, 0), (48, -0.05, 0)),), False),
    # zygomaticus major: lip corners and the skin above-outside them
    12: Region((Disk(48, -0.1, -0.05, 0.3),), True),
    # buccinator: dimple lateral to the lip corner
    14: Region((Disk(48, -0.3, 0, 0.22),), True),
    # depressor anguli oris: below the lip corner
    15: Region((Disk(48, -0.05, 0.3, 0.25),), True),
    # mentalis: chin boss between the lower lip and the jaw line
    17: Region((_p((59, 0, 0.05), (58, 0, 0.05), (57, 0, 0.05), (56, 0, 0.05), (55, 0, 0.05), (10, 0, 0), (9, 0, 0),
                   (8, 0, 0), (7, 0, 0), (6, 0, 0)),), False),
    # orbicularis oris (tightener): the red of the lips
    23: Region((_p(*[(i, 0, 0) for i in range(48, 60)]),), False),
    # orbicularis oris (pressor): the lips and a rim of skin around them
    24: Region((_p((48, -0.08, 0), (49, 0, -0.1), (50, 0, -0.12), (51, 0, -0.12), (52, 0, -0.12), (53, 0, -0.1),
                   (54, 0.08, 0), (55, 0, 0.1), (56, 0, 0.12), (57, 0, 0.12), (58, 0, 0.12), (59, 0, 0.1)),), False),
    # lips part: the mouth opening (inner lip contour, dilated vertically)
    25: Region((_p((60, -0.05, 0), (61, 0, -0.08), (62, 0, -0.08), (63, 0, -0.08), (64, 0.05, 0), (65, 0, 0.08),
                   (66, 0, 0.08), (67, 0, 0.08)),), False),
    # jaw drop (masseter/temporalis relax, digastric): mouth, chin and lower jaw
    26: Region((_p((48, -0.1, 0), (54, 0.1, 0), (11, 0, 0), (10, 0, 0), (9, 0, 0), (8, 0, 0), (7, 0, 0), (6, 0, 0),
                   (5, 0, 0)),), False),
}

_DISK_SIDES = 16


def _mirror_anchor(a: Anchor) -> Anchor:
    return IBUG_MIRROR[a] if isinstance(a, int) else tuple(IBUG_MIRROR[i] for i in a)


def _shape_vertices(shape: Poly | Disk) -> list[tuple[Anchor, float, float]]:
    if isinstance(shape, Poly):
        return list(shape.vertices)
    ang = torch.arange(_DISK_SIDES, dtype=torch.float64) * (2 * torch.pi / _DISK_SIDES)
    return [(shape.anchor, shape.dx + shape.r * float(torch.cos(t)), shape.dy + shape.r * float(torch.sin(t))) for t in ang]


def _mirror(shape: Poly | Disk) -> Poly | Disk:
    if isinstance(shape, Poly):
        return Poly(tuple((_mirror_anchor(a), -dx, dy) for a, dx, dy in shape.vertices))
    return Disk(_mirror_anchor(shape.anchor), -shape.dx, shape.dy, shape.r)


class PIMapSpec:
    """The predefined regions of an AU list compiled into tensors: a ``(V, 68)`` anchor matrix (centroid
    weights), ``(V, 2)`` offsets, polygons padded to one length and the AU of each polygon."""

    def __init__(self, aus: Sequence[int]):
        missing = [a for a in aus if a not in AU_REGIONS]
        if missing:
            raise ConfigError(f"PIAP-DF has no predefined PI region for AU{missing} "
                              f"(defined: {sorted(AU_REGIONS)}; see auspread/models/piap.py AU_REGIONS)")
        self.aus = tuple(int(a) for a in aus)
        polys: list[list[tuple[Anchor, float, float]]] = []
        owner: list[int] = []
        for u, a in enumerate(self.aus):
            reg = AU_REGIONS[a]
            shapes = list(reg.shapes) + ([_mirror(s) for s in reg.shapes] if reg.bilateral else [])
            for s in shapes:
                polys.append(_shape_vertices(s))
                owner.append(u)
        vmax = max(len(p) for p in polys)
        anchors = torch.zeros(len(polys), vmax, 68)
        offsets = torch.zeros(len(polys), vmax, 2)
        for i, p in enumerate(polys):
            p = p + [p[-1]] * (vmax - len(p))  # repeat the last vertex: a zero-length edge never crosses
            for j, (a, dx, dy) in enumerate(p):
                idx = [a] if isinstance(a, int) else list(a)
                anchors[i, j, idx] = 1.0 / len(idx)
                offsets[i, j] = torch.tensor([dx, dy])
        self.anchors, self.offsets = anchors, offsets
        self.owner = torch.tensor(owner, dtype=torch.long)


def to_68_points(landmarks: torch.Tensor) -> torch.Tensor:
    """``(..., 68, 2)`` unchanged; ``(..., 66, 2)`` (the Multi-PIE 66-point layout shipped with DISFA: iBUG-68
    without the inner mouth corners 60 and 64) → 68 points, the inner corners taken as the outer ones (48, 54)."""
    n = landmarks.shape[-2]
    if n == 68:
        return landmarks
    if n != 66:
        raise ValueError(f"PI maps need 68 (iBUG) or 66 (Multi-PIE) landmarks, got {n}")
    lm = landmarks
    return torch.cat([lm[..., :60, :], lm[..., 48:49, :], lm[..., 60:63, :], lm[..., 54:55, :], lm[..., 63:66, :]], -2)


def face_frame(landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Face axes from 68 landmarks ``(..., 68, 2)``: unit ``e_x`` (right-eye centre → left-eye centre), unit
    ``e_y`` (perpendicular, pointing to the mouth, so a mirrored face keeps "down" down) and the scale ``s``
    (inter-ocular distance, ≥ 1 pixel)."""
    right = landmarks[..., 36:42, :].mean(-2)
    left = landmarks[..., 42:48, :].mean(-2)
    mouth = landmarks[..., 48:60, :].mean(-2)
    d = left - right
    s = d.norm(dim=-1, keepdim=True).clamp(min=1.0)
    ex = d / s
    ey = torch.stack([-ex[..., 1], ex[..., 0]], -1)
    sign = torch.sign(((mouth - (left + right) / 2) * ey).sum(-1, keepdim=True))
    ey = ey * torch.where(sign == 0, torch.ones_like(sign), sign)
    return ex, ey, s


def pi_maps(landmarks: torch.Tensor, size: int | tuple[int, int], spec: PIMapSpec) -> torch.Tensor:
    """Predefined PI maps (§3.1 stage 1): ``(B, 68, 2)`` landmarks (x, y in the pixel coordinates of the image,
    pixel centres at integers) → ``(B, U, H, W)`` float maps in {0, 1} (1 inside the AU's region).

    Vectorised over images and polygons: a crossing-number point-in-polygon test per edge (not differentiable,
    not needed: the maps are targets).
    """
    if landmarks.ndim != 3 or landmarks.shape[-2:] != (68, 2):
        raise ValueError(f"pi_maps needs (B, 68, 2) landmarks, got {tuple(landmarks.shape)}")
    h, w = (size, size) if isinstance(size, int) else size
    lm = landmarks.float()
    dev = lm.device
    ex, ey, s = face_frame(lm)  # (B, 2), (B, 2), (B, 1)
    anchors, offsets = spec.anchors.to(dev), spec.offsets.to(dev)
    base = torch.einsum("pva,bac->bpvc", anchors, lm)  # (B, P, V, 2)
    off = offsets[None, ..., :1] * ex[:, None, None] + offsets[None, ..., 1:] * ey[:, None, None]
    verts = base + off * s[:, None, None]
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=lm.dtype), torch.arange(w, device=dev, dtype=lm.dtype),
                            indexing="ij")
    px, py = xs.reshape(1, 1, -1), ys.reshape(1, 1, -1)
    inside = torch.zeros(lm.shape[0], verts.shape[1], h * w, dtype=torch.bool, device=dev)
    nv = verts.shape[2]
    for j in range(nv):  # one edge of every polygon at a time: memory (B, P, H·W)
        a, b = verts[:, :, j], verts[:, :, (j + 1) % nv]  # (B, P, 2)
        xa, ya, xb, yb = a[..., :1], a[..., 1:], b[..., :1], b[..., 1:]
        crosses = (ya > py) != (yb > py)
        dy = torch.where(yb == ya, torch.ones_like(yb), yb - ya)
        x_int = xa + (py - ya) * (xb - xa) / dy
        inside ^= crosses & (px < x_int)
    owner = spec.owner.to(dev)
    maps = torch.zeros(lm.shape[0], len(spec.aus), h * w, dtype=torch.bool, device=dev)
    for u in range(len(spec.aus)):
        maps[:, u] = inside[:, owner == u].any(1)
    return maps.reshape(lm.shape[0], len(spec.aus), h, w).float()


# --- building blocks ------------------------------------------------------------------------------------------
class DWSeparable(nn.Sequential):
    """Depthwise 3×3 → BN → ReLU → pointwise 1×1 → BN → ReLU (MobileNet's depthwise separable convolution)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class DWDouble(nn.Sequential):
    """The UNet "double convolution" with depthwise separable convolutions."""

    def __init__(self, cin: int, cout: int):
        super().__init__(DWSeparable(cin, cout), DWSeparable(cout, cout))


class DWUNet(nn.Module):
    """The PI generator (§3.1): a UNet (4 downsamplings) whose 3×3 convolutions are depthwise separable.
    ``(B, 3, H, W) -> (B, U, H, W)`` PI-map logits (any H, W: skips are resized to match). ``input_stride`` 2 (the
    reduced CPU configuration) runs the UNet on a 2×-average-pooled image and upsamples its logits bilinearly."""

    def __init__(self, num_maps: int, width: int = 16, depth: int = 4, input_stride: int = 1):
        super().__init__()
        self.input_stride = input_stride
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  DWSeparable(width, width))
        self.down = nn.ModuleList(DWDouble(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(DWDouble(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth)))
        self.out = nn.Conv2d(width, num_maps, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.input_stride > 1:
            x = F.avg_pool2d(x, self.input_stride, ceil_mode=True)
        skips = [self.stem(x)]
        for d in self.down:
            skips.append(d(F.max_pool2d(skips[-1], 2, ceil_mode=True)))
        y = skips.pop()
        for u in self.up:
            s = skips.pop()
            y = F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False)
            y = u(torch.cat([y, s], 1))
        y = self.out(y)
        return y if self.input_stride == 1 else F.interpolate(y, size=size, mode="bilinear", align_corners=False)


EncoderArch = Literal["efficientnet_b1", "efficientnet_b0", "mobilenet_v2", "resnet18", "small"]


class SmallTrunk(nn.Sequential):
    """The reduced CPU encoder: a 3×3 stem (stride 2) and four depthwise separable stages (stride 2 each), total
    stride 32 like EfficientNet, then a 1×1 convolution to ``16·width`` feature channels."""

    def __init__(self, in_channels: int, width: int):
        w = width
        super().__init__(
            nn.Sequential(nn.Conv2d(in_channels, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)),
            DWSeparable(w, 2 * w, 2), DWSeparable(2 * w, 4 * w, 2), DWSeparable(4 * w, 8 * w, 2), DWSeparable(8 * w, 8 * w, 2),
            nn.Sequential(nn.Conv2d(8 * w, 16 * w, 1, bias=False), nn.BatchNorm2d(16 * w), nn.ReLU(inplace=True)),
        )


def _widen_stem(old: nn.Conv2d, in_channels: int, pretrained: bool) -> nn.Conv2d:
    """The stem convolution for ``in_channels`` inputs; from pretrained weights, the RGB kernel's mean × 3/C_in."""
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    if pretrained:
        with torch.no_grad():
            new.weight.copy_(old.weight.mean(1, keepdim=True).repeat(1, in_channels, 1, 1) * 3 / in_channels)
    return new


class Encoder(nn.Module):
    """AU / person encoder trunk ``(B, C_in, H, W) -> (B, C, h, w)`` (h = H/32). EfficientNet-B1 (torchvision; the
    paper's choice), MobileNetV2 (torchvision's ``features``, the same inverted-residual block family, whose ImageNet
    weights can be had offline; not the paper's), ResNet-18 (the other methods' trunk; not the paper's) or
    ``small``. A non-RGB input (12 channels in stage 2) replaces the stem convolution; with
    pretrained weights its kernel is initialised to the RGB kernel's mean × 3/C_in (keeps the activation scale).
    ``stochastic_depth``: EfficientNet's drop-path probability of its last block (None: torchvision's 0.2)."""

    def __init__(self, in_channels: int = 3, arch: EncoderArch = "efficientnet_b1", width: int = 16,
                 pretrained: str | None = None, stochastic_depth: float | None = None):
        super().__init__()
        if arch == "small":
            self.trunk = SmallTrunk(in_channels, width)
            self.out_channels = 16 * width
        elif arch == "resnet18":
            from auspread.models.backbones import ResNetFeatures

            self.trunk = ResNetFeatures(arch, pretrained)
            self.out_channels = self.trunk.out_channels
            if in_channels != 3:
                self.trunk.stem[0] = _widen_stem(self.trunk.stem[0], in_channels, bool(pretrained))
        else:
            from auspread.models.backbones import build_torchvision, feature_dim

            extra = {} if stochastic_depth is None else {"stochastic_depth_prob": stochastic_depth}
            m = build_torchvision(arch, pretrained, **extra)
            self.trunk = m.features
            self.out_channels = feature_dim(arch)
            if in_channels != 3:
                self.trunk[0][0] = _widen_stem(self.trunk[0][0], in_channels, bool(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class PIDecoder(nn.Module):
    """Stage-3 decoder branch (§3.1): DWConv + ×2 upsampling blocks from the encoder's last map to PI-map logits
    ``(B, U, H, W)`` at the input size."""

    def __init__(self, in_channels: int, num_maps: int, width: int = 16, ups: int = 5):
        super().__init__()
        chans = [max(width, width * 2 ** (ups - 1 - i)) for i in range(ups)]
        self.proj = nn.Sequential(nn.Conv2d(in_channels, chans[0], 1, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(DWSeparable(chans[max(0, i - 1)] if i else chans[0], chans[i]) for i in range(ups))
        self.out = nn.Conv2d(chans[-1], num_maps, 1)

    def forward(self, f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.proj(f)
        for b in self.blocks:
            y = b(F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False))
        return F.interpolate(self.out(y), size=size, mode="bilinear", align_corners=False)


def grayscale(frames: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (normalised) RGB frames ``(B, 3, H, W) -> (B, 1, H, W)`` (a linear map, so applying it to
    normalised frames equals normalising the luma of the raw frames by the same per-channel statistics' mix)."""
    w = frames.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (frames * w).sum(1, keepdim=True)


@dataclass
class PIAPOutput:
    logits: torch.Tensor  # (B, U)
    features: torch.Tensor  # (B, C) pooled v_AU
    maps: torch.Tensor | None  # (B, U, H, W) decoder PI-map logits (stage 3), or None


class PIAPNet(nn.Module):
    """One PIAP model "f" (§3.3): RGB encoder → pooled v_AU → dropout → AU head; with ``decoder`` the stage-3
    PI-map decoder on the encoder's last map. Teacher and student of Discrete Feedback are copies of it; after
    training only ``encoder`` + ``head`` are needed (:meth:`logits`)."""

    def __init__(self, num_aus: int, arch: EncoderArch, width: int, decoder: bool, dropout: float = 0.2,
                 pretrained: str | None = None, decoder_width: int = 16, stochastic_depth: float | None = None):
        super().__init__()
        self.encoder = Encoder(3, arch, width, pretrained, stochastic_depth)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_channels, num_aus)
        self.decoder = PIDecoder(self.encoder.out_channels, num_aus, decoder_width) if decoder else None

    def forward(self, x: torch.Tensor, with_maps: bool = True) -> PIAPOutput:
        f = self.encoder(x)
        v = f.mean(dim=(2, 3))
        maps = self.decoder(f, x.shape[-2:]) if (with_maps and self.decoder is not None) else None
        return PIAPOutput(self.head(self.dropout(v)), v, maps)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(x).mean(dim=(2, 3))))


class PI2Net(nn.Module):
    """Stage 2 (§3.1): PI generator → σ(maps) ⊙ grayscale → U-channel encoder → AU head. ``(B,3,H,W) -> (B,U)``."""

    def __init__(self, generator: DWUNet, num_aus: int, arch: EncoderArch, width: int, dropout: float = 0.2,
                 pretrained: str | None = None, stochastic_depth: float | None = None):
        super().__init__()
        self.generator = generator
        self.encoder = Encoder(num_aus, arch, width, pretrained, stochastic_depth)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_channels, num_aus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.sigmoid(self.generator(x))
        return self.head(self.dropout(self.encoder(grayscale(x) * maps).mean(dim=(2, 3))))


class PersonNet(nn.Module):
    """The person encoder of AP (§3.2): the AU encoder's architecture + an identity head (training subjects)."""

    def __init__(self, num_subjects: int, arch: EncoderArch, width: int, pretrained: str | None = None,
                 stochastic_depth: float | None = None):
        super().__init__()
        self.encoder = Encoder(3, arch, width, pretrained, stochastic_depth)
        self.head = nn.Linear(self.encoder.out_channels, max(1, num_subjects))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """v_P: pooled features ``(B, C)``."""
        return self.encoder(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ProbabilityModule(nn.Module):
    """Wraps a ``(k,3,H,W) -> (k,U)`` logits module as probabilities (the exported inference model)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.net(frames)
        return torch.sigmoid(out)


class LogitsOf(nn.Module):
    """``PIAPNet`` without the training-only decoder: ``(k,3,H,W) -> (k,U)`` logits."""

    def __init__(self, net: PIAPNet):
        super().__init__()
        self.encoder, self.dropout, self.head = net.encoder, net.dropout, net.head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(frames).mean(dim=(2, 3))))
