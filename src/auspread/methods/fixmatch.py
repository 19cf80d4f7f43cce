"""FixMatch (Sohn et al. 2020) for multi-label AUs, as in KS §4.3.1 / supplement Table 1.

The supervised ResNet-18 frame classifier (``auspread.methods.supervised``) plus weak/strong consistency on μ·B
unlabelled frames (``docs/methods/fixmatch.md``). One forward pass over [x_l, u_weak, u_strong] so BatchNorm sees
all of it (google-research ``fixmatch.py``), then per AU k::

    p = sg σ(z_weak),  ŷ = 1[p ≥ 0.5],  m = 1[p ≥ τ_pos] + 1[p ≤ 1 − τ_neg]
    ℓ_u = Σ_ik m_ik · BCE(ŷ_ik, z_strong,ik) / (μB·U)          (the mean over all μB items of the reference)
    L = L_sup(z_l, y) + λ_u · ℓ_u                                L_sup = weighted BCE of KS Eq. 3

Reference defaults: τ = 0.95, λ_u = 1, μ = 7; an EMA of the weights (0.999) for evaluation is the engine's
``optim.ema``. Weak view = the clip-consistent training augmentation; strong view = the pipeline's strong
augmentation of the same frames (``DataSpec.strong_view``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import DataSpec, StepContext, StepOutput, register_method
from auspread.methods.ssl_common import flatten_frames, pseudo_label_logs
from auspread.methods.supervised import Supervised, SupervisedOptions


class FixMatchOptions(SupervisedOptions):
    name: Literal["fixmatch"] = "fixmatch"  # type: ignore[assignment]
    unlabelled_ratio: float = Field(7.0, gt=0, description="mu: unlabelled frames per labelled frame (reference 7)")
    confidence: float = Field(0.95, ge=0.5, le=1.0, description="tau_pos: keep a positive pseudo-label when p >= tau")
    negative_confidence: float | None = Field(None, ge=0.5, le=1.0, description="tau_neg (None = confidence): keep a negative when p <= 1 - tau_neg")
    lambda_u: float = Field(1.0, ge=0, description="weight wu of the unlabelled loss (reference 1)")
    normalise: Literal["all", "masked"] = "all"  # reference: mean over all μB items; "masked": over kept entries


@register_method
class FixMatch(Supervised):
    """Supervised ResNet-18 frame classifier + per-AU weak→strong confidence-masked pseudo-labels."""

    name = "fixmatch"
    Options = FixMatchOptions
    options: FixMatchOptions

    def data_spec(self) -> DataSpec:
        return DataSpec(clip_len=1, sampling="key_frames", unlabelled_ratio=self.options.unlabelled_ratio, strong_view=True)

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        o = self.options
        x_l = flatten_frames(batch["frames"])
        y_l = flatten_frames(batch["labels"])
        unl = batch.get("unlabelled")
        if unl is None:  # nothing unlabelled this step (e.g. before DataSpec.unlabelled_from_epoch)
            z_l = self.logits(x_l)
            loss = weighted_bce_with_logits(z_l, y_l, self.class_weights)
            return StepOutput(loss, {"loss_sup": float(loss.detach()), "loss": float(loss.detach())})
        u_w, u_s = flatten_frames(unl["frames"]), flatten_frames(unl["strong"])
        z = self.logits(torch.cat([x_l, u_w, u_s]))
        nb, nu = x_l.shape[0], u_w.shape[0]
        z_l, z_w, z_s = z[:nb], z[nb : nb + nu], z[nb + nu :]
        loss_sup = weighted_bce_with_logits(z_l, y_l, self.class_weights)
        targets, mask = hard_pseudo_labels(torch.sigmoid(z_w.detach().float()), o.confidence, o.negative_confidence)
        loss_u = masked_pseudo_label_bce(z_s, targets, mask, o.normalise)
        loss = loss_sup + o.lambda_u * loss_u
        logs = {"loss_sup": float(loss_sup.detach()), "loss_u": float(loss_u.detach()), "loss": float(loss.detach())}
        true = unl.get("true_labels")
        logs.update(pseudo_label_logs(targets, mask, None if true is None else flatten_frames(true)))
        return StepOutput(loss, logs)
