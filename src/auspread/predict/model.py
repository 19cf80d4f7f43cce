"""Load a trained method for inference from a run folder (``RUN/checkpoints/best.pt``) or a checkpoint file.

A checkpoint alone rebuilds its model: the engine stores the run config (``config``) and the dataset info
(``dataset_info``) as plain data next to the weights (``model``, and ``ema`` when the run kept EMA weights, which
are then the ones used, as in evaluation)."""

from __future__ import annotations

from pathlib import Path

import torch

from auspread.predict.pipeline import ModelBundle


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
        "epoch": state.get("epoch"),
        "ema_weights": state.get("ema") is not None,
    }
    return ModelBundle(method=t.method, aus=tuple(info.aus), image_size=cfg.data.image_size,
                       store_size=cfg.data.resolved_store_size, description=desc)
