"""Weights a model or method initialises from (a backbone warm-started from another run, PIAP-DF's person and AU
encoders): an auspread checkpoint's model state, or a plain state dict. The two checkpoint keys these readers need
live here, below the methods and the engine (:class:`auspread.engine.checkpoint.Key` names them with the others),
so that models and methods read checkpoints without importing the engine.
"""

from __future__ import annotations

from pathlib import Path

import torch

from auspread.errors import ConfigError

MODEL_KEY = "model"  # the trained method's state dict in a checkpoint (engine.checkpoint.Key.MODEL)
CONFIG_KEY = "config"  # the resolved run config (engine.checkpoint.Key.CONFIG)


def read_state(path: str | Path, option: str) -> dict:
    """The dict saved in ``path``: a checkpoint (the method's weights under :data:`MODEL_KEY`) or a state dict. A
    missing or unreadable file is a :class:`ConfigError` naming the file and ``option`` (the method option that
    gave it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found ({option})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a torch file, or unsafe content
        raise ConfigError(f"{path}: not a readable weights file ({type(e).__name__}; {option})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: holds no state dict ({option})")
    return state
