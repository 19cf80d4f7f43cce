"""The data section of a run configuration (``RunConfig.data``): dataset, folds, label regime, sizes,
augmentation. Lives in the data layer so the samplers and transforms need nothing above it; re-exported by
:mod:`auspread.engine.config`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _whole(x: float) -> int | None:
    """``x`` as an int when it is one (to float rounding), else None."""
    k = round(x)
    return k if abs(x - k) <= 1e-9 * max(1.0, x) else None


class LabelRegime(_Strict):
    """Which labels training may see. Written as ``"100%"``, ``"5%"``, ``"15%"`` or ``"every:9"`` (KS supplement
    §1.2: one label every k frames). A ratio r% with 100 / r a whole number k is the every-k rule (``every``); any
    other ratio is kept exact (``percent``: about r% of each video's labelled frames, evenly spread; see
    :func:`auspread.data.labels.sparsify`), never rounded to a k."""

    every: int | None = Field(1, ge=1)
    percent: float | None = Field(None, gt=0, lt=100)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = f"{v}%"
        if isinstance(v, str):
            s = v.strip().lower()
            m = re.fullmatch(r"([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*%", s)
            if m:
                return cls._from_percent(float(m.group(1)), v)
            m = re.fullmatch(r"every[:=]\s*([+-]?\d+)", s)
            if m:
                return {"every": int(m.group(1))}
            raise ValueError(f"labels must look like '5%', '15%' or 'every:9', got {v!r}")
        if isinstance(v, dict) and v.get("percent") is not None:
            if v.get("every") is not None:
                raise ValueError("labels: give either every (one label every k frames) or percent (a ratio), not both")
            return cls._from_percent(float(v["percent"]), v)
        return v

    @staticmethod
    def _from_percent(r: float, given: Any) -> dict:
        if not 0 < r <= 100:
            raise ValueError(f"label ratio must be above 0% and at most 100%, got {given!r}")
        k = _whole(100.0 / r)
        return {"every": k} if k is not None else {"every": None, "percent": r}

    @model_validator(mode="after")
    def _one_rule(self) -> "LabelRegime":
        if (self.every is None) == (self.percent is None):
            raise ValueError("labels: give either every (one label every k frames) or percent (an exact ratio)")
        return self

    @property
    def ratio(self) -> float:
        """The fraction of labelled frames kept (nominal: the every-k rule keeps about 1/k of each video's)."""
        return self.percent / 100.0 if self.percent is not None else 1.0 / self.every

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent:g}% (exact)"
        return "100%" if self.every == 1 else f"every:{self.every} (~{100 / self.every:.3g}%)"


class AugmentConfig(_Strict):
    """Clip-consistent augmentation (one draw per clip). Defaults follow KS §4.2 / supplement §2.1."""

    rotation: float = Field(45.0, ge=0, le=180, description="max |rotation| in degrees")
    flip: bool = True
    color_jitter: float = Field(0.4, ge=0, le=1, description="brightness/contrast/saturation factor range ±")
    crop: bool = True  # random crop image_size out of store_size (test: resize/centre, see data.transforms)


class DataConfig(_Strict):
    dataset: Literal["synthetic", "bp4d", "bp4d+", "disfa", "lists", "generic", "prepared"] = "synthetic"
    root: Path | None = None  # None with dataset=synthetic: the cached synthetic preset below
    synth_preset: Literal["tiny", "small", "wide", "bp4d-like", "disfa-like"] = "small"
    synth_format: Literal["bp4d", "disfa"] = "bp4d"
    fold: int = Field(1, ge=1, le=3)
    image_size: int = Field(112, ge=32)  # network input side
    store_size: int | None = None  # frame-store side; default round(image_size * 8 / 7) (224 → 256)
    labels: LabelRegime = LabelRegime()
    label_seed: int = 0
    val_fraction: float = Field(0.2, ge=0, lt=1)  # training subjects held out for model selection
    # labels of the validation subjects (model selection, per-AU thresholds): "ratio" keeps the training label
    # ratio by the same key-frame rule (data.labels, data.label_seed), so selection sees the label budget and no
    # more; "all" keeps every validation label (more labels than the budget: optimistic at sparse ratios)
    val_labels: Literal["ratio", "all"] = "ratio"
    # CPU budgets: evaluate (val and test) on about 1/k of the videos (VideoIndex.every_kth_video: every subject
    # kept, tasks rotating). 1 = every video (the protocol).
    eval_video_stride: int = Field(1, ge=1)
    select_on: Literal["val", "test"] = "val"  # "test" only to compare with papers that select on the test fold
    disfa_threshold: float = 2.0
    camera: Literal["left", "right"] = "left"
    # BP4D/BP4D+: also index the frames without a label row (labels unknown) for training; they only feed
    # unlabelled clips (PIAP-DF's Discrete Feedback, SSL methods) and are dropped from validation and test
    uncoded_frames: bool = False
    num_workers: int = Field(0, ge=0)
    # where training augmentation runs: "loader" (workers hand over float crops) or "device" (workers hand over
    # uint8 frames and the draws; the training process augments them on its device: a GPU then does the work,
    # and 3-4x fewer bytes cross to it; the same draws, equal on CPU, equal to float rounding on a GPU)
    augment_on: Literal["loader", "device"] = "loader"
    cache_dir: Path | None = None  # frame-store cache; default $AUSPREAD_CACHE/frames or ~/.cache/auspread/frames
    # full camera frames (raw BP4D/BP4D+/DISFA, generic manifests): "auto" aligns faces once into
    # $AUSPREAD_CACHE/prepared (auspread prepare, resumable) and trains on those crops; "never" refuses naming the command
    prepare: Literal["auto", "never"] = "auto"
    augment: AugmentConfig = AugmentConfig()

    @property
    def resolved_store_size(self) -> int:
        return self.store_size or int(round(self.image_size * 8 / 7))
