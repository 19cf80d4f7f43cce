"""Knowledge-Spreader networks (KS §3.1.1, §6.1; supplement §1.1). Networks only: the losses live in
``auspread.losses`` and the training logic in ``auspread.methods.ks``.

Branch A (key frame only)::

    key frame ─ResNet-18 A─▶ (C, h, w) ─AU decoupler─▶ D_s = U AU tokens (U, W) + AU positional embedding
              ─▶ Spatial Teacher S_a (= Temporal Student T_a): transformer encoder, no class token
              ─▶ per-AU linear heads ─▶ U logits

Branch B (all n frames of the clip)::

    frame j ─ResNet-18 B─▶ pooled (C,) ─Spatial Student S_b^j (MLP with dropout, one per clip position j)─▶ token p_b^j (W,)
                                                                         └─ linear head ─▶ student logits (U,)
    D_b = (p_b^1..p_b^n) + temporal embedding ─▶ Temporal Teacher T_b: transformer encoder over the n frames
              ─▶ shared linear head ─▶ per-frame logits (n, U)
              └▶ TPL order head (flattened T_b output ─ MLP ─▶ 1 logit: "original order" vs "shuffled")

Reconstructions (see docs/methods/knowledge_spreader.md):
- *AU decoupling*: "we decouple the extracted global features into multiple branches by applying global average
  pooling" + "the local region of AU-specific features have been fully activated before feeding them into the
  transformers". We use one 1×1 convolution with U·W output channels (= U AU-specific branches of W channels),
  BatchNorm and ReLU on the last ResNet map, then global average pooling of each branch → (U, W).
- *Width*: the paper sets W = U with 8 heads, which does not divide for U = 12 (BP4D); width and heads are options
  (default W = 64, 8 heads, depth 2, feed-forward 4·W, pre-norm ViT blocks).
- *Spatial Students*: "small-sized MLP-based models", "model dropout as the noise": Linear(C, hidden) → ReLU →
  Dropout → Linear(hidden, W) gives the frame token p_b^j; a per-student Linear(W, U) gives its logits.
- *sil = "mlp"* (Table 3 ablation "KSM+TPL"): each transformer encoder is replaced by residual MLP blocks on the
  flattened token sequence (no self-attention), same width and depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from auspread.models.backbones import feature_trunk, pooled_trunk


def mean_prob_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The logit of the mean probability ``(σ(a) + σ(b)) / 2``, computed stably in log space.

    KS's final ensemble ("mean ensemble output of S_a and T_b", §6.1) averages *probabilities*; a BCE-with-logits on
    this logit equals the BCE on the averaged probability exactly.
    """
    a, b = a.float(), b.float()
    log_p = torch.logaddexp(F.logsigmoid(a), F.logsigmoid(b)) - math.log(2.0)
    log_q = torch.logaddexp(F.logsigmoid(-a), F.logsigmoid(-b)) - math.log(2.0)
    return log_p - log_q


class AUDecoupler(nn.Module):
    """Last ResNet map ``(k, C, h, w)`` → U AU-specific features ``(k, U, W)`` (1×1 conv branches + BN + ReLU + GAP)."""

    def __init__(self, in_channels: int, num_aus: int, width: int):
        super().__init__()
        self.num_aus, self.width = num_aus, width
        self.conv = nn.Conv2d(in_channels, num_aus * width, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(num_aus * width)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(fmap)))
        return x.mean(dim=(2, 3)).view(fmap.shape[0], self.num_aus, self.width)


class TokenEncoder(nn.Module):
    """A sequence of L tokens of width W → same shape. ``kind="transformer"``: pre-norm ViT encoder blocks (no class
    token); ``kind="mlp"``: residual MLP blocks on the flattened sequence (the SIL ablation). Learnable 1D positional
    embedding added first."""

    def __init__(self, seq_len: int, width: int, heads: int, depth: int, ff_mult: int, dropout: float, kind: Literal["transformer", "mlp"],
                 norm: Literal["layer", "none"] = "layer"):
        super().__init__()
        self.kind = kind
        self.seq_len, self.width = seq_len, width
        self.pos = nn.Parameter(torch.zeros(1, seq_len, width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        if kind == "transformer":
            layer = nn.TransformerEncoderLayer(
                d_model=width, nhead=heads, dim_feedforward=ff_mult * width, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
        elif kind == "mlp":
            d = seq_len * width
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ff_mult * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * width, d), nn.Dropout(dropout))
                for _ in range(depth)
            )
        else:
            raise ValueError(f"unknown encoder kind {kind!r}")
        self.norm = nn.LayerNorm(width)
        if norm == "none":  # every LayerNorm of the encoder becomes the identity (KSOptions.encoder_norm)
            self.norm = nn.Identity()
            if kind == "transformer":
                for layer in self.blocks.layers:
                    layer.norm1, layer.norm2 = nn.Identity(), nn.Identity()
                    # PyTorch's fused inference path for encoder layers always applies norm1/norm2; this flag is
                    # one of its eligibility checks, so clearing it keeps eval on the plain (norm-free) forward
                    layer.activation_relu_or_gelu = 0
            else:
                for block in self.blocks:
                    block[0] = nn.Identity()
        elif norm != "layer":
            raise ValueError(f"unknown encoder norm {norm!r}")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.pos
        if self.kind == "transformer":
            x = self.blocks(x)
        else:
            b = x.shape[0]
            flat = x.reshape(b, -1)
            for block in self.blocks:
                flat = flat + block(flat)
            x = flat.view(b, self.seq_len, self.width)
        return self.norm(x)


class SpatialStudent(nn.Module):
    """One MLP-based Spatial Student S_b^j: pooled backbone feature ``(…, C)`` → frame token ``(…, W)`` and logits."""

    def __init__(self, in_dim: int, hidden: int, width: int, num_aus: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.head = nn.Linear(width, num_aus)

    def token(self, feats: torch.Tensor) -> torch.Tensor:
        return self.mlp(feats)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.mlp(feats)
        return tok, self.head(tok)


@dataclass
class KSOutput:
    """Outputs of one clip batch. ``sa_logits`` is None when branch A was not run (fully unlabelled clips)."""

    sa_logits: torch.Tensor | None  # (B, U)   S_a on the key frame
    student_tokens: torch.Tensor  # (B, n, W) p_b^j, the frame tokens D_b (before temporal embedding)
    student_logits: torch.Tensor  # (B, n, U) S_b^j on frame j
    tb_logits: torch.Tensor  # (B, n, U) T_b per frame
    tb_hidden: torch.Tensor  # (B, n, W) T_b output tokens (input of the TPL head)


class KSNet(nn.Module):
    """Both branches of Knowledge-Spreader. ``forward_features_*`` / heads are split so that dense inference can
    compute each frame's backbone features once and reuse them for every overlapping clip."""

    def __init__(
        self,
        num_aus: int,
        clip_len: int = 5,
        width: int = 64,
        heads: int = 8,
        depth: int = 2,
        ff_mult: int = 4,
        student_hidden: int = 256,
        student_dropout: float = 0.3,
        encoder_dropout: float = 0.1,
        sil: Literal["transformer", "mlp"] = "transformer",
        encoder_norm: Literal["layer", "none"] = "layer",
        au_head_init: Literal["trunc_normal", "linear"] = "trunc_normal",
        backbone: str = "resnet18",
        pretrained: str | None = None,
        tpl_hidden: int = 64,
        students: Literal["per_position", "shared"] = "per_position",
    ):
        super().__init__()
        if clip_len < 2:
            raise ValueError(f"clip_len must be >= 2, got {clip_len}")
        if sil == "transformer" and width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.num_aus, self.clip_len, self.width = num_aus, clip_len, width
        # branch A: key frame → AU tokens → S_a
        self.backbone_a = feature_trunk(backbone, pretrained)
        self.decoupler = AUDecoupler(self.backbone_a.out_channels, num_aus, width)
        self.spatial_teacher = TokenEncoder(num_aus, width, heads, depth, ff_mult, encoder_dropout, sil, encoder_norm)
        self.au_head_weight = nn.Parameter(torch.empty(num_aus, width))  # per-AU linear head: logit_u = <w_u, f_u> + b_u
        self.au_head_bias = nn.Parameter(torch.zeros(num_aus))
        if au_head_init == "trunc_normal":  # ViT/timm head convention
            nn.init.trunc_normal_(self.au_head_weight, std=0.02)
        elif au_head_init == "linear":  # nn.Linear's default: weights and biases uniform in ±1/sqrt(W)
            bound = width**-0.5
            nn.init.uniform_(self.au_head_weight, -bound, bound)
            nn.init.uniform_(self.au_head_bias, -bound, bound)
        else:
            raise ValueError(f"au_head_init must be 'trunc_normal' or 'linear', got {au_head_init!r}")
        # branch B: every frame → pooled feature → student j → token → T_b
        self.backbone_b = pooled_trunk(backbone, pretrained)
        c = self.backbone_b.out_channels
        if students not in ("per_position", "shared"):
            raise ValueError(f"students must be 'per_position' or 'shared', got {students!r}")
        # "shared": one set of student weights for every clip position, each position with its own dropout draw
        self.shared_students = students == "shared"
        n_students = 1 if self.shared_students else clip_len
        self.students = nn.ModuleList(SpatialStudent(c, student_hidden, width, num_aus, student_dropout) for _ in range(n_students))
        self.temporal_teacher = TokenEncoder(clip_len, width, heads, depth, ff_mult, encoder_dropout, sil, encoder_norm)
        self.frame_head = nn.Linear(width, num_aus)
        self.tpl_head = nn.Sequential(nn.Linear(clip_len * width, tpl_hidden), nn.ReLU(inplace=True), nn.Linear(tpl_hidden, 1))

    # --- branch A ---------------------------------------------------------------------------------------------
    def features_a(self, frames: torch.Tensor) -> torch.Tensor:
        """``(k, 3, H, W)`` → AU tokens ``(k, U, W)`` (backbone A + decoupler; per frame, cacheable)."""
        return self.decoupler(self.backbone_a(frames))

    def spatial_head(self, au_tokens: torch.Tensor) -> torch.Tensor:
        """S_a (= T_a): AU tokens ``(k, U, W)`` → logits ``(k, U)``."""
        h = self.spatial_teacher(au_tokens)
        return torch.einsum("kuw,uw->ku", h, self.au_head_weight) + self.au_head_bias

    # --- branch B ---------------------------------------------------------------------------------------------
    def features_b(self, frames: torch.Tensor) -> torch.Tensor:
        """``(k, 3, H, W)`` → pooled backbone-B features ``(k, C)`` (per frame, cacheable)."""
        return self.backbone_b(frames)

    def student(self, j: int) -> SpatialStudent:
        """The Spatial Student S_b^j of clip position j (the one shared student with ``students="shared"``)."""
        return self.students[0 if self.shared_students else j]

    def student_outputs(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats (B, n, C)``: student j on clip position j → tokens ``(B, n, W)``, logits ``(B, n, U)``."""
        outs = [self.student(j)(feats[:, j]) for j in range(self.clip_len)]
        return torch.stack([o[0] for o in outs], 1), torch.stack([o[1] for o in outs], 1)

    def all_student_tokens(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (T, C)`` → ``(n, T, W)``: every student's token for every frame (dense inference)."""
        if self.shared_students and not self.training:  # one network and no dropout: the n tokens are the same
            return self.students[0].token(feats).unsqueeze(0).expand(self.clip_len, -1, -1)
        return torch.stack([self.student(j).token(feats) for j in range(self.clip_len)])

    def temporal_head(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """T_b: frame tokens ``(B, n, W)`` (temporal embedding added inside) → per-frame logits ``(B, n, U)`` and
        output tokens ``(B, n, W)``."""
        h = self.temporal_teacher(tokens)
        return self.frame_head(h), h

    def order_logit(self, tb_hidden: torch.Tensor) -> torch.Tensor:
        """TPL head: T_b output ``(B, n, W)`` → ``(B,)`` logit that the clip is in its original order."""
        return self.tpl_head(tb_hidden.flatten(1)).squeeze(-1)

    # --- whole clip -------------------------------------------------------------------------------------------
    def forward_branch_b(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``frames (B, n, 3, H, W)`` → student tokens ``(B, n, W)``, student logits ``(B, n, U)``, T_b logits
        ``(B, n, U)`` and T_b output tokens ``(B, n, W)``."""
        b, n = frames.shape[:2]
        if n != self.clip_len:
            raise ValueError(f"clip length {n} does not match the network's clip_len {self.clip_len}")
        feats = self.features_b(frames.flatten(0, 1)).view(b, n, -1)
        tokens, st_logits = self.student_outputs(feats)
        tb_logits, tb_hidden = self.temporal_head(tokens)
        return tokens, st_logits, tb_logits, tb_hidden

    def forward(self, frames: torch.Tensor, key_pos: torch.Tensor | None) -> KSOutput:
        """``frames (B, n, 3, H, W)``; ``key_pos (B,)`` long in [0, n) selects branch A's key frame per clip, or
        None to skip branch A (fully unlabelled clips)."""
        tokens, st_logits, tb_logits, tb_hidden = self.forward_branch_b(frames)
        sa_logits = None
        if key_pos is not None:
            key_frames = frames[torch.arange(frames.shape[0], device=frames.device), key_pos]
            sa_logits = self.spatial_head(self.features_a(key_frames))
        return KSOutput(sa_logits, tokens, st_logits, tb_logits, tb_hidden)


def count_trainable(module: nn.Module) -> int:
    """Number of trainable parameters (KS §6.7 reports about 25M)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
