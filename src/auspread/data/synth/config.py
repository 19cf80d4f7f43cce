"""Typed generator options and the presets (``tiny``, ``small``, ``bp4d-like``, ``disfa-like``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from auspread.errors import ConfigError

#: bump when the generated content for a given config and seed changes (used in cache folder names);
#: v1 was a development snapshot, v2 the first reviewed version
GENERATOR_VERSION = 2


class SynthConfig(BaseModel):
    """Everything that determines a synthetic dataset (written to ``manifest.json``)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "custom"
    format: Literal["bp4d", "disfa"] = "bp4d"
    subjects: int = Field(6, ge=1, description="subjects in total, picked round-robin over the three fold parts")
    tasks: int = Field(2, ge=1, le=8, description="BP4D tasks per subject (DISFA: always one video)")
    frames: int = Field(40, ge=8, description="mean frames per video (coded + uncoded margin)")
    frames_jitter: float = Field(0.0, ge=0, lt=1, description="video length varies uniformly by ±this fraction")
    size: int = Field(64, ge=32, le=1024, description="frame side in pixels")
    seed: int = 0
    label_noise: float = Field(0.0, ge=0, le=1, description="probability that an event boundary is shifted by 1..0.2 s")
    profile: Literal["bp4d", "disfa"] | None = Field(None, description="AU activity profile; default follows format")
    activity: float = Field(1.0, gt=0, description="scales episode and spontaneous-event rates")
    effect_gain: float = Field(1.0, gt=0, description="scales every AU's geometric and shading effect (difficulty)")
    mimicry: float = Field(1.0, ge=0, description="scales the person-specific resting AU vector (ambiguity)")
    identity_variation: float = Field(1.0, ge=0, le=1.5, description="spread of face geometry between subjects")
    accessories: float = Field(1.0, ge=0, le=3, description="scales the rate of glasses, beards and fringes")
    nuisance: float = Field(1.0, ge=0, le=3, description="scales head pose, lighting, noise, blur and occlusion")
    unknown_rate: float = Field(0.25, ge=0, le=1, description="BP4D: chance per video of a run of 9 (unknown) cells")
    uncoded_margin: int = Field(5, ge=0, description="BP4D: up to this many uncoded frames before and after the coded segment")
    intensity_files: bool = Field(True, description="BP4D: also write AUCoding/AU_INT for AU6, 10, 12, 14, 17")
    task_order: list[str] = Field(default_factory=lambda: ["T1", "T6", "T8", "T7", "T4", "T2", "T3", "T5"],
                                  description="BP4D tasks used, in this order, when tasks < 8")

    @property
    def fps(self) -> float:
        return 25.0 if self.format == "bp4d" else 20.0

    @property
    def activity_profile(self) -> str:
        return self.profile or self.format


PRESETS: dict[str, dict] = {
    # test fixtures: 2 subjects per fold part, seconds to generate
    "tiny": {"subjects": 6, "tasks": 2, "frames": 40, "size": 64, "uncoded_margin": 3},
    # default demo data: 4 subjects per part x 3 tasks x ~200 frames at 128 px
    "small": {"subjects": 12, "tasks": 3, "frames": 200, "frames_jitter": 0.2, "size": 128},
    # the README main job's data: every BP4D subject (41) x 3 tasks x ~120 frames at 128 px: 3.4x small's identities
    # (what a model learns to generalise from) and 2x its frames, so 2x its labels at a given ratio (generation cost
    # follows frames: seconds; the training budget is in steps)
    "wide": {"subjects": 41, "tasks": 3, "frames": 120, "frames_jitter": 0.2, "size": 128},
    # all 41 BP4D subjects x 8 tasks, ~450 frames per task (real: 146,847 coded frames / 328 tasks)
    "bp4d-like": {"subjects": 41, "tasks": 8, "frames": 450, "frames_jitter": 0.3, "size": 128, "uncoded_margin": 8},
    # all 27 DISFA subjects, one long video each (real: 4845 frames at 20 fps)
    "disfa-like": {"subjects": 27, "tasks": 1, "frames": 4845, "size": 128, "format": "disfa"},
}


def resolve_config(preset: str = "tiny", fmt: str | None = None, **overrides) -> SynthConfig:
    """Preset values, then the format, then explicit overrides (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {preset!r}; known: {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values["preset"] = preset
    if fmt is not None:
        values["format"] = fmt
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = SynthConfig(**values)
    except Exception as e:  # pydantic ValidationError → one clear line
        raise ConfigError(f"bad synthetic-data option: {e}") from e
    max_subj = 41 if cfg.format == "bp4d" else 27
    if cfg.subjects > max_subj:
        raise ConfigError(f"--subjects {cfg.subjects}: the {cfg.format} format has only {max_subj} real subject ids")
    return cfg
