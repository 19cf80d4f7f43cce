"""``auspread predict``'s option schema, the trained model it runs and the table of rows it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from auspread.evaluation.thresholds import AUThresholds
from auspread.faces.align import DEFAULT_MARGIN, DEFAULT_SIZE
from auspread.faces.detect import DetectorOptions
from auspread.faces.track import TrackOptions

DEFAULT_DETECT_EVERY = 10  # docs/BENCHMARKS.md, "auspread predict with its default options (issue 21)"


class PredictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # full MTCNN on every K-th frame; in between the face is tracked (track=True), or interpolated between key frames
    # (track=False; main face) / held (all faces). 1 = exhaustive detection.
    detect_every: int = Field(DEFAULT_DETECT_EVERY, ge=1)
    track: bool = True
    tracking: TrackOptions = TrackOptions()
    all_faces: bool = False
    no_detect: bool = False  # inputs are already aligned face crops: resize only
    batch_size: int = Field(32, ge=1)
    # AUxx_c = AUxx_p >= threshold: one for every AU, or one per AU (the model's validation thresholds)
    threshold: float | list[float] = 0.5
    align_size: int = Field(DEFAULT_SIZE, ge=32)  # same as `auspread prepare --size`
    margin: float = Field(DEFAULT_MARGIN, ge=0, lt=0.5)
    prefetch: bool = True  # decoding and detection/alignment each in a background thread, concurrent with the model
    # torch intra-op threads while the stages overlap (prefetch): the detection thread's (None: 1) and the AU
    # model's (None: measured on the running video, auspread.predict.threads: the caller's setting minus the
    # detection thread's, raised to all of them when the model is the bottleneck and the cores are free). Two
    # OpenMP teams of the caller's size on busy cores wait on each other: up to 1.5x slower on 2 cores, while a
    # heavy model on one thread of an idle 2-core CPU leaves a core idle (docs/BENCHMARKS.md, issue 21).
    detect_threads: int | None = Field(None, ge=1)
    model_threads: int | None = Field(None, ge=1)
    amp: Literal["auto", "off", "bf16"] = "auto"  # bf16 autocast for the AU model; auto: where bf16 is native
    channels_last: bool | None = None  # None: with bf16 (engine.precision.resolve_channels_last)
    # torch.compile the model's ResNet trunks (auspread.predict.compiled): ~1.4x faster end to end on CPU after a
    # one-off compile of 20-60 s, so auto compiles only videos of at least compiled.AUTO_MIN_FRAMES (5,000) frames
    compile: Literal["auto", "off", "on"] = "auto"
    # int8 trunks (auspread.predict.quantized: static PTQ calibrated on the video's first chunks, then compiled):
    # ~2x faster than the compiled fp32 trunks on an AVX2 CPU. auto: on a CPU without native bf16 (where bf16 is
    # native, bf16 autocast is used instead) for videos long enough to compile (compiled.AUTO_MIN_FRAMES)
    quantize: Literal["auto", "off", "int8"] = "auto"
    detector: DetectorOptions = DetectorOptions()

    @field_validator("threshold")
    @classmethod
    def _threshold_in_unit_interval(cls, v):
        for t in (v if isinstance(v, list) else [v]):
            if not 0 <= t <= 1:
                raise ValueError(f"thresholds must lie in [0, 1], got {t}")
        return v


@dataclass
class ModelBundle:
    """A trained method ready for inference plus what the pipeline needs to feed it."""

    method: torch.nn.Module
    aus: tuple[int, ...]
    image_size: int  # network input side
    store_size: int  # frame-store side the method was trained from (test transform: resize store → image)
    description: dict = field(default_factory=dict)  # recorded in the output's sidecar JSON
    thresholds: AUThresholds | None = None  # per-AU thresholds chosen on the run's validation subjects, if any

    @property
    def device(self) -> torch.device:
        p = next(iter(self.method.parameters()), None)
        return p.device if p is not None else torch.device("cpu")


@dataclass
class PredictionTable:
    """Rows for one source. Arrays have one entry per row; ``frame`` is the 0-based decode index."""

    frame: np.ndarray
    timestamp: np.ndarray
    face_id: np.ndarray  # -1 = no face
    success: np.ndarray  # bool
    confidence: np.ndarray  # NaN when no face
    box: np.ndarray  # (N, 4) x, y, w, h; NaN when no face
    probs: np.ndarray  # (N, U); NaN when no face
    aus: tuple[int, ...]
    num_frames: int  # decoded frames
    fps: float
    held: np.ndarray  # bool: the face is tracked/interpolated/held, not from a full detection on this frame
    error: str | None = None  # decode error after ``num_frames`` frames (rows still cover every decoded frame)
    face_search: dict = field(default_factory=dict)  # frames per outcome: key, tracked, lost, jump, cut, idle

