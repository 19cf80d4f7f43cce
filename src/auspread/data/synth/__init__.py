"""Synthetic face-video benchmark with exact AU ground truth, written in the real BP4D and DISFA layouts.

``generate(out_dir, preset="tiny", fmt="bp4d", seed=0, force=False, progress=True, **overrides)`` writes one
dataset atomically; ``default_dataset(preset, fmt)`` returns a cached one. See ``docs/synthetic.md``.
"""

from auspread.data.synth.config import GENERATOR_VERSION, PRESETS, SynthConfig, resolve_config
from auspread.data.synth.effects import GENERATED_AUS
from auspread.data.synth.generator import default_dataset, generate

__all__ = ["GENERATOR_VERSION", "GENERATED_AUS", "PRESETS", "SynthConfig", "default_dataset", "generate",
           "resolve_config"]
