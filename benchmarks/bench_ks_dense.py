"""Dense whole-video inference cost of Knowledge-Spreader (issue 5: "per-frame cost within 1.5x of one forward pass of
both backbones"), measured side by side:

1. **backbones**: one forward pass of ResNet-18 A (+ AU decoupler) and ResNet-18 B over every frame: the floor;
2. **dense**: ``KnowledgeSpreader.predict_video`` (per-frame features computed once, reused by every clip);
3. **naive**: every (frame, key position) clip recomputed from pixels through both backbones, batched the same way;
4. **heads only**: what dense adds to the backbones (S_a, students, T_b on every window), from cached features.

Prints per-frame milliseconds, the ratios dense/backbones and naive/dense, and the largest difference between the
dense and naive predictions (they compute the same numbers).

    python benchmarks/bench_ks_dense.py                       # 224 px, 240 frames, n = 5 (the paper's setting)
    python benchmarks/bench_ks_dense.py --quick               # seconds: 32 px, 16 frames
    python benchmarks/bench_ks_dense.py --device cuda --amp bf16
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from auspread.methods.base import DatasetInfo
from auspread.methods.ks import KnowledgeSpreader, KSOptions


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_rounds(fns: dict, device: torch.device, repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each callable, timed in interleaved rounds (a load change on a shared machine then hits
    every path alike), after one warm-up call each."""
    outs = {k: fn() for k, fn in fns.items()}  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            outs[k] = fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, outs


@torch.no_grad()
def backbones_only(method: KnowledgeSpreader, frames: torch.Tensor, chunk: int) -> None:
    for c in frames.split(chunk):
        method.net.features_a(c)
        method.net.features_b(c)


@torch.no_grad()
def naive_batched(method: KnowledgeSpreader, frames: torch.Tensor, chunk: int) -> torch.Tensor:
    """Every (frame t, key position m) clip from pixels, ``chunk // n`` clips per forward pass."""
    n, t_total = method.options.clip_len, frames.shape[0]
    pairs = [(t, m) for t in range(t_total) for m in method._key_positions(t)]
    sa_sum = torch.zeros(t_total, method.info.num_aus, device=frames.device)
    tb_sum = torch.zeros_like(sa_sum)
    count = torch.zeros(t_total, device=frames.device)
    per = max(1, chunk // n)
    for i in range(0, len(pairs), per):
        batch = pairs[i : i + per]
        idx = torch.stack([torch.arange(t - m, t - m + n) for t, m in batch]).clamp(0, t_total - 1).to(frames.device)
        key = torch.tensor([m for _, m in batch], device=frames.device)
        ts = torch.tensor([t for t, _ in batch], device=frames.device)
        out = method.net(frames[idx], key)
        sa_sum.index_add_(0, ts, torch.sigmoid(out.sa_logits.float()))
        tb_sum.index_add_(0, ts, torch.sigmoid(out.tb_logits[torch.arange(len(batch)), key].float()))
        count.index_add_(0, ts, torch.ones(len(batch), device=frames.device))
    return 0.5 * (sa_sum + tb_sum) / count[:, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--clip-len", type=int, default=5)
    ap.add_argument("--aus", type=int, default=12)
    ap.add_argument("--chunk", type=int, default=40, help="frames per backbone forward pass (all three paths)")
    ap.add_argument("--positions", choices=["all", "shift"], default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--amp", choices=["off", "bf16"], default="off")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.image_size, a.chunk, a.repeats = 16, 32, 10, 3
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    info = DatasetInfo("BP4D", tuple(range(a.aus)), torch.ones(a.aus), 1, a.image_size, 25.0)
    method = KnowledgeSpreader(KSOptions(clip_len=a.clip_len, dense_positions=a.positions), info).to(device).eval()
    frames = torch.randn(a.frames, 3, a.image_size, a.image_size, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if a.amp == "bf16" else contextlib.nullcontext()

    with amp:
        with torch.no_grad():
            cached_a = torch.cat([method.net.features_a(c) for c in frames.split(a.chunk)])
            cached_b = torch.cat([method.net.features_b(c) for c in frames.split(a.chunk)])

        @torch.no_grad()
        def heads_only():  # everything predict_video does besides the two backbone passes
            method.net.spatial_head(cached_a)
            return method.dense_temporal_probs(cached_b)

        t, out = _timed_rounds({
            "backbones": lambda: backbones_only(method, frames, a.chunk),
            "dense": lambda: method.predict_video(iter(frames.split(a.chunk)), a.frames),
            "heads": heads_only,
        }, device, a.repeats)
        t_bb, t_dense, dense = t["backbones"], t["dense"], out["dense"]
        tn, outn = _timed_rounds({"naive": lambda: naive_batched(method, frames, a.chunk)}, device, max(1, a.repeats // 3))
        t_naive, naive = tn["naive"], outn["naive"]

    ms = lambda t: 1000.0 * t / a.frames  # noqa: E731
    print(f"KS dense inference: {a.frames} frames, {a.image_size} px, n = {a.clip_len}, positions = {a.positions}, "
          f"device {device}, threads {torch.get_num_threads()}, amp {a.amp}")
    print(f"{'path':<36}{'ms/frame':>10}{'ratio':>10}")
    print(f"{'backbones A+B, one pass per frame':<36}{ms(t_bb):>10.2f}{1.0:>10.2f}")
    print(f"{'dense predict_video':<36}{ms(t_dense):>10.2f}{t_dense / t_bb:>10.2f}   (vs backbones; target <= 1.5)")
    print(f"{'naive per-clip recomputation':<36}{ms(t_naive):>10.2f}{t_naive / t_dense:>10.2f}   (vs dense)")
    print(f"{'heads only, from cached features':<36}{ms(t['heads']):>10.2f}{t['heads'] / t_bb:>10.2f}   (S_a, students, "
          f"T_b on every window; (backbones + heads) / backbones = {(t_bb + t['heads']) / t_bb:.3f}, robust to load)")
    print(f"max |dense - naive| = {float((dense.float() - naive.float()).abs().max()):.2e}")


if __name__ == "__main__":
    main()
