"""Load a trained method for inference from a run folder (``RUN/checkpoints/best.pt``) or a checkpoint file.

A checkpoint alone rebuilds its model: the engine stores the run config (``config``) and the dataset info
(``dataset_info``) as plain data next to the weights (``model``, and ``ema`` when the run kept EMA weights, which
are then the ones used, as in evaluation)."""

from __future__ import annotations

from pathlib import Path

import torch

from auspread.engine.checkpoint import Key
from auspread.errors import ConfigError
from auspread.evaluation.thresholds import AUThresholds
from auspread.predict.options import ModelBundle


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ModelBundle:
    """The method of a run folder or checkpoint file (:func:`~auspread.engine.restore.load_trained`) for inference."""
    from auspread.engine.restore import load_trained

    t = load_trained(path, device)
    cfg, info, state, ckpt = t.cfg, t.info, t.state, t.checkpoint
    desc = {
        "checkpoint": str(ckpt.resolve()),
        "run": str(ckpt.parent.parent.resolve()) if ckpt.parent.name == "checkpoints" else None,
        "method": cfg.method.name,
        "method_options": cfg.method.model_dump(mode="json"),
        "trained_on": {"dataset": info.dataset, "labels": str(cfg.data.labels), "fold": cfg.data.fold,
                       "root": None if cfg.data.root is None else str(cfg.data.root)},
        "epoch": state.get(Key.EPOCH),
        "ema_weights": state.get(Key.EMA) is not None,
    }
    th = AUThresholds.from_dict(state[Key.THRESHOLDS]) if state.get(Key.THRESHOLDS) else None
    return ModelBundle(method=t.method, aus=tuple(info.aus), image_size=cfg.data.image_size,
                       store_size=cfg.data.resolved_store_size, description=desc, thresholds=th)


def resolve_threshold(spec: str, bundle: ModelBundle) -> tuple[float | list[float], str]:
    """``--threshold``: ``auto`` (the model's validation thresholds if it has them, else 0.5), ``val`` (they must
    exist) or a number for every AU → ``(threshold(s), description for the sidecar)``."""
    spec = str(spec).strip().lower()
    th = bundle.thresholds
    if spec in ("auto", "val"):
        if th is not None:
            if tuple(th.aus) != tuple(bundle.aus):
                raise ConfigError(f"the model's thresholds are for AUs {list(th.aus)}, its outputs {list(bundle.aus)}")
            return [float(v) for v in th.values], f"per AU, chosen on the {th.source}"
        if spec == "val":
            ckpt = bundle.description.get("checkpoint", "the model")
            raise ConfigError(f"{ckpt} has no validation thresholds (trained before runs chose them): run "
                              f"`auspread calibrate <run folder>` once, or pass --threshold 0.5")
        return 0.5, "0.5 for every AU (the model has no validation thresholds)"
    try:
        t = float(spec)
    except ValueError:
        raise ConfigError(f"--threshold must be auto, val or a number in [0, 1], got {spec!r}") from None
    if not 0 <= t <= 1:
        raise ConfigError(f"--threshold must lie in [0, 1], got {t}")
    return t, f"{t:g} for every AU (--threshold)"
