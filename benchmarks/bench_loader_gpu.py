"""Can the training loader feed a GPU? Frames/s of the training loaders of the packaged real-data configs
(``ks_bp4d``: 16 + 16 unlabelled clips of 5 frames; ``supervised_bp4d``: 64 frames; 224 px crops of the 256 px
frame store, the configs' full augmentation) with 1, 4 and 8 workers, on a synthetic BP4D-layout tree, side by side
for both places augmentation can run (``data.augment_on``):

* ``loader``: the workers read uint8 frames, rotate/crop/flip/colour-jitter and normalise them, and hand over
  float32 crops (3·224·224·4 = 602 kB a frame);
* ``device``: the workers read uint8 frames and draw the augmentation, and hand over the uint8 frames and the draws
  (256·256·3 = 197 kB a frame); the training process augments them on its device. Reported: the frames/s the
  workers deliver, and what the augmentation then costs on this machine's CPU (on a GPU it is a few kernels;
  not measured here: no GPU).

Batches are those of the configs' last epoch (KS's unlabelled clips on). The first batch (worker start-up) is not
timed. The tiny tree's epoch has few steps, so the loader repeats them (``TrainBatches.loader(num_steps)``);
frames come from the page cache, as they do once a frame store is read.

    python benchmarks/bench_loader_gpu.py                       # ks + supervised, workers 1 4 8, both paths
    python benchmarks/bench_loader_gpu.py --quick               # smoke check (seconds)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def make_batches(method: str, root: Path, work: Path, image_size: int | None, workers: int, augment_on: str):
    from auspread import doctor as doc
    from auspread.data.labels import sparsify
    from auspread.data.sampling import TrainBatches
    from auspread.engine.data import dataset_info, open_store, read_index, split_index
    from auspread.engine.restore import build_method

    cfg = doc.method_config(method, root, work / "frames", work / "runs", "cpu", image_size, workers,
                            [f"data.augment_on={augment_on}"])
    index = read_index(cfg.data, progress=False)
    splits = split_index(index, cfg.data, cfg.seed)
    sparse = sparsify(splits.train, cfg.data.labels.every, cfg.data.label_seed)
    spec = build_method(cfg, dataset_info(sparse.index, cfg.data), None).data_spec()
    store = open_store(splits.train, cfg.data, progress=False)
    tb = TrainBatches(splits.train, sparse.key_frames, store, spec, cfg.data, cfg.optim.batch_size, seed=cfg.seed)
    tb.set_epoch(cfg.optim.epochs - 1)
    return cfg, tb


def measure(tb, batches: int) -> dict:
    """Frames/s the workers deliver (no model), and for the device path the augmentation's own cost here."""
    from auspread.engine.loop import batch_frames

    it = iter(tb.loader(batches + 1))
    next(it)
    t0, frames, finish_s, kept = time.perf_counter(), 0, 0.0, []
    for b in it:
        frames += batch_frames(b)
        if len(kept) < 2:
            kept.append(b)
    dt = time.perf_counter() - t0
    out = {"frames": frames, "seconds": dt, "frames_per_s": frames / dt,
           "bytes_per_frame": kept[0]["frames"][0, 0].numel() * kept[0]["frames"].element_size()}
    if tb.cfg.augment_on == "device":
        n = 0
        t1 = time.perf_counter()
        for b in kept:
            tb.finish(b)
            n += batch_frames(b)
        finish_s = time.perf_counter() - t1
        out["augment_here_frames_per_s"] = n / finish_s
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["ks", "supervised"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--paths", nargs="+", default=["loader", "device"], choices=["loader", "device"])
    ap.add_argument("--batches", type=int, default=None, help="timed batches (default max(12, 3 x workers))")
    ap.add_argument("--image-size", type=int, default=None, help="override the configs' 224 px")
    ap.add_argument("--quick", action="store_true", help="smoke check: 32 px, 0 workers, 2 batches")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.image_size, args.workers, args.batches = 32, [0], 2
    from auspread import doctor as doc
    from auspread.engine.precision import cpu_description

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = doc.method_config("ks", work, work, work, "cpu", args.image_size).data.resolved_store_size
        root = doc.synthetic_tree(work / "data", size)
        for m in args.methods:
            for path in args.paths:
                for w in args.workers:
                    cfg, tb = make_batches(m, root, work, args.image_size, w, path)
                    r = measure(tb, args.batches or max(12, 3 * w))
                    r.update(method=m, augment_on=path, workers=w, image_size=cfg.data.image_size,
                             store_size=cfg.data.resolved_store_size, frames_per_batch=r["frames"] // (args.batches or max(12, 3 * w)))
                    rows.append(r)
                    extra = (f", augmenting them here {r['augment_here_frames_per_s']:,.0f} frames/s"
                             if "augment_here_frames_per_s" in r else "")
                    print(f"{m:<11} augment_on={path:<7} workers={w}: {r['frames_per_s']:8,.0f} frames/s delivered "
                          f"({r['bytes_per_frame'] / 1000:.0f} kB/frame){extra}", flush=True)
    print(f"torch {torch.__version__}; {cpu_description()}; frames {rows[0]['image_size']} px crops of "
          f"{rows[0]['store_size']} px store frames")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
