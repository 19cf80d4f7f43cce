"""Build a method from a run config, and rebuild a trained one from a run folder or a checkpoint file alone.

:func:`load_trained` is the one place that knows which weights evaluation uses (the EMA weights when the run kept
them, else the model's); ``auspread eval``, ``auspread predict`` and ``auspread export`` all call it."""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from auspread.engine.checkpoint import BEST, load_checkpoint
from auspread.engine.config import RunConfig, apply_overrides, build_config, saved_run_config
from auspread.engine.data import info_from_dict
from auspread.errors import AuspreadError, ConfigError, RunError
from auspread.methods.base import DatasetInfo, Method, get_method


@dataclass
class Trained:
    """A method rebuilt from a checkpoint, with its evaluation weights loaded and in eval mode."""

    method: Method
    cfg: RunConfig  # the run's config (with any overrides applied)
    info: DatasetInfo
    state: dict  # the checkpoint as loaded
    checkpoint: Path


def build_method(cfg: RunConfig, info: DatasetInfo, pretrained: str | None = None) -> Method:
    """The method of ``cfg`` built for ``info``. Methods whose constructor takes ``pretrained`` get it."""
    cls = get_method(cfg.method.name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {}
    if "pretrained" in params:
        kwargs["pretrained"] = pretrained
    elif pretrained:
        raise ConfigError(f"method {cfg.method.name!r} does not take pretrained weights (pretrained={pretrained!r})")
    return cls(cfg.method, info, **kwargs)


def check_run_dir(run_dir: str | Path, need: str = BEST) -> Path:
    """``run_dir`` if it is a run folder holding ``checkpoints/<need>``; a :class:`RunError` saying why not."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunError(f"{run_dir}: run folder does not exist")
    if not run_dir.is_dir() or not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml; expected the folder `auspread train` printed)")
    if not (run_dir / "checkpoints" / need).is_file():
        raise RunError(f"{run_dir}: run has no checkpoints/{need} (it was stopped before its first epoch ended?)")
    return run_dir


def resolve_checkpoint(path: str | Path, need: str = BEST) -> Path:
    """Run folder (→ its ``checkpoints/<need>``) or checkpoint file; a :class:`RunError` naming the path otherwise."""
    p = Path(path)
    if p.is_dir():
        return check_run_dir(p, need) / "checkpoints" / need
    if p.is_file():
        return p
    raise RunError(f"{p}: no such run folder or checkpoint file")


def eval_weights(method: Method, state: dict) -> Method:
    """The model evaluation uses: ``method`` with the checkpoint's weights, or a copy with its EMA weights if the
    run kept them (``method`` itself then holds the raw weights, e.g. to continue training)."""
    method.load_state_dict(state["model"])
    if state.get("ema") is not None:
        method = copy.deepcopy(method)
        method.load_state_dict(state["ema"])
    return method


def load_trained(path: str | Path, device: str | torch.device = "cpu", overrides: list[str] | None = None,
                 need: str = BEST) -> Trained:
    """Rebuild the method of a run folder (its ``checkpoints/<need>``) or checkpoint file from the checkpoint alone
    (``config``, ``dataset_info``, ``model``/``ema``), evaluation weights loaded, on ``device``, in eval mode.
    ``overrides`` (``data.root=…``) change the returned config, not the network."""
    ckpt = resolve_checkpoint(path, need)
    state = load_checkpoint(ckpt, map_location="cpu")
    missing = [k for k in ("config", "dataset_info", "model") if k not in state]
    if missing:
        raise RunError(f"{ckpt}: checkpoint lacks {', '.join(missing)}; it cannot rebuild its model")
    cfg = build_config(apply_overrides(saved_run_config(state["config"]), list(overrides or [])))
    try:
        info = info_from_dict(state["dataset_info"])
        method = eval_weights(build_method(cfg, info, None), state)
    except AuspreadError:
        raise
    except Exception as e:
        why = (str(e).splitlines() or [""])[0][:300]
        raise RunError(f"{ckpt}: cannot rebuild the model ({type(e).__name__}: {why})") from None
    return Trained(method.to(torch.device(device)).eval(), cfg, info, state, ckpt)
