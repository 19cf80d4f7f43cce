"""Checkpoints: atomic save, safe load (``torch.load(weights_only=True)``), RNG state capture and restore.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts only, so it loads with
``weights_only=True`` (no pickled code). It carries the resolved run config as plain data, so a checkpoint alone
rebuilds its model. Saving goes through a temporary sibling file and an atomic rename: a crash while saving leaves
the previous checkpoint untouched and loadable.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auspread.errors import RunError
from auspread.io import atomic_path
from auspread.models.weights import CONFIG_KEY, MODEL_KEY

FORMAT = "auspread-checkpoint/1"
LAST = "last.pt"
BEST = "best.pt"


class Key:
    """The keys of a checkpoint dict, written by the trainer (:meth:`~auspread.engine.loop.Trainer.state_dict`)
    and the run (``extra``: config, dataset info, thresholds), read by resume, evaluation, predict and export."""

    FORMAT = "format"  # the format tag (:data:`FORMAT`)
    CONFIG = CONFIG_KEY  # the resolved run config as plain data: a checkpoint alone rebuilds its model
    DATASET_INFO = "dataset_info"  # the dataset's AUs, class weights, ... (engine.data.info_to_dict)
    KIND = "kind"  # "pretrain" for a pretraining run's checkpoint
    MODEL = MODEL_KEY  # the method's state dict
    EMA = "ema"  # the EMA weights' state dict (evaluation uses them when present), or None
    EPOCH = "epoch"  # epochs completed
    STEP = "step"
    WORLD_SIZE = "world_size"
    OPTIMIZERS = "optimizers"
    SCHEDULE = "schedule"
    SCALER = "scaler"  # the fp16 gradient scaler's state, or None
    RNG = "rng"  # one generator state per rank (rng_state)
    SAMPLER = "sampler"
    BEST = "best"  # {"epoch", "val_f1"} of the best epoch so far
    VAL = "val"  # the validation scores of this epoch
    HISTORY = "history"  # one record per epoch
    THRESHOLDS = "thresholds"  # per-AU thresholds chosen on the validation subjects (best.pt; AUThresholds.to_dict)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (plus the format tag) to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({Key.FORMAT: FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``); ``RunError`` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or unsafe content
        raise RunError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get(Key.FORMAT) != FORMAT:
        raise RunError(f"{path}: not an auspread checkpoint (format tag missing)")
    return state


# --- RNG state as plain tensors -------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as tensors and ints."""
    _, py_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss": None if gauss is None else float(gauss),
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(int(x) for x in state["python"].tolist()), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
