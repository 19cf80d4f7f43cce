"""MDHR: multi-scale facial dynamics and hierarchical AU relationships (Wang et al., CVPR 2024).

The network only (losses live in ``auspread.losses``, training in ``auspread.methods.mdhr``). Pipeline (Alg. 1)::

    frames (B, T, 3, H, W) ──backbone (per frame)──▶ 4 stage maps + final map
        final map ──LinearBlock──▶ static tokens X_L                                   (B.2)
        stage maps ──MFD (Eqs. 1–5)──▶ dynamic tokens G_motion;   G = G_motion + X_L     (Eq. 6)
        G ──bands (Eq. 7)──▶ region tokens ──AFE──▶ AU nodes v_n;  ──Aux (Eq. 8)──▶ region-combination logits
        nodes ──cross-regional GAT (Eq. 9), edges to predicted-active AUs of other regions──▶ v̂_n
        v̂ ──per-AU depthwise TCN──▶ ──SC head──▶ probabilities p (B, T, N)

Everything that the official code hard-codes for 224-pixel inputs and per-dataset model copies is derived here:

* **Grid.** The token grid ``(h, w)`` is the size of the last backbone stage (stride 32): 224 → 7×7, 112 → 4×4,
  96 → 3×3, 64 → 2×2. MFD's strided convolution for stage ``l`` has kernel = stride = ``2^(4−l)`` (8, 4, 2, 1, as
  in the paper's "8/l" and the code); when a stage map is not exactly ``2^(4−l)·(h, w)`` (odd sizes, e.g. 112 px:
  28 → 4 needs 32) it is zero-padded at the bottom/right first, which matches how the backbone's own stride-2
  layers round up (their output cell ``i`` is centred on input ``2i``).
* **Bands.** Region bands are given on 7 rows in ``resources/aus.json`` (up [0,3), mid [2,5), down [4,7)). On an
  ``h``-row grid a band ``[a, b)`` becomes ``[floor(a·h/7), ceil(b·h/7))`` (at least one row). This is the identity
  for ``h = 7``, doubles exactly for ``h = 14``, and keeps the bands overlapping for small grids
  (``h = 4``: [0,2), [1,3), [2,4); ``h = 2``: [0,1), [0,2), [1,2)).
* **Groups.** Region groups (and the bit order of the auxiliary classes) come from ``aus.mdhr_region_groups``; the
  cross-region adjacency is derived from them. Node order is the dataset's AU order.

See docs/methods/mdhr.md for the paper ↔ code map and every deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from auspread.aus import DATASET_NAMES, RegionGroup, action_unit, mdhr_band_rows, mdhr_region_groups
from auspread.errors import ConfigError
from auspread.models.backbones import build_torchvision, feature_trunk

BackboneName = Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2", "swin_t", "swin_b"]
Fusion = Literal["adaptive", "sum", "concat"]
EdgeRule = Literal["active_cross", "cross", "full", "local"]
RegionSource = Literal["auto", "BP4D", "DISFA", "anatomical"]

_ANATOMICAL_BAND = {"upper": "up", "middle": "mid", "lower": "down"}


# --- region layout (data, not code) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegionLayout:
    """The AU nodes (dataset order) and MDHR's region groups over them.

    ``groups[g].aus`` is in *member order*: the bit order of group ``g``'s auxiliary class, most significant first.
    """

    aus: tuple[int, ...]
    groups: tuple[RegionGroup, ...]

    def __post_init__(self) -> None:
        members = [a for g in self.groups for a in g.aus]
        if sorted(members) != sorted(self.aus) or len(set(members)) != len(members):
            raise ConfigError(
                f"MDHR region groups {[list(g.aus) for g in self.groups]} do not partition the AU set {list(self.aus)}"
            )

    @classmethod
    def for_aus(cls, aus: Sequence[int], source: RegionSource = "auto") -> "RegionLayout":
        """Groups for an AU list: a dataset's groups from ``aus.json`` whose AU set equals ``aus`` (``auto``), a named
        dataset's groups, or one group per anatomical region of the AU vocabulary (``anatomical``; also the
        ``auto`` fallback for AU sets without MDHR groups)."""
        aus = tuple(int(a) for a in aus)
        if source in ("auto", "BP4D", "DISFA"):
            names = DATASET_NAMES if source == "auto" else (source,)
            for name in names:
                try:
                    groups = mdhr_region_groups(name)
                except KeyError:
                    continue
                if sorted(a for g in groups for a in g.aus) == sorted(aus):
                    return cls(aus, tuple(groups))
            if source != "auto":
                raise ConfigError(f"MDHR regions={source!r}: its groups do not cover exactly the AUs {list(aus)}")
        groups = []
        for region, band in _ANATOMICAL_BAND.items():
            members = tuple(a for a in aus if action_unit(a).region == region)
            if members:
                groups.append(RegionGroup(region, band, members))
        return cls(aus, tuple(groups))

    @property
    def num_aus(self) -> int:
        return len(self.aus)

    def member_nodes(self, g: int) -> list[int]:
        """Node indices (dataset order) of group ``g``'s AUs, in member (bit) order."""
        return [self.aus.index(a) for a in self.groups[g].aus]

    def num_classes(self, g: int) -> int:
        return 2 ** len(self.groups[g].aus)

    def node_group(self) -> list[int]:
        """Group index of every node."""
        out = [0] * self.num_aus
        for g in range(len(self.groups)):
            for n in self.member_nodes(g):
                out[n] = g
        return out


def encode_region_classes(labels: torch.Tensor, layout: RegionLayout) -> torch.Tensor:
    """AU labels ``(..., N)`` → region class ids ``(..., G)`` (Eq. 8 targets; reference B.5).

    The id is the group's AU bits read as a binary number, most significant bit = first member. It is −1 where any of
    the group's labels is unknown (< 0). Example (BP4D): only AU10 and AU12 active → ``[0, 0, 4, 8]``.
    """
    out = []
    for g in range(len(layout.groups)):
        nodes = layout.member_nodes(g)
        y = labels[..., nodes]
        n = len(nodes)
        bits = torch.tensor([1 << (n - 1 - i) for i in range(n)], device=labels.device, dtype=torch.long)
        cls = ((y > 0.5).long() * bits).sum(-1)
        out.append(torch.where((y >= 0).all(-1), cls, torch.full_like(cls, -1)))
    return torch.stack(out, dim=-1)


def decode_region_classes(classes: torch.Tensor, layout: RegionLayout) -> torch.Tensor:
    """Region class ids ``(..., G)`` → per-AU 0/1 mask ``(..., N)`` in node order (inverse of the encoding)."""
    out = torch.zeros(*classes.shape[:-1], layout.num_aus, device=classes.device, dtype=torch.float32)
    for g in range(len(layout.groups)):
        nodes = layout.member_nodes(g)
        n = len(nodes)
        for i, node in enumerate(nodes):
            out[..., node] = ((classes[..., g] >> (n - 1 - i)) & 1).float()
    return out


def base_adjacency(layout: RegionLayout, rule: EdgeRule) -> torch.Tensor:
    """The fixed ``(N, N)`` edge matrix before gating and self-loops (Table 5's edge settings).

    ``active_cross``/``cross``: 1 between AUs of different groups (BP4D's down1 and down2 count as different);
    ``full``: 1 everywhere off the diagonal; ``local``: 1 within a group, off the diagonal.
    """
    grp = torch.tensor(layout.node_group())
    same = grp[:, None] == grp[None, :]
    eye = torch.eye(layout.num_aus, dtype=torch.bool)
    if rule in ("active_cross", "cross"):
        m = ~same
    elif rule == "full":
        m = ~eye
    elif rule == "local":
        m = same & ~eye
    else:  # pragma: no cover - guarded by typing
        raise ConfigError(f"unknown MDHR edge rule {rule!r}")
    return m.float()


def gat_adjacency(base: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """``A = C ⊙ m_jᵀ + I`` (reference B.6): node ``i`` keeps the edge to ``j`` only if ``j`` is predicted active
    (mask ``m`` on columns), plus a self-loop. ``active`` is ``(M, N)`` or ``None`` (no gating) → ``(M, N, N)``."""
    n = base.shape[0]
    eye = torch.eye(n, device=base.device, dtype=base.dtype)
    if active is None:
        return (base + eye).unsqueeze(0)
    return base.unsqueeze(0) * active.to(base.dtype).unsqueeze(1) + eye


def band_rows(band: str, height: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a band on an ``height``-row grid, scaled from the 7-row definition (module doc)."""
    a, b = mdhr_band_rows()[band]
    start = min(height - 1, (a * height) // 7)
    stop = min(height, max(start + 1, -((-b * height) // 7)))
    return start, stop


# --- backbone ---------------------------------------------------------------------------------------------------
@dataclass
class Pyramid:
    """Per-frame backbone outputs: four stage maps ``(M, C_l, H_l, W_l)`` (l = 1..4) and the final map for the
    static branch ``(M, C, h, w)``."""

    maps: list[torch.Tensor]
    final: torch.Tensor

    def __len__(self) -> int:
        return self.final.shape[0]

    def slice(self, start: int, stop: int) -> "Pyramid":
        return Pyramid([m[start:stop] for m in self.maps], self.final[start:stop])

    @staticmethod
    def cat(parts: Sequence["Pyramid"]) -> "Pyramid":
        if len(parts) == 1:
            return parts[0]
        return Pyramid([torch.cat([p.maps[i] for p in parts]) for i in range(4)], torch.cat([p.final for p in parts]))

    def repeat_last(self, count: int) -> "Pyramid":
        """Append ``count`` copies of the last frame (= repeating the last image, the backbone being per frame)."""
        if count <= 0:
            return self
        rep = lambda t: torch.cat([t, t[-1:].expand(count, *t.shape[1:])])  # noqa: E731
        return Pyramid([rep(m) for m in self.maps], rep(self.final))


class PyramidBackbone(nn.Module):
    """ResNet, MobileNetV2 or Swin trunk returning MDHR's four stage maps and the final map (reference B.2).

    * ResNet: the outputs of layer1–layer4; the final map is layer4's output.
    * MobileNetV2 (not the paper's): the maps at strides 4, 8, 16 and 32 that stand where ResNet's layer1–layer4
      outputs stand (``MobileNetFeatures.forward_pyramid``: 24, 32, 96 and 1280 channels); the final map is the last
      one, the 1280-channel map torchvision pools for its classifier.
    * Swin (torchvision ``swin_t``/``swin_b``): the *inputs* of the four stages, as in the official code. torchvision's
      ``features`` is ``[patch-embed, stage1, merge, stage2, merge, stage3, merge, stage4]`` (NHWC), so the stage
      inputs are the outputs of ``features[0]``, ``features[2]``, ``features[4]`` and ``features[6]``; the final map
      is ``norm(features[7](...))`` (the normed last tokens). All maps are returned as NCHW views.
    """

    def __init__(self, name: BackboneName, pretrained: str | None = None):
        super().__init__()
        self.name = name
        if name.startswith("resnet") or name == "mobilenet_v2":
            self.kind = "resnet"
            self.trunk = feature_trunk(name, pretrained)
            self.stage_channels = self.trunk.stage_channels
            self.final_channels = self.stage_channels[-1]
        elif name.startswith("swin"):
            self.kind = "swin"
            m = build_torchvision(name, pretrained)
            self.features, self.norm = m.features, m.norm
            c1 = m.features[0][0].out_channels
            self.stage_channels = (c1, 2 * c1, 4 * c1, 8 * c1)
            self.final_channels = m.norm.normalized_shape[0]
        else:
            raise ConfigError(f"MDHR backbone {name!r} is not supported; use a resnet*, mobilenet_v2 or swin_* backbone")

    def forward(self, x: torch.Tensor) -> Pyramid:
        if self.kind == "resnet":
            maps = self.trunk.forward_pyramid(x)
            return Pyramid(maps, maps[-1])
        f = self.features
        x1 = f[0](x)
        x2 = f[2](f[1](x1))
        x3 = f[4](f[3](x2))
        x4 = f[6](f[5](x3))
        final = self.norm(f[7](x4))
        nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
        return Pyramid([nchw(x1), nchw(x2), nchw(x3), nchw(x4)], nchw(final))


# --- building blocks --------------------------------------------------------------------------------------------
class LinearBlock(nn.Module):
    """``Linear → BN over channels → ReLU`` on token tensors ``(..., L, C_in) → (..., L, C_out)`` (ME-GraphAU/MDHR).

    ``groups=n`` stacks n independent blocks with the same input into one matmul; the output then has an extra
    axis: ``(..., L, n, C_out)`` (also for n = 1). Per-channel BN makes this exactly equal to separate blocks.
    Linear weights ~ N(0, √(2 / C_out)) as in the official code.
    """

    def __init__(self, in_features: int, out_features: int, groups: int | None = None):
        super().__init__()
        self.groups, self.out_features = groups, out_features
        n = groups or 1
        self.fc = nn.Linear(in_features, n * out_features)
        self.bn = nn.BatchNorm1d(n * out_features)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        shape = y.shape
        y = F.relu(self.bn(y.reshape(-1, shape[-1]))).reshape(shape)
        if self.groups is not None:
            y = y.reshape(*shape[:-1], self.groups, self.out_features)
        return y


class PatchConv2d(nn.Conv2d):
    """A ``Conv2d`` whose kernel equals its stride (no padding), computed as a patch reshape + one matmul.

    Same parameters and state dict as ``nn.Conv2d``, same result up to float summation order. On CPU the GEMM is
    faster than oneDNN's direct convolution for MFD's strided projections (measurements in docs/methods/mdhr.md,
    "Speed"). The output is an NCHW view with channels-last memory layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.kernel_size[0]
        B, C, H, W = x.shape
        if H % r or W % r:
            raise ValueError(f"PatchConv2d: input {H}x{W} is not a multiple of the kernel {r}")
        h, w = H // r, W // r
        if r == 1:
            p = x.permute(0, 2, 3, 1)
        else:
            p = x.reshape(B, C, h, r, w, r).permute(0, 2, 4, 1, 3, 5).reshape(B, h, w, C * r * r)
        return F.linear(p, self.weight.reshape(self.out_channels, -1), self.bias).permute(0, 3, 1, 2)


def _conv_init(m: nn.Conv2d) -> None:
    """Official MFD conv init: N(0, √(2 / (k·k·C_out)))."""
    n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))


class MultiScaleFacialDynamics(nn.Module):
    """MFD (§3.1, Eqs. 1–5; reference B.3). Stage maps of a clip → dynamic tokens ``(B·T, width, h, w)``.

    Per selected scale ``l``: temporal difference ``d_l^t = x_l^{t+1} − x_l^t`` (Eq. 1, T−1 maps); strided conv
    (kernel = stride = ``2^(4−l)``) + BN + ReLU to the final grid (Eq. 2); average over a window of 2k differences,
    zero-padded by k at both clip ends, giving T outputs (Eq. 3; ``AvgPool3d((2k,1,1), 1, (k,0,0))`` with
    padded zeros counted, as in the code). Fusion (Eqs. 4–5, Table 4):

    * ``adaptive``: per scale 1×1 conv → 16 + BN + ReLU, concatenated, 1×1 conv → one map per scale, softmax over
      scales at every position, weighted sum;
    * ``sum``: plain sum of the scales;
    * ``concat``: channel concatenation (the final 1×1 conv then takes ``L·mid`` channels).

    Then 1×1 conv → ``width`` + BN + ReLU.
    """

    def __init__(
        self,
        stage_channels: Sequence[int],
        scales: Sequence[int] = (1, 2, 3, 4),
        mid_channels: int | None = None,
        width: int = 512,
        k: int = 5,
        fusion: Fusion = "adaptive",
    ):
        super().__init__()
        if k < 1:
            raise ConfigError(f"MDHR k must be >= 1, got {k}")
        self.scales = tuple(scales)
        self.k, self.fusion = k, fusion
        mid = mid_channels or stage_channels[-1]
        self.ratios = [2 ** (4 - s) for s in self.scales]
        self.proj = nn.ModuleList(
            PatchConv2d(stage_channels[s - 1], mid, kernel_size=r, stride=r) for s, r in zip(self.scales, self.ratios)
        )
        self.proj_bn = nn.ModuleList(nn.BatchNorm2d(mid) for _ in self.scales)
        n = len(self.scales)
        if fusion == "adaptive":
            self.weight_convs = nn.ModuleList(nn.Conv2d(mid, 16, 1) for _ in self.scales)
            self.weight_bns = nn.ModuleList(nn.BatchNorm2d(16) for _ in self.scales)
            self.weight_mix = nn.Conv2d(16 * n, n, 1)
        self.out_conv = nn.Conv2d(mid * (n if fusion == "concat" else 1), width, 1)
        self.out_bn = nn.BatchNorm2d(width)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)

    def temporal_average(self, d: torch.Tensor, B: int, T: int) -> torch.Tensor:
        """Eq. 3: ``(B·(T−1), C, h, w)`` differences → ``(B·T, C, h, w)``; output t averages differences
        t−k … t+k−1, zeros outside the clip count."""
        c, h, w = d.shape[1:]
        if T == 1:
            return d.new_zeros(B, c, h, w)
        z = d.reshape(B, T - 1, c, h, w).transpose(1, 2)  # (B, C, T-1, h, w)
        z = F.pad(z, (0, 0, 0, 0, self.k, self.k))  # explicit zeros: also valid for clips shorter than 2k
        z = F.avg_pool3d(z, kernel_size=(2 * self.k, 1, 1), stride=1)
        return z.transpose(1, 2).reshape(B * T, c, h, w)

    def scale_weights(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Eq. 4: ``(B·T, L, h, w)`` softmax weights over the scales at every position."""
        z = torch.cat([F.relu(bn(conv(f))) for f, conv, bn in zip(feats, self.weight_convs, self.weight_bns)], 1)
        return torch.softmax(self.weight_mix(z).float(), dim=1).to(feats[0].dtype)

    def forward(self, maps: Sequence[torch.Tensor], B: int, T: int, grid: tuple[int, int]) -> torch.Tensor:
        h, w = grid
        feats = []
        for s, r, conv, bn in zip(self.scales, self.ratios, self.proj, self.proj_bn):
            x = maps[s - 1]
            c, H, W = x.shape[1:]
            x = x.reshape(B, T, c, H, W)
            d = (x[:, 1:] - x[:, :-1]).reshape(B * (T - 1), c, H, W)  # Eq. 1
            ph, pw = r * h - H, r * w - W
            if ph < 0 or pw < 0:
                raise ValueError(f"stage {s} map {H}x{W} is larger than {r}x the final grid {h}x{w}")
            if ph or pw:
                d = F.pad(d, (0, pw, 0, ph))
            d = F.relu(bn(conv(d)))  # Eq. 2
            feats.append(self.temporal_average(d, B, T))  # Eq. 3
        if self.fusion == "adaptive":
            wts = self.scale_weights(feats)
            motion = sum(f * wts[:, i : i + 1] for i, f in enumerate(feats))  # Eq. 5
        elif self.fusion == "sum":
            motion = sum(feats)
        else:
            motion = torch.cat(feats, dim=1)
        return F.relu(self.out_bn(self.out_conv(motion)))


class LocalRelationships(nn.Module):
    """HSR stage 1 (§3.2, Eqs. 7–8; reference B.4–B.5): bands → (region LinearBlock) → AFE nodes and Aux logits.

    * Region tokens: the rows of the group's band (Eq. 7), flattened. With ``region_linear`` each group first gets its
      own LinearBlock (the official BP4D model, whose down1/down2 groups share the "down" band); without, the AU
      extractors see the raw band tokens (the official DISFA model).
    * AFE: one LinearBlock per AU (the paper's 1×1 conv) on its group's tokens, then the mean over tokens.
      With ``afe=False`` (Table 3 ablation) there is no slicing and no AU-specific extractor: every node is the same
      globally pooled feature from one shared LinearBlock over the whole grid (the SC head still has one prototype
      per AU).
    * Aux: per group, mean of the region tokens → Linear → ``2^{n_g}`` logits (Eq. 8 before the softmax).
    """

    def __init__(self, layout: RegionLayout, width: int, *, afe: bool = True, aux: bool = True, region_linear: bool = True):
        super().__init__()
        self.layout, self.afe, self.aux = layout, afe, aux
        G = len(layout.groups)
        need_regions = afe or aux
        self.region_linears = nn.ModuleList(
            LinearBlock(width, width) if (region_linear and need_regions) else nn.Identity() for _ in range(G)
        )
        if afe:
            self.extractors = nn.ModuleList(LinearBlock(width, width, groups=len(g.aus)) for g in layout.groups)
        else:
            self.shared = LinearBlock(width, width)
        if aux:
            self.aux_heads = nn.ModuleList(nn.Linear(width, layout.num_classes(g)) for g in range(G))
        order = [n for g in range(G) for n in layout.member_nodes(g)]
        self.register_buffer("_inverse", torch.argsort(torch.tensor(order)), persistent=False)

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``grid (M, h, w, C)`` → nodes ``(M, N, C)`` (dataset AU order), aux logits (one ``(M, 2^{n_g})`` per group)."""
        M, h, w, C = grid.shape
        nodes, logits = [], []
        if self.afe or self.aux:
            for g, group in enumerate(self.layout.groups):
                r0, r1 = band_rows(group.band, h)
                x = self.region_linears[g](grid[:, r0:r1].reshape(M, -1, C))
                if self.aux:
                    logits.append(self.aux_heads[g](x.mean(dim=1)))
                if self.afe:
                    nodes.append(self.extractors[g](x).mean(dim=1))  # (M, n_g, C)
        if self.afe:
            out = torch.cat(nodes, dim=1).index_select(1, self._inverse)
        else:
            pooled = self.shared(grid.reshape(M, h * w, C)).mean(dim=1)
            out = pooled.unsqueeze(1).expand(M, self.layout.num_aus, C)
        return out, logits


class CrossRegionGAT(nn.Module):
    """HSR stage 2 (§3.2, Eq. 9; reference B.6): one single-head GAT layer over the AU nodes.

    ``h = W x``; ``e_ij = LeakyReLU_0.2(a_srcᵀ h_i + a_dstᵀ h_j)``; entries with ``A_ij < 0.1`` → −∞; ``α = softmax_j``;
    ``out_i = ELU(Σ_j α_ij h_j + x_i + bias)`` (identity residual, as in the code; ϕ = ELU).
    """

    def __init__(self, width: int, base: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(width, width, bias=False)
        self.att_src = nn.Parameter(torch.empty(width))
        self.att_dst = nn.Parameter(torch.empty(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("base", base, persistent=False)
        nn.init.xavier_uniform_(self.lin.weight)
        bound = math.sqrt(6.0 / (2 * width))  # Xavier-uniform bound of the code's (1, 1, width) attention vectors
        nn.init.uniform_(self.att_src, -bound, bound)
        nn.init.uniform_(self.att_dst, -bound, bound)

    def forward(self, x: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """``x (M, N, C)``, ``active (M, N)`` 0/1 or ``None`` (ungated edges) → ``(M, N, C)``."""
        adj = gat_adjacency(self.base, active)
        h = self.lin(x)
        e = (h @ self.att_src).unsqueeze(2) + (h @ self.att_dst).unsqueeze(1)  # (M, N, N): i attends to j
        e = F.leaky_relu(e.float(), 0.2).masked_fill(adj < 0.1, float("-inf"))
        alpha = torch.softmax(e, dim=-1).to(h.dtype)
        return F.elu(alpha @ h + x + self.bias)


class PerAUTemporalConv(nn.Module):
    """TCN (Alg. 1 line 6; reference B.7): for every AU its own depthwise Conv1d over time (kernel 5, zero padding
    2 at clip ends), then BN over the N AU "channels" and ReLU. The N·C depthwise convolutions are one grouped conv
    (``groups = N·C``), which is exactly N separate depthwise convs."""

    def __init__(self, num_aus: int, width: int, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(num_aus * width, num_aus * width, kernel, padding=kernel // 2, groups=num_aus * width)
        self.bn = nn.BatchNorm1d(num_aus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, N, C)`` → ``(B·T, N, C)``."""
        B, T, N, C = x.shape
        y = self.conv(x.permute(0, 2, 3, 1).reshape(B, N * C, T))
        y = y.reshape(B, N, C, T).permute(0, 3, 1, 2).reshape(B * T, N, C)
        return F.relu(self.bn(y))


class SimilarityHead(nn.Module):
    """SC head (ME-GraphAU; reference B.8): ``p_n = cos(ReLU(v_n), ReLU(s_n))`` with learnable prototypes ``s``.

    The official head has no ReLU on ``v``; in the full model ``v`` comes out of the TCN's ReLU, so ours is a no-op
    there. It keeps ``p ∈ [0, 1]`` in ablations whose last block is the GAT (ELU can be negative).
    """

    def __init__(self, num_aus: int, width: int):
        super().__init__()
        self.prototypes = nn.Parameter(torch.empty(num_aus, width))
        nn.init.xavier_uniform_(self.prototypes)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        s = F.normalize(F.relu(self.prototypes.float()), dim=-1)
        return (F.normalize(F.relu(v.float()), dim=-1) * s).sum(-1)


# --- the network ------------------------------------------------------------------------------------------------
@dataclass
class MDHROutput:
    probs: torch.Tensor  # (B, T, N) in [0, 1]
    aux_logits: list[torch.Tensor]  # one (B, T, 2^{n_g}) per group (empty without Aux)
    active: torch.Tensor | None  # (B, T, N) aux-predicted active AUs (detached), None without Aux


class MDHRNet(nn.Module):
    """The MDHR network for one AU layout. Ablation switches follow Table 3 (``mfd``, ``afe``, ``aux``, ``crm``,
    ``tcn``), Table 4 (``fusion``, ``scales``) and Table 5 (``edges``)."""

    def __init__(
        self,
        layout: RegionLayout,
        *,
        backbone: BackboneName = "resnet50",
        pretrained: str | None = None,
        width: int = 512,
        mfd_channels: int | None = None,
        k: int = 5,
        fusion: Fusion = "adaptive",
        scales: Sequence[int] = (1, 2, 3, 4),
        mfd: bool = True,
        afe: bool = True,
        aux: bool = True,
        crm: bool = True,
        tcn: bool = True,
        edges: EdgeRule = "active_cross",
        region_linear: bool | None = None,
    ):
        super().__init__()
        if crm and edges == "active_cross" and not aux:
            raise ConfigError("MDHR: edges='active_cross' gates the graph with the Aux predictions; enable aux or pick edges='cross'|'full'|'local'")
        self.layout, self.edges = layout, edges
        self.use_mfd, self.use_crm, self.use_tcn = mfd, crm, tcn
        if region_linear is None:  # official: region LinearBlocks iff some band is shared by two groups (BP4D)
            bands = [g.band for g in layout.groups]
            region_linear = len(set(bands)) < len(bands)
        self.backbone = PyramidBackbone(backbone, pretrained)
        self.static = LinearBlock(self.backbone.final_channels, width)
        self.mfd = (
            MultiScaleFacialDynamics(self.backbone.stage_channels, scales, mfd_channels, width, k, fusion) if mfd else None
        )
        self.local = LocalRelationships(layout, width, afe=afe, aux=aux, region_linear=region_linear)
        self.crm = CrossRegionGAT(width, base_adjacency(layout, edges)) if crm else None
        self.tcn = PerAUTemporalConv(layout.num_aus, width) if tcn else None
        self.head = SimilarityHead(layout.num_aus, width)

    def forward(self, frames: torch.Tensor) -> MDHROutput:
        """``frames (B, T, 3, H, W)`` → :class:`MDHROutput`."""
        B, T = frames.shape[:2]
        return self.forward_features(self.backbone(frames.flatten(0, 1)), B, T)

    def forward_features(self, pyr: Pyramid, B: int, T: int) -> MDHROutput:
        """Everything after the backbone, for ``B`` clips of ``T`` frames (``len(pyr) == B·T``)."""
        final = pyr.final
        M, _, h, w = final.shape
        x = self.static(final.flatten(2).transpose(1, 2))  # (M, h·w, C)
        if self.mfd is not None:
            x = x + self.mfd(pyr.maps, B, T, (h, w)).flatten(2).transpose(1, 2)  # Eq. 6
        nodes, logits = self.local(x.reshape(M, h, w, -1))
        active = None
        if logits:
            classes = torch.stack([z.detach().argmax(-1) for z in logits], dim=-1)
            active = decode_region_classes(classes, self.layout)
        if self.crm is not None:
            nodes = self.crm(nodes, active if self.edges == "active_cross" else None)
        N, C = nodes.shape[1:]
        if self.tcn is not None:
            nodes = self.tcn(nodes.reshape(B, T, N, C))
        probs = self.head(nodes).reshape(B, T, N)
        return MDHROutput(
            probs,
            [z.reshape(B, T, -1) for z in logits],
            None if active is None else active.reshape(B, T, N),
        )
