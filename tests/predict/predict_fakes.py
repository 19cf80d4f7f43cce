"""A tiny stand-in Method for predict tests: a conv + pooling + linear frame classifier, and a temporal variant
whose ``predict_video`` streams chunks (checks the pipeline's contract: chunks in order, covering T frames once)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from auspread.methods.base import DatasetInfo, Method, MethodOptions, register_method


class TinyOptions(MethodOptions):
    name: Literal["tiny_predict_test"] = "tiny_predict_test"


@register_method
class TinyMethod(Method):
    name = "tiny_predict_test"
    Options = TinyOptions

    def __init__(self, options: TinyOptions, info: DatasetInfo):
        super().__init__(options, info)
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.head = nn.Linear(4, info.num_aus)
        self.seen_frames = 0

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.conv(frames).mean((2, 3))
        return torch.sigmoid(self.head(x))

    @torch.no_grad()
    def predict_video(self, chunks, num_frames):
        outs = []
        for c in chunks:
            assert c.ndim == 4 and c.shape[1] == 3
            outs.append(self.predict_frames(c))
            self.seen_frames += len(c)
        out = torch.cat(outs)
        assert len(out) <= num_frames
        return out


def tiny_info(aus=(1, 2, 4, 6, 12), image_size: int = 32) -> DatasetInfo:
    return DatasetInfo(dataset="BP4D", aus=tuple(aus), class_weights=torch.ones(len(aus)), num_subjects=2,
                       image_size=image_size, fps=30.0)


def tiny_bundle(aus=(1, 2, 4, 6, 12), image_size: int = 32, store_size: int = 36):
    from auspread.predict.options import ModelBundle

    m = TinyMethod(TinyOptions(), tiny_info(aus, image_size))
    return ModelBundle(m, tuple(aus), image_size, store_size, {"method": "tiny_predict_test"})


def save_tiny_run(run_dir, aus=(1, 2, 4, 6, 12), image_size: int = 32):
    """A run folder in the engine's layout (config.yaml + checkpoints/best.pt with config, dataset_info, model)."""
    from pathlib import Path

    from auspread.engine.checkpoint import save_checkpoint
    from auspread.engine.config import build_config, config_to_dict, dump_yaml
    from auspread.engine.data import info_to_dict

    run_dir = Path(run_dir)
    info = tiny_info(aus, image_size)
    cfg = build_config({"method": {"name": "tiny_predict_test"}, "data": {"image_size": image_size}})
    m = TinyMethod(TinyOptions(), info)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    save_checkpoint(run_dir / "checkpoints" / "best.pt",
                    {"config": config_to_dict(cfg), "dataset_info": info_to_dict(info), "model": m.state_dict(),
                     "ema": None, "epoch": 0})
    return run_dir
