"""Typed configuration of ``auspread pretrain`` and the key of its cache.

A pretraining run is an ordinary engine run: :class:`PretrainConfig` has the run config's ``data``, ``optim``,
``seed``, ``device``, ``threads`` and logging keys (so ``auspread.engine.loop.Trainer`` drives it) plus the
``recipe`` (objective, architecture, heads, views). Saved as ``config.yaml`` in the run folder and in every
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from auspread.engine.config import DataConfig, OptimConfig, apply_overrides, read_yaml_mapping
from auspread.errors import ConfigError
from auspread.models.backbones import PRETRAIN_TRUNK_FORMAT as TRUNK_FORMAT  # in the cache key: bump it there

PretrainArch = Literal["resnet18", "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b1", "mobilenet_v2"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ViewAugment(_Strict):
    """Per-view augmentation (two independent draws per pair). Expression-keeping views (issue 18, session 9): a
    mild crop (80–100% of the area; AUs are small regions and their position is information), ±5° roll, colour
    jitter, greyscale and flips, no blur and no solarisation; BYOL's recipe (Grill et al. 2020, Table 6: crops
    down to 8%, blur (1.0, 0.1), solarisation (0, 0.2)) removed AU information here (docs/methods/pretraining.md).
    Pairs of probabilities are (view 1, view 2)."""

    crop_scale: tuple[float, float] = (0.8, 1.0)  # area fraction of the store frame kept by the random crop
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)  # aspect ratio range of the crop
    rotation: float = Field(5.0, ge=0, le=180)  # max |roll| in degrees
    flip: bool = True  # horizontal flip, p = 1/2 (the AU codes of BP4D/DISFA are bilateral: a flip keeps them)
    color_jitter: float = Field(0.4, ge=0, le=1)  # brightness and contrast factor ±j, saturation ±j/2
    jitter_p: float = Field(0.8, ge=0, le=1)
    grey_p: float = Field(0.2, ge=0, le=1)
    blur_p: tuple[float, float] = (0.0, 0.0)  # BYOL: (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # at 224 px; scaled by image_size / 224
    solarize_p: tuple[float, float] = (0.0, 0.0)  # BYOL: (0.0, 0.2)


class PretrainRecipe(_Strict):
    """What is learned and how: objective, trunk architecture, heads, views."""

    objective: Literal["byol", "simclr"] = "simclr"  # SimCLR's NT-Xent, or BYOL (with temporal positives if temporal_offset > 0)
    arch: PretrainArch = "resnet18"  # the trunk of the method it is for (ResNet of KS/MDHR/baselines, PIAP-DF's EfficientNet)
    temporal_offset: int = Field(0, ge=0)  # the 2 views come from frames t and t+d, |d| <= this (0: the same frame)
    proj_hidden: int = Field(2048, ge=8)  # projector / predictor MLP hidden width
    proj_dim: int = Field(256, ge=8)  # projection size
    momentum: float = Field(0.99, ge=0, le=1)  # τ_base of the target network's EMA (cosine to 1; BYOL §3.2)
    temperature: float = Field(0.2, gt=0)  # simclr: τ of NT-Xent
    frames_per_video: int = Field(8, ge=1)  # frames of one video per batch (1: frames drawn uniformly over all videos);
    # M > 1 draws B/M videos and M frames spread over each, so that with simclr the other frames of the same video
    # (same face, other AUs and pose) are negatives: within-video contrast
    views: ViewAugment = ViewAugment()


class ProbeConfig(_Strict):
    """The linear probe of ``--probe``: a logistic-regression head on frozen trunk features of the labelled
    training frames (``data.labels``), scored by mean F1 on the validation subjects."""

    steps: int = Field(300, ge=1)  # full-batch Adam steps on the cached features
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(1e-4, ge=0)


def _default_optim() -> OptimConfig:
    """600 steps of 32 pairs: sized for the issue's 30 minutes at 64 px on a 2-core CPU (ResNet-18; about 12 pairs/s
    when the machine is not shared, see docs/methods/pretraining.md); epochs of 40 steps bound the loss on a kill."""
    return OptimConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-4, epochs=15, batch_size=32, steps_per_epoch=40,
                       schedule="cosine", amp="auto")


class PretrainConfig(_Strict):
    recipe: PretrainRecipe = PretrainRecipe()
    data: DataConfig = DataConfig(image_size=64)
    optim: OptimConfig = Field(default_factory=_default_optim)
    probe: ProbeConfig = ProbeConfig()
    seed: int = 0  # also the split seed (validation subjects), as in a training run
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    out_dir: Path | None = None  # None: the cache, $AUSPREAD_CACHE/pretrain/<key> (reused by pretrained=pretrain:auto)
    name: str | None = None  # run folder name under out_dir
    log_every: int = Field(10, ge=1)
    eval_every: int = Field(1, ge=1)  # (the engine's key; pretraining has no validation)

    @field_validator("optim", "data", mode="before")
    @classmethod
    def _section_defaults(cls, v, info):
        """A partial ``optim`` / ``data`` mapping starts from the pretraining defaults, not the training run's."""
        if isinstance(v, dict):
            base = _default_optim().model_dump() if info.field_name == "optim" else {"image_size": 64}
            return {**base, **v}
        return v


QUICK = ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=3", "optim.steps_per_epoch=8",
         "optim.batch_size=16", "recipe.proj_hidden=256", "recipe.proj_dim=64", "recipe.frames_per_video=4"]
"""``auspread pretrain --quick``: the tiny synthetic preset at 32 px, 24 steps (a smoke run of a minute)."""


def build_pretrain_config(raw: dict) -> PretrainConfig:
    try:
        return PretrainConfig.model_validate(raw)
    except ValidationError as e:
        msg = "\n  ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError("invalid pretraining configuration:\n  " + msg) from None


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] | None = None,
                         quick: bool = False) -> PretrainConfig:
    """YAML file (optional) + ``key=value`` overrides (``--quick`` adds :data:`QUICK` first) → the config."""
    raw = read_yaml_mapping(Path(path)) if path is not None else {}
    return build_pretrain_config(apply_overrides(raw, [*(QUICK if quick else []), *(overrides or [])]))


def pretrain_config_to_dict(cfg: PretrainConfig) -> dict:
    return cfg.model_dump(mode="json")


# --- the cache key ---------------------------------------------------------------------------------------------
def data_identity(dc: DataConfig) -> dict:
    """What decides the pretraining frames: the dataset (synthetic preset or root), the fold and its validation
    carve-out, and the pixels (image and store size). Labels, evaluation and loader settings do not enter."""
    if dc.dataset == "synthetic" and dc.root is None:
        from auspread.data.synth import GENERATOR_VERSION

        source = {"synthetic": dc.synth_preset, "format": dc.synth_format, "generator": GENERATOR_VERSION}
    else:
        source = {"dataset": dc.dataset, "root": str(Path(dc.root).resolve()) if dc.root else None,
                  "format": dc.synth_format if dc.dataset == "synthetic" else None,
                  "camera": dc.camera if dc.dataset == "disfa" else None}
    return {**source, "fold": dc.fold, "image_size": dc.image_size, "store_size": dc.resolved_store_size,
            "val_fraction": dc.val_fraction, "select_on": dc.select_on}


def cache_key(cfg: PretrainConfig) -> str:
    """Hex digest of (data identity, recipe, optimiser budget except precision, seed, trunk format)."""
    optim = cfg.optim.model_dump(mode="json", exclude={"amp", "channels_last", "fused"})
    blob = {"format": TRUNK_FORMAT, "data": data_identity(cfg.data), "recipe": cfg.recipe.model_dump(mode="json"),
            "optim": optim, "seed": cfg.seed}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def cache_name(cfg: PretrainConfig) -> str:
    """Readable folder name of the cache entry: ``<dataset>-f<fold>-<size>px-<arch>-<key[:12]>``."""
    dc = cfg.data
    ds = f"synth-{dc.synth_preset}" if dc.dataset == "synthetic" and dc.root is None else dc.dataset.replace("+", "plus")
    return f"{ds}-f{dc.fold}-{dc.image_size}px-{cfg.recipe.arch}-{cache_key(cfg)[:12]}"


def cache_dir() -> Path:
    """``$AUSPREAD_CACHE/pretrain`` (default ``~/.cache/auspread/pretrain``), beside the synthetic data and frames."""
    from auspread.data.synth.generator import cache_root

    return cache_root() / "pretrain"
