"""The label-ratio comparison of issue 6 (KS Fig. 4 / supplement Table 1) on the synthetic data, timed.

Runs ``auspread.study.run_study`` — the same code as ``auspread study`` — for all five methods and prints the
methods × ratios mean-F1 table, the wall time, and where the report is. Resumable: run it again to finish a killed
grid (finished cells are skipped).

Full measurement (issue 19, docs/BENCHMARKS.md):  python benchmarks/bench_ssl_study.py --out studies/bp4d-like-f1-pt --labels 1,5,100
    = auspread study --methods ks,supervised,pseudo-label,fixmatch,tcl --labels 1,5,100 --folds 1
      on the synthetic `bp4d-like` preset with the budget of benchmarks/_budget.py (64 px, AdamW 1e-3, every cell
      from the cached `auspread pretrain` trunk, 20 epochs x 120 steps of 16 labelled samples), method options from
      configs/<method>_synthetic.yaml
History (issue 6, from random weights, 10 epochs):  add --start random --labels 1,5,20,100
Smoke check (minutes):                      python benchmarks/bench_ssl_study.py --quick
Cells already trained by bench_ks_table.py (same budget, so the same runs): add --adopt runs/ks19; the report of what
is finished, training nothing:              add --no-train
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _budget import STARTS, budget_for, per_method

from auspread import study as S

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="study folder (default: a temporary folder)")
    ap.add_argument("--methods", default="ks,supervised,pseudo-label,fixmatch,tcl")
    ap.add_argument("--labels", default="1,5,20,100")
    ap.add_argument("--preset", default="bp4d-like")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    ap.add_argument("--start", default="pretrained", choices=sorted(STARTS),
                    help="pretrained: every cell from the cached `auspread pretrain` trunk, 20 epochs (issue 19); "
                         "random: random weights, 10 epochs (the budget of issues 6-17); imagenet: torchvision's "
                         "ImageNet MobileNetV2, 20 epochs")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 32 px, 1 epoch of 2 steps, labels 5,100")
    ap.add_argument("--adopt", action="append", default=[], type=Path, metavar="DIR",
                    help="a bench_ks_table.py output folder: its finished cells <method>-l<ratio> (ks-l5, supervised-l100, "
                         "...) become this study's cells when their configuration is the same (repeatable)")
    ap.add_argument("--no-train", action="store_true",
                    help="record the finished (and adopted) cells and write the report; train nothing")
    ap.add_argument("--set", action="append", default=[], metavar="[METHOD:]KEY=VALUE",
                    help="extra run override after the budget, e.g. tcl:method.gamma=0.1 (repeatable)")
    a = ap.parse_args()

    if a.quick:
        base = {"data": {"dataset": "synthetic", "synth_preset": "tiny", "image_size": 32},
                "optim": {"optimizer": "sgd", "lr": 0.01, "epochs": 1, "batch_size": 8, "steps_per_epoch": 2,
                          "amp": "off"}, "threads": 1}
        labels = "5,100"
        overrides = ["tcl:optim.batch_size=2", "fixmatch:method.unlabelled_ratio=1", "pseudo-label:method.unlabelled_ratio=1"]
    else:  # the budget shared with bench_ks_table.py (benchmarks/_budget.py)
        base = {"data": {"dataset": "synthetic"}, "threads": a.threads}
        labels = a.labels
        overrides = budget_for(a.start) + [f"data.synth_preset={a.preset}"] + [f"{m}:{o}" for m, opts in per_method(a.start).items() for o in opts]
    overrides = overrides + a.set
    out = a.out or Path(tempfile.mkdtemp(prefix="ssl-study-"))
    spec = S.StudySpec(methods=S.parse_list(a.methods), labels=S.parse_list(labels), folds=[1], seeds=[0], base=base,
                       overrides=overrides, configs_dir=str(REPO / "configs"))
    for folder in a.adopt:
        for cell in spec.cells():
            run = folder / f"{cell.method}-l{S.label_percent(cell.labels):g}"
            if (run / "results" / "summary.json").is_file():
                print(f"adopted {run} as {cell.key}: {S.adopt_run(spec, cell, run, out)}")
    t0 = time.time()
    records = S.run_study(spec, out, workers=a.workers, train=not a.no_train)
    wall = time.time() - t0
    summary = S.summarise(records, spec.methods)
    print()
    print(S.mean_f1_table(summary, "md"))
    cell_time = sum(float(r.get("seconds") or 0) for r in records)
    print(f"\n{len(records)} cells; wall time of this start {wall / 60:.1f} min; sum of cell times {cell_time / 60:.1f} min")
    print(f"report: {out / 'report.md'}  curves: {out / 'f1_vs_labels.png'}")


if __name__ == "__main__":
    main()
