"""MDHR training throughput (frames/s), side by side:

* models: the **full** official-size model (ResNet-50, width 512, MFD on 2048 channels, 224 px, 16-frame clips) and
  the **reduced** CPU configuration of ``configs/mdhr_synthetic.yaml`` (ResNet-18, width 128, MFD on 128
  channels, 112 px, 8-frame clips);
* precision: fp32 vs bf16 autocast + channels-last memory format.

One training step = forward, Eq. 12 loss (WA + λ·CE), backward and an AdamW step on random clips with half of the
labels hidden (−1), exactly what ``MDHR.train_step`` does in the engine. Frames/s counts every frame of every clip.
The figure to beat: the official code trains at 2.5 frames/s fp32 on these 2 cores.

    python benchmarks/bench_mdhr.py                    # full: batch 1 clip × 16 frames at 224, 3 timed steps
    python benchmarks/bench_mdhr.py --quick            # seconds: tiny sizes, 1 timed step (checks the script)
    python benchmarks/bench_mdhr.py --batch 8 --steps 5 --device cuda   # the official batch on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from auspread.aus import dataset_aus
from auspread.engine.config import OptimConfig
from auspread.engine.loop import optimizer_factory
from auspread.methods.base import DatasetInfo
from auspread.methods.mdhr import MDHR, MDHROptions

MODELS = {
    "full": dict(options=dict(backbone="resnet50", width=512, clip_len=16), size=224),
    "reduced": dict(options=dict(backbone="resnet18", width=128, mfd_channels=128, clip_len=8), size=112),
}
QUICK = {
    "full": dict(options=dict(backbone="resnet50", width=512, clip_len=3), size=32),
    "reduced": dict(options=dict(backbone="resnet18", width=128, mfd_channels=128, clip_len=3), size=32),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(spec: dict, device: torch.device, channels_last: bool) -> MDHR:
    aus = dataset_aus("BP4D").aus
    info = DatasetInfo(dataset="BP4D", aus=aus, class_weights=torch.ones(len(aus)), num_subjects=1,
                       image_size=spec["size"], fps=25.0)
    torch.manual_seed(0)
    m = MDHR(MDHROptions(**spec["options"]), info).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m.train()


def throughput(spec: dict, batch: int, steps: int, warmup: int, device: torch.device, bf16: bool) -> tuple[float, float, float]:
    """Median wall seconds per step, frames/s, and median process CPU seconds per step (robust to other jobs on a
    shared machine; on an idle machine CPU s ≈ threads × wall s) over ``steps`` timed steps after ``warmup``."""
    m = build(spec, device, channels_last=bf16)
    (opt,) = m.configure_optimizers(optimizer_factory(OptimConfig(optimizer="adamw", lr=1e-4, weight_decay=5e-4)))
    T, S = m.options.clip_len, spec["size"]
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(batch, T, 3, S, S, generator=g).to(device)
    labels = torch.where(torch.rand(batch, T, 12, generator=g) < 0.5, (torch.rand(batch, T, 12, generator=g) < 0.3).float(),
                         torch.full((batch, T, 12), -1.0)).to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times, cpu = [], []
    for i in range(warmup + steps):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        with amp:
            loss, _ = m.losses(frames, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    sec = statistics.median(times)
    return sec, batch * T / sec, statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one timed step: checks the script runs")
    ap.add_argument("--batch", type=int, default=1, help="clips per step (official: 8)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="full,reduced")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    specs = QUICK if args.quick else MODELS
    steps, warmup = (1, 1) if args.quick else (args.steps, args.warmup)
    rows = []
    for name in args.models.split(","):
        spec = specs[name]
        n_params = sum(p.numel() for p in build(spec, torch.device("cpu"), False).parameters())
        for bf16 in (False, True):
            sec, fps, cpu = throughput(spec, args.batch, steps, warmup, device, bf16)
            prec = "bf16+cl" if bf16 else "fp32"
            rows.append((name, n_params, spec["size"], spec["options"]["clip_len"], prec, sec, fps, cpu))
            print(f"{name:8s} {prec:8s} {sec:8.2f} s/step {fps:8.2f} frames/s {cpu:8.2f} CPU s/step", flush=True)
    print()
    print("| model | params | px | clip | batch | precision | s/step | frames/s | CPU s/step | vs fp32 | vs official 2.5 f/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for name, n, size, clip, prec, sec, fps, cpu in rows:
        base.setdefault(name, fps)
        print(f"| {name} | {n / 1e6:.1f} M | {size} | {clip} | {args.batch} | {prec} | {sec:.2f} | {fps:.2f} | {cpu:.2f} | "
              f"{fps / base[name]:.2f}x | {fps / 2.5:.2f}x |")
    print(f"\n(torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          f"{', QUICK sizes: not a measurement' if args.quick else ''})")


if __name__ == "__main__":
    main()
