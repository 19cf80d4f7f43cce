"""Pseudo-Label (Lee 2013) for multi-label AUs, as in KS §4.3.1 / supplement Table 1.

The supervised ResNet-18 frame classifier (``auspread.methods.supervised``) plus, on μ·B unlabelled frames per
step, per-AU hard pseudo-labels from the current network (recomputed at every update, no gradient through them),
kept where the network is confident, with a ramped weight (``docs/methods/pseudo_label.md``)::

    L = L_sup(z_l, y) + λ_u · w(t) · ℓ_u,        L_sup = weighted BCE of KS Eq. 3 on the known labels
    ℓ_u = Σ_ik m_ik · BCE(ŷ_ik, z_u,ik) / (μB·U),  ŷ = 1[σ(z_u) ≥ 0.5],  m = 1[σ ≥ τ_pos] + 1[σ ≤ 1 − τ_neg]
    w(t) = linear_ramp(t / epochs, ramp_start, ramp_end)

Defaults follow USB's ``pseudolabel`` (τ = 0.95, linear ramp over the first 40 % of training, λ_u = 1, one
unlabelled view, BatchNorm running statistics frozen during the unlabelled pass). Lee's original rule is
``confidence=0.5`` (no threshold), ``ramp_start=T1/T``, ``ramp_end=T2/T``, ``lambda_u=3``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import DataSpec, StepContext, StepOutput, register_method
from auspread.methods.ssl_common import flatten_frames, frozen_bn_stats, linear_ramp, pseudo_label_logs
from auspread.methods.supervised import Supervised, SupervisedOptions


class PseudoLabelOptions(SupervisedOptions):
    name: Literal["pseudo-label"] = "pseudo-label"  # type: ignore[assignment]
    unlabelled_ratio: float = Field(7.0, gt=0, description="mu: unlabelled frames per labelled frame in a batch")
    confidence: float = Field(0.95, ge=0.5, le=1.0, description="tau_pos: keep a positive pseudo-label when p >= tau")
    negative_confidence: float | None = Field(None, ge=0.5, le=1.0, description="tau_neg (None = confidence): keep a negative when p <= 1 - tau_neg")
    lambda_u: float = Field(1.0, ge=0, description="final weight of the unlabelled loss (Lee's alpha_f)")
    ramp_start: float = Field(0.0, ge=0, le=1, description="fraction of training before which the weight is 0 (Lee's T1/T)")
    ramp_end: float = Field(0.4, ge=0, le=1, description="fraction of training at which the weight reaches lambda_u (USB 0.4)")
    normalise: Literal["all", "masked"] = "all"  # divide by all μB·U entries (USB) or by the kept ones
    freeze_bn_unlabelled: bool = True  # USB: BN running statistics are not updated by the unlabelled pass

    @model_validator(mode="after")
    def _ramp_order(self):
        if self.ramp_end < self.ramp_start:
            raise ValueError(f"ramp_end ({self.ramp_end}) must be >= ramp_start ({self.ramp_start})")
        return self


@register_method
class PseudoLabel(Supervised):
    """Supervised ResNet-18 frame classifier + confidence-masked hard per-AU pseudo-labels on unlabelled frames."""

    name = "pseudo-label"
    Options = PseudoLabelOptions
    options: PseudoLabelOptions

    def data_spec(self) -> DataSpec:
        return DataSpec(clip_len=1, sampling="key_frames", unlabelled_ratio=self.options.unlabelled_ratio)

    def unlabelled_weight(self, ctx: StepContext) -> float:
        """λ_u · w(t) with t the fraction of training done."""
        o = self.options
        return o.lambda_u * linear_ramp(ctx.progress / max(1, ctx.epochs), o.ramp_start, o.ramp_end)

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        o = self.options
        z_l = self.logits(flatten_frames(batch["frames"]))
        loss_sup = weighted_bce_with_logits(z_l, flatten_frames(batch["labels"]), self.class_weights)
        logs = {"loss_sup": float(loss_sup.detach())}
        loss = loss_sup
        weight = self.unlabelled_weight(ctx)
        logs["w_u"] = weight
        unl = batch.get("unlabelled")
        if unl is not None and weight > 0:
            x_u = flatten_frames(unl["frames"])
            if o.freeze_bn_unlabelled:
                with frozen_bn_stats(self):
                    z_u = self.logits(x_u)
            else:
                z_u = self.logits(x_u)
            targets, mask = hard_pseudo_labels(torch.sigmoid(z_u.detach().float()), o.confidence, o.negative_confidence)
            loss_u = masked_pseudo_label_bce(z_u, targets, mask, o.normalise)
            loss = loss + weight * loss_u
            logs["loss_u"] = float(loss_u.detach())
            true = unl.get("true_labels")
            logs.update(pseudo_label_logs(targets, mask, None if true is None else flatten_frames(true)))
        logs["loss"] = float(loss.detach())
        return StepOutput(loss, logs)
