"""The measurements of issue 18 (`auspread pretrain`), on the synthetic `bp4d-like` preset, fold 1, 64 px.

1. pretraining time of the default recipe (SimCLR with within-video negatives, ResNet-18, 15 epochs x 40 steps of 32 frames,
   optim.amp=auto), from the cache entry's own record (resumable: run again after a kill; a finished entry is reused);
2. the linear probe at 5% labels (frozen trunk, logistic head on the labelled training frames) from the pretrained
   trunk vs from random weights: mean F1 on the validation subjects and on the test subjects (every 4th video, the
   frames the fine-tuned rows are tested on: data.eval_video_stride=4 of _budget.py);
3. the supervised counterpart fine-tuned at 5% labels from each start, with the shared budget of
   benchmarks/_budget.py (the same steps, optimiser and test frames for both rows): test mean F1.

Full measurement (for docs/BENCHMARKS.md):  python benchmarks/bench_pretrain.py --out runs/bench-pretrain
    = auspread pretrain data.synth_preset=bp4d-like data.fold=1 data.image_size=64 --probe --labels 5%
      + auspread train -m supervised --labels 5% <budget> [pretrained=<trunk>]
Smoke check (about a minute):               python benchmarks/bench_pretrain.py --quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _budget import BUDGET

from auspread.engine.config import load_config
from auspread.engine.run import run_training
from auspread.pretrain.config import load_pretrain_config
from auspread.pretrain.run import linear_probe, run_pretrain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder for the fine-tuning runs and results.json "
                    "(default: a temporary folder); the trunk lives in the pretraining cache")
    ap.add_argument("--preset", default="bp4d-like")
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--labels", default="5%")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 32 px, pretraining 2x4 steps, fine-tune 1x2 steps")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra pretraining override (repeatable)")
    a = ap.parse_args()

    threads = [f"threads={a.threads}"] if a.threads else []
    data = [f"data.synth_preset={a.preset}", f"data.fold={a.fold}", "data.image_size=64", f"data.labels={a.labels}"]
    if a.quick:
        data = ["data.synth_preset=tiny", f"data.fold={a.fold}", "data.image_size=32", f"data.labels={a.labels}"]
        pre = [*data, "optim.epochs=2", "optim.steps_per_epoch=4", "optim.batch_size=16", "recipe.proj_hidden=256",
               "recipe.proj_dim=64", "probe.steps=50"]
        train = [*data, "optim.optimizer=adamw", "optim.lr=0.001", "optim.epochs=1", "optim.steps_per_epoch=2",
                 "optim.batch_size=8", "optim.amp=off"]
    else:
        pre = [*data, "optim.amp=auto", "data.eval_video_stride=4"]  # the probe scores the test frames of _budget.py
        train = [*BUDGET, *data]  # data after the budget: preset, fold, 64 px, labels
    out = a.out or Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    out.mkdir(parents=True, exist_ok=True)

    pcfg = load_pretrain_config(None, [*pre, *threads, *a.set])
    t0 = time.time()
    s = run_pretrain(pcfg, progress=True)
    print(f"pretraining: {s.steps} steps, {s.train_seconds / 60:.1f} min of training ({'fp32' if s.precision == 'off' else s.precision}), "
          f"{s.wall_seconds / 60:.1f} min wall with data preparation, loss {s.loss_first:.3f} -> {s.loss_last:.3f}"
          f"{' (cached)' if s.cached else ''}; {s.trunk}")
    probes = {}
    for start, trunk in (("pretrained", s.trunk), ("random", None)):
        for split in ("val", "test"):
            r = linear_probe(pcfg, trunk, split=split)
            probes[f"{start}/{split}"] = r.to_dict()
            print(f"linear probe {start:10s} {split:4s}: mean F1 {100 * r.f1:.1f} (all-positive {100 * r.all_positive_f1:.1f}, "
                  f"{r.train_frames} labelled frames)")
    fine = {}
    for start, trunk in (("pretrained", s.trunk), ("random", None)):
        cfg = load_config(None, ["method.name=supervised", *train, *threads, f"out_dir={out}", f"name=supervised-{start}",
                                 *([f"pretrained={trunk}"] if trunk else [])])
        r = run_training(cfg, progress=True)
        fine[start] = {"test_f1": r.test_f1, "val_f1": r.val_f1, "all_positive": r.test_f1_all_positive,
                       "seconds": r.seconds, "run": str(r.run_dir)}
        print(f"supervised {a.labels} from {start:10s}: test mean F1 {100 * r.test_f1:.1f} (val {100 * (r.val_f1 or 0):.1f}), "
              f"{r.seconds / 60:.1f} min")
    res = {"pretrain": {**s.to_dict(), "config": pcfg.model_dump(mode="json")}, "probe": probes, "supervised": fine,
           "wall_seconds": time.time() - t0}
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str))
    p, f = probes, fine
    print(f"\n| start | pretraining (min) | linear probe {a.labels} val / test | supervised {a.labels} test |")
    print("|---|---:|---:|---:|")
    for start in ("pretrained", "random"):
        mins = f"{s.train_seconds / 60:.1f}" if start == "pretrained" else "-"
        print(f"| {start} | {mins} | {100 * p[f'{start}/val']['f1']:.1f} / {100 * p[f'{start}/test']['f1']:.1f} | "
              f"{100 * f[start]['test_f1']:.1f} |")
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
