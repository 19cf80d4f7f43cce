"""TCL: Temporal Contrastive Learning (Singh et al. CVPR'21), video-level, adapted to multi-label AUs
(KS §4.3.1 / supplement Table 1; ``docs/methods/tcl.md``).

Per step: B labelled clips (n frames around a key frame) and μ·B unlabelled clips. Let t = progress / epochs.

1. always:                   L_sup = weighted BCE (KS Eq. 3) of the fast-pathway per-frame logits on the known labels
2. t ∈ [sup_until, finetune_from):   fast = the n-frame clip, slow = every ``slow_stride``-th frame of it,
       a = sg σ(consensus(z_fast)), b = σ(consensus(z_slow))      (clip-level AU probability vectors)
       L = L_sup + γ · ℓ_ic(a, b) + ℓ_gc(a, b)                     (TCL Eqs. 2-3; ``losses.instance_contrastive``,
                                                                   ``losses.group_contrastive``)
3. t ≥ finetune_from:        self-training on the fast pathway's per-frame, per-AU hard pseudo-labels,
       L = L_sup + γ_ft · Σ m·BCE(ŷ, z_fast) / (μB·n·U),  ŷ = 1[sg σ(z_fast) ≥ 0.5],  m = confidence ≥ τ

Defaults are the authors' README run scaled to fractions of training: supervised-only for 50/400 epochs, the
self-training stage from 350/400, n = 8 fast / 4 slow frames, γ = 9, τ_contrast = 0.5, threshold 0.8, γ_ft = 1,
μ = 3.
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from pydantic import Field, model_validator

from auspread.losses.group_contrastive import group_contrastive
from auspread.losses.instance_contrastive import nt_xent
from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, register_method
from auspread.methods.ssl_common import pseudo_label_logs
from auspread.models.tcl import TCLNet


class TCLOptions(MethodOptions):
    name: Literal["tcl"] = "tcl"
    backbone: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2"] = "resnet18"
    clip_len: int = Field(8, ge=2, description="frames of the fast pathway (README num_segments 8)")
    slow_stride: int = Field(2, ge=2, description="slow pathway = every k-th fast frame (README second_segments 4 of 8)")
    temporal_shift: bool = True  # TSM shifts in the trunk (TCL's backbone); False = per-frame ResNet
    shift_div: int = Field(8, ge=2)
    dropout: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = True
    unlabelled_ratio: float = Field(3.0, gt=0, description="mu: unlabelled clips per labelled clip (README 3)")
    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature (README 0.5)")
    contrast_on: Literal["probs", "features"] = "probs"  # TCL: AU probability vectors; "features": clip embeddings
    gamma: float = Field(9.0, ge=0, description="weight of the instance contrastive loss (README 9)")
    group_weight: float = Field(1.0, ge=0, description="weight of the group contrastive loss (TCL: 1)")
    sup_until: float = Field(0.125, ge=0, le=1, description="fraction of training that is supervised only (50/400)")
    finetune_from: float = Field(0.875, ge=0, le=1, description="fraction of training where self-training starts (350/400)")
    pl_threshold: float = Field(0.8, ge=0.5, le=1, description="per-AU confidence of a kept pseudo-label (README 0.8)")
    gamma_ft: float = Field(1.0, ge=0, description="weight of the self-training loss (README 1)")
    normalise: Literal["all", "masked"] = "all"
    eval_windows: int = Field(4, ge=1, description="clips per forward pass in predict_video")

    @model_validator(mode="after")
    def _check(self):
        if self.finetune_from < self.sup_until:
            raise ValueError(f"finetune_from ({self.finetune_from}) must be >= sup_until ({self.sup_until})")
        if self.clip_len // self.slow_stride < 1:
            raise ValueError("clip_len must be >= slow_stride")
        return self


@register_method
class TCL(Method):
    """Shared-weight TSM ResNet-18 over fast and slow pathways; contrastive then self-training stages."""

    name = "tcl"
    Options = TCLOptions
    options: TCLOptions

    def __init__(self, options: TCLOptions, info: DatasetInfo, pretrained: str | None = None):
        super().__init__(options, info)
        self.net = TCLNet(info.num_aus, options.backbone, pretrained, options.temporal_shift, options.shift_div, options.dropout)
        self.register_class_weights(info, options.class_weights)

    def data_spec(self) -> DataSpec:
        return DataSpec(clip_len=self.options.clip_len, sampling="key_frames", unlabelled_ratio=self.options.unlabelled_ratio)

    def stage(self, ctx: StepContext) -> Literal["supervised", "contrastive", "self-training"]:
        t = ctx.progress / max(1, ctx.epochs)
        if t < self.options.sup_until:
            return "supervised"
        return "contrastive" if t < self.options.finetune_from else "self-training"

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        o = self.options
        z_l = self.net(batch["frames"])  # (B, n, U)
        loss_sup = weighted_bce_with_logits(z_l, batch["labels"], self.class_weights)
        loss = loss_sup
        logs = {"loss_sup": float(loss_sup.detach())}
        stage = self.stage(ctx)
        unl = batch.get("unlabelled")
        if unl is not None and stage == "contrastive":
            fast = unl["frames"]
            slow = fast[:, :: o.slow_stride]
            with torch.no_grad():  # TCL detaches the fast pathway: only the slow one is pulled
                z_f, h_f = self.net(fast, return_features=True)
                p_f = torch.sigmoid(self.net.consensus(z_f).float())
            z_s, h_s = self.net(slow, return_features=True)
            p_s = torch.sigmoid(self.net.consensus(z_s).float())
            if o.contrast_on == "probs":
                a, b = p_f, p_s
            else:  # clip embeddings: frame features averaged over the clip
                a, b = h_f.mean(dim=1).float(), h_s.mean(dim=1).float()
            l_ic = nt_xent(a, b, o.temperature)
            l_gc = group_contrastive(a, b, o.temperature, p_f, p_s)
            loss = loss + o.gamma * l_ic + o.group_weight * l_gc
            logs.update(loss_ic=float(l_ic.detach()), loss_gc=float(l_gc.detach()))
        elif unl is not None and stage == "self-training":
            z_u = self.net(unl["frames"])  # (μB, n, U)
            targets, mask = hard_pseudo_labels(torch.sigmoid(z_u.detach().float()), o.pl_threshold)
            l_pl = masked_pseudo_label_bce(z_u, targets, mask, o.normalise)
            loss = loss + o.gamma_ft * l_pl
            logs["loss_pl"] = float(l_pl.detach())
            logs.update(pseudo_label_logs(targets, mask, unl.get("true_labels")))
        logs["loss"] = float(loss.detach())
        return StepOutput(loss, logs)

    @torch.no_grad()
    def predict_video(self, chunks: Iterable[torch.Tensor], num_frames: int) -> torch.Tensor:
        """Consecutive non-overlapping clips of ``clip_len`` frames (the last one may be shorter), so each frame
        is seen once with the temporal context TSM was trained with."""
        n = self.options.clip_len
        per_pass = n * self.options.eval_windows
        out: list[torch.Tensor] = []
        buf: list[torch.Tensor] = []
        have = 0
        for c in chunks:
            buf.append(c)
            have += c.shape[0]
            while have >= per_pass:
                x = torch.cat(buf)
                out.append(self._predict_clips(x[:per_pass], n))
                buf, have = [x[per_pass:]], x.shape[0] - per_pass
        if have:
            x = torch.cat(buf)
            full = (have // n) * n
            if full:
                out.append(self._predict_clips(x[:full], n))
            if have > full:
                out.append(self._predict_clips(x[full:], have - full))
        if not out:
            return torch.zeros(0, self.info.num_aus)
        return torch.cat(out)[:num_frames]

    def _predict_clips(self, frames: torch.Tensor, n: int) -> torch.Tensor:
        clips = frames.reshape(frames.shape[0] // n, n, *frames.shape[1:])
        return torch.sigmoid(self.net(clips).float()).reshape(frames.shape[0], -1)

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames treated as one clip each (no temporal context); prefer :meth:`predict_video`."""
        return torch.sigmoid(self.net(frames[:, None]).float())[:, 0]
