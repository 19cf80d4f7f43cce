"""Knowledge-Spreader (Li, Zhang, Wang, Yin; arXiv 2203.16678): SIL + KSM + TPL, trained from video clips with a
single labelled key frame each. Every equation is mapped to this code in docs/methods/knowledge_spreader.md.

One training step (labelled clips, key frame at position m = batch["key_pos"], m = b mod n from the sampler)::

    L = L_bce(mean(S_a, T_b^m), y)                                     Eq. 3/7, the final ensemble
      + [ L_bce(S_a, y) + L_bce(S_b^m, y) + w(t) λ (L_KL^s + L_KL^t) ]  Eq. 4 (N = 2, λ = 0.5), Eq. 1–2
      + w_tb · L_bce(T_b^m, y)                                          Eq. 4's temporal pair (T_a = S_a)
      + w(t) · [ L_PL + L_self ]                                        Eq. 5, TPL, ramp-up Eq. 8

- Every term is a mean over AUs and samples, so λ weighs a KL against a BCE per AU (issue 17).
- w(t) (Eq. 8) ramps the whole semi-supervised part: the two KL terms of KSM (``distill_ramp``), L_PL and L_self.
- T_b carries its own weighted BCE at the key position (``w_tb = 1``): Eq. 4 is written for the N = 2 networks of
  each level, (S_a, S_b^m) and (T_b, T_a); T_a = S_a already has its BCE.

- L_KL^s: KL(p_t ‖ S_b^m) with the online-ensemble soft target p_t = ½(σ(S_a/τ) + σ(S_b^m/τ)), detached.
- L_KL^t: KL(σ(T_b^m/τ) ‖ S_a), T_b's target detached (T_b teaches the Temporal Student T_a = S_a).
- L_PL: every student S_b^j on the positions j without a label (j ≠ m; all n positions of fully unlabelled clips)
  against hard pseudo-labels 1[σ(T_b^j) ≥ 0.5] from the Temporal Teacher (detached), kept only for clips whose
  original frame-token order the TPL head accepts.
- L_self: the TPL head tells original from shuffled sequences (frames reordered before the students by default,
  ``tpl_shuffle``).
- Fully unlabelled clips (``batch["unlabelled"]``, from epoch 10, supplement §1.3) contribute L_PL and L_self only.
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from pydantic import Field, model_validator

from auspread.losses.bernoulli_kl import bernoulli_kl, bernoulli_kl_from_logits
from auspread.losses.ramp import gaussian_rampup
from auspread.losses.temporal_shuffle import random_non_identity_permutations, shuffle_tokens, temporal_order_loss, tpl_keep
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, register_method
from auspread.models.ks import KSNet, mean_prob_logit


class KSOptions(MethodOptions):
    """Knowledge-Spreader options. Paper values are noted where the paper gives them."""

    name: Literal["ks"] = "ks"
    # --- networks (§3.1.1, supplement §1.1) ---
    backbone: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2"] = "resnet18"  # paper: ResNet-18 (ImageNet) in both branches
    clip_len: int = Field(5, ge=2, le=16, description="n: frames per clip = number of Spatial Students (paper: 5; studied 2-7)")
    width: int = Field(64, ge=4, description="token width W (paper: W = U, which 8 heads cannot divide for U = 12)")
    heads: int = Field(8, ge=1, description="attention heads of S_a and T_b (paper: 8)")
    depth: int = Field(2, ge=1, description="encoder blocks of S_a and T_b (paper: 'multiple identical blocks')")
    ff_mult: int = Field(4, ge=1, description="feed-forward width = ff_mult * W (ViT: 4)")
    student_hidden: int = Field(256, ge=1, description="hidden units of each MLP Spatial Student")
    student_dropout: float = Field(0.3, ge=0, lt=1, description="dropout noise of the Spatial Students")
    # "per_position": n students with their own weights (the paper); "shared": one set of weights for every position,
    # each position with its own dropout draw (not in the paper; docs/methods/knowledge_spreader.md, issue 17)
    students: Literal["per_position", "shared"] = "per_position"
    encoder_dropout: float = Field(0.1, ge=0, lt=1)
    sil: Literal["transformer", "mlp"] = "transformer"  # "mlp": Table 3 ablation KSM+TPL
    # "none": no LayerNorm in the token encoders (not in the paper; from random weights the per-token LayerNorm holds
    # S_a on the base-rate plateau: docs/methods/knowledge_spreader.md, "Measured on the synthetic benchmark")
    encoder_norm: Literal["layer", "none"] = "layer"
    # initialisation of S_a's per-AU linear head: "trunc_normal" (std 0.02, ViT/timm) or "linear" (nn.Linear's
    # uniform ±1/sqrt(W)); not in the paper. With encoder_norm=none, "linear" is the head diagnosis' fastest S_a (row V)
    au_head_init: Literal["trunc_normal", "linear"] = "trunc_normal"
    # --- KSM (§3.1.2, Eq. 1-6) ---
    distill: bool = True  # False: Table 3 ablation SIL+TPL (no L_KL^s, L_KL^t; key-frame shifting kept)
    # Eq. 7-8 ramp "the semi-supervised learning"; KSM's two KL terms are part of it, so they follow w(t) too
    # (False: both at full strength from step 0, as before issue 17)
    distill_ramp: bool = True
    # reduction of the Bernoulli KLs of Eq. 1-2 over the U AUs: "mean" (the Eq. 3 BCE's reduction, so λ weighs a soft
    # target against a label per AU) or "sum" (the KL of the joint distribution of U independent AUs: λ·U per AU)
    kl_reduction: Literal["mean", "sum"] = "mean"
    kd_lambda: float = Field(0.5, ge=0, description="λ of Eq. 4 (paper: 0.5)")
    temperature: float = Field(1.0, gt=0, description="τ of Eq. 1-2 (paper: 1)")
    pseudo_label: bool = True  # Eq. 5; False removes pseudo-labelling (supplement §2.4 ablation)
    pseudo_source: Literal["temporal_teacher", "student"] = "temporal_teacher"
    pl_threshold: float = Field(0.5, gt=0, lt=1, description="per-AU argmax of the binary distribution = 0.5")
    # --- TPL (§3.1.3) ---
    tpl: bool = True  # False: Table 3 ablation SIL+KSM (no L_self, no filter: naive pseudo-labels)
    tpl_threshold: float = Field(0.5, gt=0, lt=1, description="keep a clip's pseudo-labels iff σ(order logit) ≥ this")
    # what is shuffled to make a perturbed sequence: "frames" (default) reorders the frames' backbone features before
    # the Spatial Students, so position j's own student encodes whichever frame now sits at j and only the temporal
    # content differs; "tokens" reorders the students' output tokens D_b (the literal reading), which moves each
    # student's output to another position: the order head can then tell shuffled from original by which student
    # made a token, whatever the frames (measured: TPL accuracy 1.0 from the first epoch, every clip kept).
    tpl_shuffle: Literal["frames", "tokens"] = "frames"
    # --- Eq. 7-8 (the paper's λ values are lost: the terms of Eq. 7 have unit weights) ---
    w_tb: float = Field(1.0, ge=0, description="weighted BCE on T_b at the key position: our reading of Eq. 4's "
                        "temporal pair (T_b, T_a); 0 = T_b supervised through the ensemble term only (before issue 17)")
    ramp_epochs: float = Field(5.0, ge=0, description="w(t) reaches 1 after this many epochs (paper: 5)")
    # --- data (supplement §1.2-1.3) ---
    unlabelled_ratio: float = Field(1.0, ge=0, description="mu: fully unlabelled clips per labelled clip (0 = none)")
    unlabelled_from_epoch: int = Field(10, ge=0, description="unlabelled clips only from this epoch (paper: 10)")
    class_weights: bool = True  # w_j of Eq. 3
    # --- inference (§6.3, supplement §1.4) ---
    dense_positions: Literal["all", "shift"] = "all"  # "all": average T_b over every key position; "shift": m = t mod n

    @model_validator(mode="after")
    def _check(self) -> "KSOptions":
        if self.sil == "transformer" and self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads} (the paper's W = U = 12 with 8 heads is not)")
        return self


@register_method
class KnowledgeSpreader(Method):
    """Knowledge-Spreader: two ResNet-18 branches, SIL transformers, KSM distillation + pseudo-labels, TPL."""

    name = "ks"
    Options = KSOptions

    def __init__(self, options: KSOptions, info: DatasetInfo, pretrained: str | None = None):
        super().__init__(options, info)
        o = options
        self.net = KSNet(
            num_aus=info.num_aus,
            clip_len=o.clip_len,
            width=o.width,
            heads=o.heads,
            depth=o.depth,
            ff_mult=o.ff_mult,
            student_hidden=o.student_hidden,
            student_dropout=o.student_dropout,
            encoder_dropout=o.encoder_dropout,
            sil=o.sil,
            encoder_norm=o.encoder_norm,
            au_head_init=o.au_head_init,
            backbone=o.backbone,
            pretrained=pretrained,
            students=o.students,
        )
        self.register_class_weights(info, o.class_weights)
        self._pl_counts: dict[str, float] = {}  # pseudo-label accuracy counts of the current epoch (logging only)

    def data_spec(self) -> DataSpec:
        o = self.options
        return DataSpec(
            clip_len=o.clip_len,
            sampling="key_frames",
            key_frame_shift=True,
            unlabelled_ratio=o.unlabelled_ratio,
            unlabelled_from_epoch=o.unlabelled_from_epoch,
        )

    # --- training -----------------------------------------------------------------------------------------------
    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        terms, logs = self.compute_losses(batch)
        o = self.options
        ramp = gaussian_rampup(ctx.progress, o.ramp_epochs)  # Eq. 8
        kd = o.kd_lambda * (ramp if o.distill_ramp else 1.0)
        ksm = terms["sa_bce"] + terms["student_bce"] + kd * (terms["kl_spatial"] + terms["kl_temporal"])  # Eq. 4
        loss = terms["ens_bce"] + ksm + ramp * (terms["pl"] + terms["self"])  # Eq. 7
        if o.w_tb > 0:  # Eq. 4's temporal pair: T_b's own supervised term
            loss = loss + o.w_tb * terms["tb_bce"]
        for k in ("pl_labels_all", "pl_correct_all", "pl_labels_kept", "pl_correct_kept"):
            if k in logs:
                self._pl_counts[k] = self._pl_counts.get(k, 0.0) + logs[k]
        logs = {"loss": float(loss.detach()), **{f"l_{k}": float(v.detach()) for k, v in terms.items()}, "ramp": ramp, **logs}
        return StepOutput(loss, logs)

    def compute_losses(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Every loss term of one step as a scalar tensor (unweighted), and the non-loss logs.

        Terms: ``ens_bce`` (Eq. 3 on the final ensemble), ``sa_bce`` and ``student_bce`` (Eq. 4's supervised part),
        ``tb_bce`` (T_b at the key position), ``kl_spatial`` (Eq. 1), ``kl_temporal`` (Eq. 2), ``pl`` (Eq. 5), ``self``
        (TPL's L_self). Ablated terms are 0.
        """
        o, net, w = self.options, self.net, self.class_weights
        frames, labels, key_pos = batch["frames"], batch["labels"], batch["key_pos"].long()
        b, n = frames.shape[:2]
        if n != o.clip_len:
            raise ValueError(f"batch clip length {n} differs from ks.clip_len {o.clip_len} (DataSpec not honoured?)")
        if ((key_pos < 0) | (key_pos >= n)).any():
            raise ValueError(f"labelled KS clips need key_pos in [0, {n}), got {key_pos.tolist()}")
        unl = batch.get("unlabelled")
        has_unl = unl is not None and unl["frames"].shape[0] > 0
        all_frames = torch.cat([frames, unl["frames"]]) if has_unl else frames
        nb = all_frames.shape[0]
        ar = torch.arange(b, device=frames.device)

        # one branch-B pass over labelled + unlabelled clips; branch A on the labelled key frames only
        feats_b = net.features_b(all_frames.flatten(0, 1)).view(nb, n, -1)
        tokens, st_logits = net.student_outputs(feats_b)
        tb_logits, tb_hidden = net.temporal_head(tokens)
        sa = net.spatial_head(net.features_a(frames[ar, key_pos]))  # S_a = T_a on the key frame
        y = labels[ar, key_pos]
        st_m = st_logits[ar, key_pos]  # the active Spatial Student S_b^m on the key frame
        tb_m = tb_logits[ar, key_pos]  # the Temporal Teacher at the key position
        zero = sa.sum() * 0.0

        terms: dict[str, torch.Tensor] = {}
        # Eq. 3/7: supervised BCE on the final ensemble (mean of S_a and T_b probabilities)
        terms["ens_bce"] = weighted_bce_with_logits(mean_prob_logit(sa, tb_m), y, w)
        # Eq. 4: supervised BCE on the N = 2 networks of the spatial pair
        terms["sa_bce"] = weighted_bce_with_logits(sa, y, w)
        terms["student_bce"] = weighted_bce_with_logits(st_m, y, w)
        # T_b alone at the key position (Eq. 4's temporal pair); in the loss with weight w_tb (default 1)
        terms["tb_bce"] = weighted_bce_with_logits(tb_m, y, w)
        # Eq. 1-2: two-level online distillation, targets detached
        if o.distill:
            tau = o.temperature
            soft_target = 0.5 * (torch.sigmoid(sa.float() / tau) + torch.sigmoid(st_m.float() / tau))  # online ensemble
            over_aus = sa.shape[-1] if o.kl_reduction == "sum" else 1  # mean over AUs × U = sum over AUs
            terms["kl_spatial"] = over_aus * bernoulli_kl(soft_target, st_m, tau)  # S_a → S_b^m
            terms["kl_temporal"] = over_aus * bernoulli_kl_from_logits(tb_m, sa, tau)  # T_b → T_a
        else:
            terms["kl_spatial"] = terms["kl_temporal"] = zero

        # TPL (§3.1.3): order head on original vs shuffled frame tokens; the filter uses the original's verdict
        logs: dict[str, float] = {"key_pos": float(key_pos[0]), "unlabelled_clips": float(nb - b)}
        if o.tpl:
            perms = random_non_identity_permutations(nb, n, device=frames.device)
            if o.tpl_shuffle == "frames":
                shuf_tokens = net.student_outputs(shuffle_tokens(feats_b, perms))[0]
            else:
                shuf_tokens = shuffle_tokens(tokens, perms)
            _, shuf_hidden = net.temporal_head(shuf_tokens)
            logit_orig, logit_shuf = net.order_logit(tb_hidden), net.order_logit(shuf_hidden)
            terms["self"] = temporal_order_loss(logit_orig, logit_shuf)
            keep_clip = tpl_keep(logit_orig, o.tpl_threshold)
            logs["tpl_acc"] = float(0.5 * ((logit_orig > 0).float().mean() + (logit_shuf <= 0).float().mean()))
        else:
            terms["self"] = zero
            keep_clip = torch.ones(nb, dtype=torch.bool, device=frames.device)

        # Eq. 5: pseudo-labels for the unlabelled positions (all but the key position; every position of
        # fully unlabelled clips), per-AU threshold 0.5 on the Temporal Teacher (detached), filtered by TPL
        unlabelled_pos = torch.ones(nb, n, dtype=torch.bool, device=frames.device)
        unlabelled_pos[ar, key_pos] = False
        source = tb_logits if o.pseudo_source == "temporal_teacher" else st_logits
        pseudo = (torch.sigmoid(source.detach().float()) >= o.pl_threshold).float()
        kept = unlabelled_pos & keep_clip[:, None]
        if o.pseudo_label:
            targets = torch.where(kept[..., None], pseudo, torch.full_like(pseudo, -1.0))
            terms["pl"] = weighted_bce_with_logits(st_logits, targets, w)
        else:
            terms["pl"] = zero
        logs.update(self._pseudo_label_logs(batch, unl if has_unl else None, pseudo, unlabelled_pos, kept))
        return terms, logs

    @staticmethod
    def _pseudo_label_logs(batch: dict, unl: dict | None, pseudo: torch.Tensor, candidates: torch.Tensor, kept: torch.Tensor) -> dict[str, float]:
        """Counts of pseudo-labelled frames (all candidates, and kept by TPL) and, when the batch carries the hidden
        ``true_labels``, of pseudo-labels (frame × AU entries with a known truth) and of correct ones, with and
        without the TPL filter. ``true_labels`` is used for these logs only, never in a loss. Counts (not ratios)
        so that epoch means give exact epoch accuracies: acc = mean(pl_correct_*) / mean(pl_labels_*)."""
        logs = {"pl_frames": float(candidates.sum()), "pl_frames_kept": float(kept.sum())}
        logs["pl_kept_frac"] = logs["pl_frames_kept"] / max(1.0, logs["pl_frames"])
        if "true_labels" not in batch or (unl is not None and "true_labels" not in unl):
            return logs
        truth = batch["true_labels"] if unl is None else torch.cat([batch["true_labels"], unl["true_labels"]])
        truth = truth.to(pseudo.device)
        known = truth >= 0
        correct = (pseudo == truth) & known
        for name, mask in (("all", candidates), ("kept", kept)):  # "all" = naive pseudo-labelling, no filter
            m = mask[..., None]
            logs[f"pl_labels_{name}"] = float((known & m).sum())
            logs[f"pl_correct_{name}"] = float((correct & m).sum())
        return logs

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Epoch accuracy of the pseudo-labels against the hidden truth, without (``pl_acc_all``) and with
        (``pl_acc_kept``) the TPL filter (KS §4.5 reports 73.36% vs 76.35% on BP4D at 10% labels)."""
        c, self._pl_counts = self._pl_counts, {}
        out = {}
        for name in ("all", "kept"):
            if c.get(f"pl_labels_{name}", 0) > 0:
                out[f"pl_acc_{name}"] = c[f"pl_correct_{name}"] / c[f"pl_labels_{name}"]
        return out

    # --- inference (§6.3, supplement §1.4) ------------------------------------------------------------------------
    def _window_starts(self, num_frames: int, device: torch.device) -> torch.Tensor:
        n = self.options.clip_len
        if self.options.dense_positions == "all":  # every window that holds some frame t at some position m
            return torch.arange(-(n - 1), num_frames, device=device)
        return torch.arange(0, num_frames, n, device=device)  # frame t is the key at m = t mod n

    def _key_positions(self, t: int) -> list[int]:
        """Key positions at which frame t is predicted (the naive reference uses the same rule)."""
        n = self.options.clip_len
        return list(range(n)) if self.options.dense_positions == "all" else [t % n]

    def dense_temporal_probs(self, feats_b: torch.Tensor, window_batch: int = 256) -> torch.Tensor:
        """T_b probabilities ``(T, U)`` of every frame from cached backbone-B features ``(T, C)``.

        Window s holds frames clamp(s + j, 0, T-1) at positions j (edge frames repeat). Frame t as the key at
        position m comes from window s = t - m; its probability is averaged over its key positions.
        """
        t_total = feats_b.shape[0]
        n = self.options.clip_len
        tokens = self.net.all_student_tokens(feats_b)  # (n, T, W): student j's token for every frame
        pos = torch.arange(n, device=feats_b.device)
        acc = torch.zeros(t_total, self.info.num_aus, device=feats_b.device)
        count = torch.zeros(t_total, device=feats_b.device)
        for starts in self._window_starts(t_total, feats_b.device).split(window_batch):
            frame_at = starts[:, None] + pos  # (w, n) frame index at each position
            idx = frame_at.clamp(0, t_total - 1)
            logits, _ = self.net.temporal_head(tokens[pos.expand_as(idx), idx])
            probs = torch.sigmoid(logits.float())
            valid = (frame_at >= 0) & (frame_at < t_total)
            acc.index_add_(0, frame_at[valid], probs[valid])
            count.index_add_(0, frame_at[valid], torch.ones_like(frame_at[valid], dtype=acc.dtype))
        return acc / count[:, None]

    @torch.no_grad()
    def predict_video(self, chunks: Iterable[torch.Tensor], num_frames: int) -> torch.Tensor:
        """Dense per-frame probabilities ``(T, U)`` = mean of S_a and T_b. Each frame goes once through each
        backbone; the cached features are reused by every overlapping clip (cost ≈ one pass of both backbones)."""
        sa_probs, feats_b = [], []
        for chunk in chunks:
            sa_probs.append(torch.sigmoid(self.net.spatial_head(self.net.features_a(chunk)).float()))
            feats_b.append(self.net.features_b(chunk))
        if not feats_b or num_frames == 0:
            return torch.zeros(0, self.info.num_aus)
        sa = torch.cat(sa_probs)[:num_frames]
        tb = self.dense_temporal_probs(torch.cat(feats_b)[:num_frames])
        return 0.5 * (sa + tb)

    @torch.no_grad()
    def predict_video_naive(self, frames: torch.Tensor) -> torch.Tensor:
        """Reference for tests and the benchmark: the same predictions as :meth:`predict_video`, recomputing both
        backbones for every (frame, key position) clip. ``frames (T, 3, H, W)`` → ``(T, U)``."""
        t_total, n = frames.shape[0], self.options.clip_len
        out = []
        for t in range(t_total):
            sa_p, tb_p = [], []
            for m in self._key_positions(t):
                idx = torch.arange(t - m, t - m + n, device=frames.device).clamp(0, t_total - 1)
                r = self.net(frames[idx][None], torch.tensor([m], device=frames.device))
                sa_p.append(torch.sigmoid(r.sa_logits[0].float()))
                tb_p.append(torch.sigmoid(r.tb_logits[0, m].float()))
            out.append(0.5 * (torch.stack(sa_p).mean(0) + torch.stack(tb_p).mean(0)))
        return torch.stack(out)

    @torch.no_grad()
    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Still images ``(k, 3, H, W)`` → ``(k, U)``: each image is a static clip (the image at every position),
        so T_b is averaged over all key positions; prediction = mean of S_a and T_b."""
        sa = torch.sigmoid(self.net.spatial_head(self.net.features_a(frames)).float())
        tokens = self.net.all_student_tokens(self.net.features_b(frames)).transpose(0, 1)  # (k, n, W)
        logits, _ = self.net.temporal_head(tokens)
        return 0.5 * (sa + torch.sigmoid(logits.float()).mean(1))
