"""MDHR (Wang et al., CVPR 2024) as a training method: the network of ``auspread.models.mdhr`` trained with the
weighted asymmetric loss (Eq. 10) plus λ times the auxiliary region-combination CE (Eqs. 11–12), on one random
16-frame window per video per epoch (the official recipe, reference B.1). See docs/methods/mdhr.md.

Sparse labels: frames whose labels are hidden (−1) contribute nothing to Eq. 10, and a region contributes to Eq. 11
only on frames where *all* of its AU labels are known (its combination class is undefined otherwise).
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from pydantic import Field, field_validator, model_validator

from auspread.losses.asymmetric import weighted_asymmetric_loss
from auspread.losses.region_ce import region_cross_entropy
from auspread.methods.base import DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput, register_method
from auspread.models.mdhr import MDHRNet, Pyramid, RegionLayout, encode_region_classes


class MDHROptions(MethodOptions):
    """MDHR's options. Defaults are the official ResNet-50 model and recipe (reference B.1–B.9)."""

    name: Literal["mdhr"] = "mdhr"
    backbone: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2", "swin_t", "swin_b"] = "resnet50"
    width: int = Field(512, ge=4, description="token / AU feature width b (official 512)")
    mfd_channels: int | None = Field(None, ge=4, description="MFD projection channels; None = last stage's (official 8c)")
    clip_len: int = Field(16, ge=2, description="frames per training and test clip (official --length 16)")
    k: int = Field(5, ge=1, description="MFD temporal window: differences t-k .. t+k-1 (official --k 5)")
    # Table 3 ablations
    mfd: bool = True
    afe: bool = True
    aux: bool = True
    crm: bool = True
    tcn: bool = True
    # Table 4: fusion of the scales and which backbone stages feed the MFD
    fusion: Literal["adaptive", "sum", "concat"] = "adaptive"
    mfd_scales: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    # Table 5: cross-regional edges
    edges: Literal["active_cross", "cross", "full", "local"] = "active_cross"
    # region groups: from aus.json by AU set (auto), a named dataset's, or anatomical regions of the vocabulary
    regions: Literal["auto", "BP4D", "DISFA", "anatomical"] = "auto"
    region_linear: Literal["auto", "always", "never"] = "auto"  # auto: iff two groups share a band (official)
    lam: float = Field(0.01, ge=0, description="λ of Eq. 12")
    class_weights: bool = True  # w_j of reference C.4 in Eq. 10; False = all ones
    # what a training clip is drawn around (docs/methods/mdhr.md, "Sparse labels"): video_windows = one random window
    # per video per epoch (the official recipe); key_frames = one window around each labelled key frame, only that
    # frame's label visible (KS's clips: with sparse labels every clip then carries a label)
    sampling: Literal["video_windows", "key_frames"] = "video_windows"

    @field_validator("mfd_scales")
    @classmethod
    def _scales(cls, v: list[int]) -> list[int]:
        if not v or any(s not in (1, 2, 3, 4) for s in v) or len(set(v)) != len(v):
            raise ValueError(f"mfd_scales must be distinct backbone stages among 1, 2, 3, 4; got {v}")
        return sorted(v)

    @model_validator(mode="after")
    def _edges_need_aux(self) -> "MDHROptions":
        if self.crm and self.edges == "active_cross" and not self.aux:
            raise ValueError("edges='active_cross' uses the Aux predictions: set aux=true or edges=cross|full|local")
        return self


@register_method
class MDHR(Method):
    """MDHR: MFD + HSR (AFE, Aux, cross-regional GAT) + per-AU TCN + SC head."""

    name = "mdhr"
    Options = MDHROptions

    def __init__(self, options: MDHROptions, info: DatasetInfo, pretrained: str | None = None):
        super().__init__(options, info)
        self.layout = RegionLayout.for_aus(info.aus, options.regions)
        rl = {"auto": None, "always": True, "never": False}[options.region_linear]
        self.net = MDHRNet(
            self.layout,
            backbone=options.backbone,
            pretrained=pretrained,
            width=options.width,
            mfd_channels=options.mfd_channels,
            k=options.k,
            fusion=options.fusion,
            scales=options.mfd_scales,
            mfd=options.mfd,
            afe=options.afe,
            aux=options.aux,
            crm=options.crm,
            tcn=options.tcn,
            edges=options.edges,
            region_linear=rl,
        )
        self.register_class_weights(info, options.class_weights)

    def data_spec(self) -> DataSpec:
        return DataSpec(clip_len=self.options.clip_len, sampling=self.options.sampling)

    # --- training ----------------------------------------------------------------------------------------------
    def losses(self, frames: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``L = L_AU + λ·L_sub`` (Eq. 12) on clips ``(B, T, 3, H, W)`` with labels ``(B, T, U)`` (−1 = unknown)."""
        out = self.net(frames)
        wa = weighted_asymmetric_loss(out.probs, labels, self.class_weights)
        loss = wa
        logs = {"wa": float(wa.detach()), "known": float((labels >= 0).float().mean())}
        if out.aux_logits and self.options.lam > 0:
            targets = encode_region_classes(labels, self.layout)  # (B, T, G), -1 where a member label is unknown
            ce = region_cross_entropy(
                [z.reshape(-1, z.shape[-1]) for z in out.aux_logits],
                [targets[..., g].reshape(-1) for g in range(targets.shape[-1])],
            )
            loss = loss + self.options.lam * ce
            logs["aux_ce"] = float(ce.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        loss, logs = self.losses(batch["frames"], batch["labels"])
        return StepOutput(loss, logs)

    # --- inference ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_video(self, chunks: Iterable[torch.Tensor], num_frames: int) -> torch.Tensor:
        """Per-frame probabilities ``(T, U)`` over a whole video, as the official test (reference B.1).

        The video is cut into consecutive non-overlapping clips of ``clip_len`` frames; the last, shorter clip is
        padded by repeating its last frame and the padded outputs are dropped. Backbone maps are computed once per
        frame, chunk by chunk as the chunks arrive; the head runs on every complete clip as soon as it exists, so
        memory stays bounded by one chunk plus one clip of maps whatever the video length. (Repeating the last
        frame's maps equals repeating the last image: the backbone is per frame and in eval mode.)
        """
        L = self.options.clip_len
        pending: Pyramid | None = None
        outputs: list[torch.Tensor] = []
        for chunk in chunks:
            pyr = self.net.backbone(chunk)
            pending = pyr if pending is None else Pyramid.cat([pending, pyr])
            full = len(pending) // L
            if full:
                outputs.append(self._clips(pending.slice(0, full * L), full, L))
                pending = pending.slice(full * L, len(pending))
        if pending is not None and len(pending) > 0:
            n = len(pending)
            outputs.append(self._clips(pending.repeat_last(L - n), 1, L)[:n])
        if not outputs:
            return torch.zeros(0, self.info.num_aus)
        return torch.cat(outputs)[:num_frames].float()

    def _clips(self, pyr: Pyramid, B: int, T: int) -> torch.Tensor:
        return self.net.forward_features(pyr, B, T).probs.reshape(B * T, -1)

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(k, 3, H, W)`` consecutive frames → ``(k, U)``, treated as one short video."""
        return self.predict_video([frames], frames.shape[0])
