"""Synthetic benchmark: generation speed (frames/s, encoding included) and base rates vs the real datasets.

Full measurement (the lead runs it; ~1 min of CPU):   python benchmarks/bench_synth.py
Quick check (seconds):                               python benchmarks/bench_synth.py --quick

Speed: generates the ``small`` preset at 128 px (BP4D JPEG tree) and a DISFA-format video set into a temporary
folder and prints frames/s (wall clock, all workers). Base rates: simulates the ground truth of every
``bp4d-like`` / ``disfa-like`` video (no pixels) and prints each benchmark AU's rate next to the real one
from folds.json with the ratio (target: within a factor of 2).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from auspread.data.synth import generate, resolve_config
from auspread.data.synth.effects import GENERATED_AUS
from auspread.data.synth.generator import OCC_THRESHOLD, plan_videos, simulate_video


def base_rates(preset: str, fmt: str, seed: int = 0) -> tuple[list[int], np.ndarray, np.ndarray]:
    cfg = resolve_config(preset, fmt, seed=seed)
    folds = json.loads(resources.files("auspread.resources").joinpath("folds.json").read_text())
    real = folds["BP4D" if fmt == "bp4d" else "DISFA"]
    aus = real["aus"]
    col = [GENERATED_AUS.index(a) for a in aus]
    pos = np.zeros(len(aus))
    n = 0
    for p in plan_videos(cfg):
        inten, _ = simulate_video(cfg, p)
        seg = inten[p.coded_lo:p.coded_hi, col]
        pos += (np.floor(seg + 1e-6) >= OCC_THRESHOLD[fmt]).sum(0)
        n += len(seg)
    return aus, pos / n, np.array(real["base_rates_all_frames"])


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children (the worker processes)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def speed(preset: str, fmt: str, frames: int | None, subjects: int | None, workers: int) -> float:
    """Wall-clock frames/s, plus frames per CPU-second (the machine is shared: wall clock under load is a lower
    bound; 2 x frames-per-CPU-second is what two idle cores give)."""
    with tempfile.TemporaryDirectory() as d:
        cfg = resolve_config(preset, fmt, frames=frames, subjects=subjects)
        c0, t0 = _cpu(), time.perf_counter()
        out = generate(Path(d) / "ds", preset, fmt, frames=frames, subjects=subjects, progress=False, workers=workers)
        dt, cpu = time.perf_counter() - t0, _cpu() - c0
        m = json.loads((out / "manifest.json").read_text())
        total = sum(v["n_frames"] for v in m["videos"])
    fps = total / dt
    print(f"speed {preset:>6} {fmt:>5} size={cfg.size}: {total} frames in {dt:.1f} s wall = {fps:.0f} frames/s "
          f"(workers={workers or 'auto'}); {total / cpu:.0f} frames per CPU-second, load average "
          f"{os.getloadavg()[0]:.1f}")
    return fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    if a.quick:
        speed("small", "bp4d", frames=40, subjects=3, workers=1)
        speed("small", "disfa", frames=60, subjects=3, workers=1)
    else:
        speed("small", "bp4d", None, None, a.workers)
        speed("small", "disfa", frames=600, subjects=12, workers=a.workers)
    for preset, fmt in (("bp4d-like", "bp4d"), ("disfa-like", "disfa")):
        if a.quick:
            aus, syn, real = base_rates("tiny", fmt)
        else:
            aus, syn, real = base_rates(preset, fmt)
        print(f"base rates {preset if not a.quick else 'tiny'} ({fmt}); AU: synthetic / real (ratio)")
        ok = True
        for au, s, r in zip(aus, syn, real):
            ratio = s / r if r > 0 else float("nan")
            ok &= 0.5 <= ratio <= 2.0
            print(f"  AU{au:<3d} {s:.3f} / {r:.3f}  ({ratio:.2f})")
        print("  (tiny preset: too few frames for the factor-2 check)" if a.quick else f"  all within a factor of 2: {ok}")


if __name__ == "__main__":
    main()
