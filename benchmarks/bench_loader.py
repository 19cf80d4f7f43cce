"""Loader throughput vs the CPU training-step rate of a KS-like model (issue 3, item 5: target loader ≥ 3× step).

Measures, side by side, on the same machine:

* frame-store build rate (decode + resize, frames/s; once per dataset and size);
* loader rate: frames/s delivered by ``TrainBatches`` in key-frame mode (n = 5 clips, batch 16, 112 px crops out of
  a 128 px store, full training augmentation), for each ``--workers`` value;
* step rate: frames/s consumed by a KS-like training step, two ResNet-18 passes (one on the B key frames, one on
  all B·n clip frames), forward + backward + SGD, channels_last, in fp32 and in bf16 autocast;

and prints loader/step ratios. Data: random-noise PNG videos (pixel content does not change the loader's cost
once the store is built), or ``--synth PRESET`` to use ``auspread.data.synth`` + the BP4D reader.

Full measurement (the lead's machine):   python benchmarks/bench_loader.py --workers 0 2 4
Smoke check (seconds):                   python benchmarks/bench_loader.py --quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def random_png_index(root: Path, videos: int, frames: int, size: int, seed: int = 0):
    from PIL import Image

    from auspread.data.index import ImageFiles, VideoIndex, VideoRecord

    rng = np.random.default_rng(seed)
    recs = []
    for v in range(videos):
        d = root / f"V{v:03d}"
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        base = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        for t in range(frames):
            img = np.kron(base, np.ones((8, 8, 1), np.uint8)) ^ np.uint8(t % 7)
            p = d / f"{t:05d}.png"
            Image.fromarray(img).save(p, compress_level=1)
            paths.append(str(p))
        labels = rng.integers(0, 2, size=(frames, 12)).astype(np.int8)
        recs.append(VideoRecord(f"V{v:03d}", f"S{v // 2}", f"T{v}", np.arange(frames), labels, ImageFiles(tuple(paths))))
    return VideoIndex("bench", (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24), recs, fps=25.0, root=str(root))


def synth_index(root: Path, preset: str):
    from auspread.data.readers import read_dataset
    from auspread.data.synth import generate

    out = generate(root / "synth", preset=preset, fmt="bp4d", progress=True)
    return read_dataset("bp4d", out)


def loader_rate(index, store, batch: int, clip: int, image: int, workers: int, max_steps: int) -> dict:
    from auspread.data.labels import sparsify
    from auspread.data.sampling import TrainBatches
    from auspread.engine.config import DataConfig
    from auspread.methods.base import DataSpec

    sparse = sparsify(index, 1, seed=0)
    cfg = DataConfig(image_size=image, store_size=store.size, num_workers=workers)
    spec = DataSpec(clip_len=clip, sampling="key_frames", key_frame_shift=True)
    tb = TrainBatches(index, sparse.key_frames, store, spec, cfg, batch, seed=0)
    steps = min(max_steps, len(tb))
    it = iter(tb)
    next(it)  # warm-up (worker start-up, first page faults)
    t0 = time.perf_counter()
    frames = 0
    for i, b in zip(range(steps), it):
        frames += b["frames"].shape[0] * b["frames"].shape[1]
    dt = time.perf_counter() - t0
    return {"workers": workers, "steps": steps, "frames": frames, "seconds": dt, "frames_per_s": frames / dt}


def step_rate(batch: int, clip: int, image: int, precision: str, steps: int) -> dict:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    a, b = resnet18(num_classes=12), resnet18(num_classes=12)
    model = torch.nn.ModuleList([a, b]).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, clip, 3, image, image)
    y = torch.randint(0, 2, (batch, clip, 12)).float()

    def one_step():
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
        with ctx:
            key = x[:, clip // 2].contiguous(memory_format=torch.channels_last)
            allf = x.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            la = a(key).float()
            lb = b(allf).float().view(batch, clip, 12)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(la, y[:, clip // 2]) + \
                torch.nn.functional.binary_cross_entropy_with_logits(lb, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one_step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    dt = time.perf_counter() - t0
    return {"precision": precision, "steps": steps, "seconds": dt, "frames_per_s": steps * batch * clip / dt,
            "steps_per_s": steps / dt}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--clip", type=int, default=5)
    ap.add_argument("--image", type=int, default=112)
    ap.add_argument("--store", type=int, default=128)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--source", type=int, default=256, help="source frame side of the generated PNGs")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--loader-steps", type=int, default=40)
    ap.add_argument("--model-steps", type=int, default=5)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--synth", default=None, help="use auspread.data.synth with this preset instead of noise PNGs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the model step")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.videos, args.frames, args.source = 2, 2, 12, 64
        args.workers, args.loader_steps, args.model_steps = [0], 3, 1
        args.precisions = ["fp32"]
    if args.threads:
        torch.set_num_threads(args.threads)

    from auspread.data.store import FrameStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = synth_index(root, args.synth) if args.synth else random_png_index(root, args.videos, args.frames,
                                                                                   args.source)
        t0 = time.perf_counter()
        store = FrameStore.open(index, args.store, cache_dir=root / "cache", progress=False)
        build = index.num_frames / (time.perf_counter() - t0)
        loaders = [loader_rate(index, store, args.batch, args.clip, args.image, w, args.loader_steps)
                   for w in args.workers]
    steps = [step_rate(args.batch, args.clip, args.image, p, args.model_steps) for p in args.precisions]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; key_frames n={args.clip}, batch "
          f"{args.batch}, {args.image} px crops from a {args.store} px store, {index.num_frames} frames")
    print(f"store build: {build:,.0f} frames/s (decode + resize, once)")
    print(f"{'loader':<14}{'frames/s':>12}  " + "  ".join(f"{'÷ step ' + s['precision']:>14}" for s in steps))
    for l in loaders:
        ratios = "  ".join(f"{l['frames_per_s'] / s['frames_per_s']:>13.2f}×" for s in steps)
        print(f"workers={l['workers']:<6}{l['frames_per_s']:>12,.0f}  {ratios}")
    for s in steps:
        print(f"step {s['precision']:<9}{s['frames_per_s']:>12,.1f}  ({s['steps_per_s']:.3f} steps/s, "
              f"two ResNet-18 passes fwd+bwd, channels_last)")
    result = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "store_build_frames_per_s": build, "loader": loaders, "step": steps}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
