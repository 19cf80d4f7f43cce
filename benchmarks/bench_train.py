"""Training throughput through the engine's own training step (``Trainer._train_step``: autocast, backward,
optimiser step, schedule), frames/s, side by side, for the supervised baseline (ResNet-18 frame classifier, weighted
BCE; ``--method supervised``) or Knowledge-Spreader (two ResNet-18s over 5-frame clips plus as many unlabelled
clips; ``--method ks``, the README main job's configuration):

* fp32, bf16 autocast, each with and without channels_last (``optim.channels_last``)
* bf16 with the optimiser's fused kernel switched off, with and without channels_last (``optim.fused=false``; the
  engine's default before session 19 was ``fused=false channels_last=false``)

Batches are made once in memory (random frames and labels), so this measures the model step, not the loader
(``benchmarks/bench_loader.py`` measures that). Warm-up steps are excluded; the median of ``--repeats`` timed
runs is reported. For KS, frames/s counts every frame through branch B (labelled and unlabelled clips). Results go
in docs/BENCHMARKS.md.

Full measurement (2-core machine, nothing else running):
    python benchmarks/bench_train.py --image-size 112 --batch 32 --steps 20 --repeats 3
    python benchmarks/bench_train.py --method ks --image-size 64 --batch 8 --steps 10 --repeats 3 --threads 1
Smoke check (seconds):
    python benchmarks/bench_train.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

VARIANTS = {
    "fp32": ["optim.amp=off", "optim.channels_last=false"],
    "fp32+channels_last": ["optim.amp=off", "optim.channels_last=true"],
    "bf16": ["optim.amp=bf16", "optim.channels_last=false"],
    "bf16+channels_last": ["optim.amp=bf16", "optim.channels_last=true"],
    "bf16 unfused": ["optim.amp=bf16", "optim.channels_last=false", "optim.fused=false"],
    "bf16+channels_last unfused": ["optim.amp=bf16", "optim.channels_last=true", "optim.fused=false"],
}
METHODS = {  # overrides: the packaged synthetic configs of the supervised baseline and of KS (the README main job)
    "supervised": ["method.name=supervised", "optim.optimizer=adamw", "optim.lr=0.001", "optim.weight_decay=0.0001"],
    "ks": ["method.name=ks", "method.students=shared", "method.encoder_norm=none", "method.au_head_init=linear",
           "optim.optimizer=adamw", "optim.lr=0.0003", "optim.weight_decay=0.0001"],
}


def make_batches(n: int, batch: int, size: int, method: str, aus: int = 12, seed: int = 0) -> list[dict]:
    """Random batches in the layout ``TrainBatches`` gives the method: key frames (supervised) or 5-frame clips with
    a key position and as many fully unlabelled clips (KS)."""
    g = torch.Generator().manual_seed(seed)
    clip = 5 if method == "ks" else 1
    out = []
    for i in range(n):
        y = (torch.rand(batch, clip, aus, generator=g) < 0.3).float()
        b = {"frames": torch.randn(batch, clip, 3, size, size, generator=g), "labels": y, "true_labels": y,
             "key_pos": torch.full((batch,), i % clip, dtype=torch.long)}
        if method == "ks":
            b["unlabelled"] = {"frames": torch.randn(batch, clip, 3, size, size, generator=g),
                               "true_labels": torch.full((batch, clip, aus), -1.0)}
        out.append(b)
    return out


def prepare(method_name: str, variant: list[str], batches: list[dict], warmup: int, size: int, run_dir: Path):
    """A trainer for ``variant``, warmed up; returns ``(timed_pass, close)``: ``timed_pass()`` runs every batch
    once and returns frames/s."""
    from auspread.engine.config import load_config
    from auspread.engine.loop import Trainer, seed_everything, to_device
    from auspread.engine.precision import resolve_amp, resolve_channels_last
    from auspread.engine.run import build_method
    from auspread.methods.base import DatasetInfo, StepContext

    cfg = load_config(None, [*METHODS[method_name], f"data.image_size={size}", *variant])
    aus = batches[0]["labels"].shape[-1]
    info = DatasetInfo("bench", tuple(range(aus)), torch.ones(aus), 1, size, 25.0)
    seed_everything(0)
    device = torch.device("cpu")
    method = build_method(cfg, info).to(device)
    if resolve_channels_last(cfg.optim.channels_last, resolve_amp(cfg.optim.amp, device)):
        method = method.to(memory_format=torch.channels_last)
    trainer = Trainer(cfg, method, batches, None, run_dir, device, progress=False)
    method.train()

    def step(i: int, b: dict) -> None:
        ctx = StepContext(epoch=0, step=i, batch_in_epoch=i, steps_per_epoch=len(batches), epochs=1, device=device,
                          optimizers=trainer.optimizers, autocast=trainer.autocast)
        trainer._train_step(to_device(b, device), ctx)

    for i in range(warmup):
        step(i, batches[i % len(batches)])
    frames = sum(x["frames"].shape[0] * x["frames"].shape[1] for b in batches for x in (b, b.get("unlabelled")) if x)

    def timed_pass() -> float:
        t = time.perf_counter()
        for i, b in enumerate(batches):
            step(i, b)
        return frames / (time.perf_counter() - t)

    return timed_pass, trainer.logger.close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=list(METHODS), default="supervised")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="tiny smoke check (32 px, batch 4, 2 steps, 1 repeat)")
    a = ap.parse_args()
    if a.quick:
        a.image_size, a.batch, a.steps, a.warmup, a.repeats = 32, 4, 2, 1, 1
    if a.threads:
        torch.set_num_threads(a.threads)
    batches = make_batches(a.steps, a.batch, a.image_size, a.method)
    runs: dict[str, list[float]] = {name: [] for name in a.variants}
    with tempfile.TemporaryDirectory() as tmp:
        passes = {name: prepare(a.method, VARIANTS[name], batches, a.warmup, a.image_size, Path(tmp) / name)
                  for name in a.variants}
        for _ in range(a.repeats):  # round robin, so that a change of machine load hits every variant alike
            for name, (timed_pass, _close) in passes.items():
                runs[name].append(timed_pass())
        for _timed, close in passes.values():
            close()
    res = {name: {"frames_per_s": statistics.median(r), "runs": [round(x, 1) for x in r]} for name, r in runs.items()}
    base_name = "fp32" if "fp32" in res else a.variants[0]
    base = res[base_name]["frames_per_s"]
    print(f"{a.method} training step, {a.image_size}px, batch {a.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"{'variant':<28}{'frames/s':>10}  {'vs ' + base_name:>18}   runs")
    for name, r in res.items():
        print(f"{name:<28}{r['frames_per_s']:>10.1f}  {r['frames_per_s'] / base:>17.2f}x   {r['runs']}")
    if a.json:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "results": res}, indent=2))


if __name__ == "__main__":
    main()
