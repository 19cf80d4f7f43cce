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


class LabelRegime(_Strict):
    """Which labels training may see. Written as ``"100%"``, ``"5%"`` or ``"every:9"`` (KS supplement §1.2:
    one label every k frames; a ratio r% means k = round(100 / r))."""

    every: int = Field(1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = f"{v}%"
        if isinstance(v, str):
            s = v.strip().lower()
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", s)
            if m:
                r = float(m.group(1))
                if not 0 < r <= 100:
                    raise ValueError(f"label ratio must be in (0, 100]%, got {v!r}")
                return {"every": max(1, round(100.0 / r))}
            m = re.fullmatch(r"every[:=]\s*(\d+)", s)
            if m:
                return {"every": int(m.group(1))}
            raise ValueError(f"labels must look like '5%' or 'every:9', got {v!r}")
        return v

    @property
    def ratio(self) -> float:
        return 1.0 / self.every

    def __str__(self) -> str:
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
    num_workers: int = Field(0, ge=0)
    cache_dir: Path | None = None  # frame-store cache; default $AUSPREAD_CACHE/frames or ~/.cache/auspread/frames
    augment: AugmentConfig = AugmentConfig()

    @property
    def resolved_store_size(self) -> int:
        return self.store_size or int(round(self.image_size * 8 / 7))
