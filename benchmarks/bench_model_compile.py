"""Inference speed of a ResNet-18 in fp32 under graph compilers, side by side (issue 21: the AU model is the slowest
stage of ``auspread predict`` on CPUs without native bf16). Variants, in alternating rounds:

1. **eager**: torchvision's ResNet-18 in ``inference_mode``;
2. **fx-fused**: conv-BN folded (``torch.fx.experimental.optimization.fuse``);
3. **jit**: ``torch.jit.optimize_for_inference(torch.jit.script(m))`` (deprecated by PyTorch, for comparison);
4. **compile**: ``torch.compile`` (inductor) with ``torch._inductor.config.freezing = True``.

Prints frames/s per round (best of ``--iters`` timed batches), the compile time, and the largest output difference
against eager. Weights are random: they do not change the speed. ``predict`` uses variant 4 (``--compile``;
src/auspread/predict/compiled.py).

    python benchmarks/bench_model_compile.py                  # 224 px, batch 16, 1 thread, 2 rounds
    python benchmarks/bench_model_compile.py --size 112 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
import torchvision


def _fps(f, x: torch.Tensor, iters: int) -> float:
    with torch.inference_mode():
        f(x)  # warm-up
        best = min(_timed(f, x) for _ in range(iters))
    return x.shape[0] / best


def _timed(f, x: torch.Tensor) -> float:
    t = time.perf_counter()
    f(x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit's deprecation notices
    eager = torchvision.models.resnet18().eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    from torch.fx.experimental.optimization import fuse
    import torch._inductor.config as inductor_config

    variants = {"eager": eager, "fx-fused": fuse(copy.deepcopy(eager)),
                "jit": torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(eager)))}
    inductor_config.freezing = True
    compiled = torch.compile(copy.deepcopy(eager))
    t0 = time.perf_counter()
    with torch.inference_mode():
        ref = eager(x)
        out = compiled(x)
    print(f"compile (first call included): {time.perf_counter() - t0:.1f} s; "
          f"max |compiled - eager| = {(out - ref).abs().max().item():.2e}")
    variants["compile"] = compiled
    print(f"ResNet-18, {a.size} px, batch {a.batch}, {a.threads} thread(s), fp32; frames/s (best of {a.iters})")
    for r in range(a.rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        fps = {n: _fps(variants[n], x, a.iters) for n in names}
        print(f"round {r + 1}: " + "  ".join(f"{n} {fps[n]:.1f}" for n in variants))


if __name__ == "__main__":
    main()
