"""Training throughput of the supervised baseline (ResNet-18 frame classifier, weighted BCE), frames/s, through
the engine's own training step (``Trainer._train_step``: autocast, backward, SGD step, schedule), side by side:

* fp32
* bf16 autocast (``optim.amp=bf16``)
* bf16 autocast + channels_last (``optim.amp=bf16 optim.channels_last=true``)
* fp32 + channels_last

Batches are made once in memory (random frames and labels), so this measures the model step, not the loader
(``benchmarks/bench_loader.py`` measures that). Warm-up steps are excluded; the median of ``--repeats`` timed
runs is reported. Results go in docs/BENCHMARKS.md.

Full measurement (2-core machine, nothing else running):
    python benchmarks/bench_train.py --image-size 112 --batch 32 --steps 20 --repeats 3
    python benchmarks/bench_train.py --image-size 224 --batch 32 --steps 10 --repeats 3
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
    "fp32": ["optim.amp=off"],
    "bf16": ["optim.amp=bf16"],
    "bf16+channels_last": ["optim.amp=bf16", "optim.channels_last=true"],
    "fp32+channels_last": ["optim.amp=off", "optim.channels_last=true"],
}


def make_batches(n: int, batch: int, size: int, aus: int = 12, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = (torch.rand(batch, 1, aus, generator=g) < 0.3).float()
        out.append({"frames": torch.randn(batch, 1, 3, size, size, generator=g), "labels": y, "true_labels": y,
                    "key_pos": torch.zeros(batch, dtype=torch.long)})
    return out


def measure(variant: list[str], batches: list[dict], warmup: int, repeats: int, size: int, run_dir: Path) -> dict:
    from auspread.engine.config import load_config
    from auspread.engine.loop import Trainer, seed_everything, to_device
    from auspread.engine.run import build_method
    from auspread.methods.base import DatasetInfo, StepContext

    cfg = load_config(None, ["method.name=supervised", f"data.image_size={size}", "optim.lr=0.001", *variant])
    aus = batches[0]["labels"].shape[-1]
    info = DatasetInfo("bench", tuple(range(aus)), torch.ones(aus), 1, size, 25.0)
    seed_everything(0)
    device = torch.device("cpu")
    method = build_method(cfg, info).to(device)
    if cfg.optim.channels_last:
        method = method.to(memory_format=torch.channels_last)
    trainer = Trainer(cfg, method, batches, None, run_dir, device, progress=False)
    method.train()

    def step(i: int, b: dict) -> None:
        ctx = StepContext(epoch=0, step=i, batch_in_epoch=i, steps_per_epoch=len(batches), epochs=1, device=device,
                          optimizers=trainer.optimizers, autocast=trainer.autocast)
        trainer._train_step(to_device(b, device), ctx)

    for i in range(warmup):
        step(i, batches[i % len(batches)])
    rates = []
    frames = sum(b["frames"].shape[0] for b in batches)
    for _ in range(repeats):
        t = time.perf_counter()
        for i, b in enumerate(batches):
            step(i, b)
        rates.append(frames / (time.perf_counter() - t))
    trainer.logger.close()
    return {"frames_per_s": statistics.median(rates), "runs": [round(r, 1) for r in rates]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    batches = make_batches(a.steps, a.batch, a.image_size)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.variants:
            res[name] = measure(VARIANTS[name], batches, a.warmup, a.repeats, a.image_size, Path(tmp) / name)
    base = res.get("fp32", {}).get("frames_per_s")
    print(f"supervised ResNet-18 training step, {a.image_size}px, batch {a.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"{'variant':<22}{'frames/s':>10}{'vs fp32':>9}   runs")
    for name, r in res.items():
        ratio = f"{r['frames_per_s'] / base:.2f}x" if base else "-"
        print(f"{name:<22}{r['frames_per_s']:>10.1f}{ratio:>9}   {r['runs']}")
    if a.json:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "results": res}, indent=2))


if __name__ == "__main__":
    main()
