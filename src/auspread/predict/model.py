"""Load a trained method for inference from a run folder (``RUN/checkpoints/best.pt``) or a checkpoint file.

A checkpoint alone rebuilds its model: the engine stores the run config (``config``) and the dataset info
(``dataset_info``) as plain data next to the weights (``model``, and ``ema`` when the run kept EMA weights, which
are then the ones used, as in evaluation)."""

from __future__ import annotations

from pathlib import Path

import torch

from auspread.errors import RunError
from auspread.predict.pipeline import ModelBundle


def resolve_checkpoint(path: str | Path) -> Path:
    """Run folder or checkpoint file → the checkpoint to load; :class:`RunError` naming the path otherwise."""
    from auspread.engine.checkpoint import BEST
    from auspread.engine.run import check_run_dir

    p = Path(path)
    if p.is_dir():
        return check_run_dir(p, BEST) / "checkpoints" / BEST
    if p.is_file():
        return p
    raise RunError(f"{p}: no such run folder or checkpoint file")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ModelBundle:
    from auspread.engine.checkpoint import load_checkpoint
    from auspread.engine.config import build_config
    from auspread.engine.data import info_from_dict
    from auspread.engine.run import build_method

    ckpt = resolve_checkpoint(path)
    state = load_checkpoint(ckpt, map_location="cpu")
    missing = [k for k in ("config", "dataset_info", "model") if k not in state]
    if missing:
        raise RunError(f"{ckpt}: checkpoint lacks {', '.join(missing)}; it cannot rebuild its model")
    try:
        cfg = build_config(state["config"])
        info = info_from_dict(state["dataset_info"])
        method = build_method(cfg, info, None)
        method.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    except RunError:
        raise
    except Exception as e:
        raise RunError(f"{ckpt}: cannot rebuild the model ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
    method.to(torch.device(device)).eval()
    desc = {
        "checkpoint": str(ckpt.resolve()),
        "run": str(ckpt.parent.parent.resolve()) if ckpt.parent.name == "checkpoints" else None,
        "method": cfg.method.name,
        "method_options": cfg.method.model_dump(mode="json"),
        "trained_on": {"dataset": info.dataset, "labels": str(cfg.data.labels), "fold": cfg.data.fold,
                       "root": None if cfg.data.root is None else str(cfg.data.root)},
        "epoch": state.get("epoch"),
        "ema_weights": state.get("ema") is not None,
    }
    return ModelBundle(method=method, aus=tuple(info.aus), image_size=cfg.data.image_size,
                       store_size=cfg.data.resolved_store_size, description=desc)
