"""Knowledge-Spreader vs its supervised counterpart and the three Table 3 ablations at several label ratios
(issue 5), on the synthetic `bp4d-like` benchmark, fold 1, under one equal-step budget.

Every cell is one ``auspread train`` run (the same code path, ``run_training``) of the packaged synthetic config of
its method, with the shared budget below. Budget rule (the semi-supervised convention of FixMatch/USB): every method
takes the same number of optimizer steps with the same number of *labelled* samples per step (16 key frames = 16
labelled clips for KS, 16 labelled frames for the supervised counterpart); what a method does with unlabelled data
on top is its own cost. Prints the mean-F1 table and the minutes per cell. Resumable: cells whose run folder has
results/summary.json are read back, so rows can be run in separate processes (``--rows``) and gathered later, and a
cell stopped mid-way continues from its last finished epoch (its minutes add the span of its earlier metrics log).

Measurement (issue 19, from the cached pretrained trunk; docs/BENCHMARKS.md):
                                   python benchmarks/bench_ks_table.py --out runs/ks19 --labels 2,5,100
History (issues 5-17, from random weights): add --start random
From torchvision's ImageNet MobileNetV2 (every trunk; docs/BENCHMARKS.md "ImageNet start"): add --start imagenet
Smoke check (about a minute):      python benchmarks/bench_ks_table.py --quick
Issue 17, each change off:         python benchmarks/bench_ks_table.py --out runs/ks17 --labels 5 --start random \
                                       --rows ks,ks-kl-summed,ks-no-distill-ramp,ks-no-tb-bce,ks-per-position,ks-layernorm
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _budget import STARTS, budget_for, per_method

from auspread.engine.config import load_config
from auspread.engine.run import run_training

REPO = Path(__file__).resolve().parent.parent
# row name -> (config file, overrides). The ablations are KS with one flag (docs/methods/knowledge_spreader.md).
ROWS = {
    "ks": ("ks_synthetic.yaml", []),
    "supervised": ("supervised_synthetic.yaml", []),
    "ks-sil-mlp": ("ks_synthetic.yaml", ["method.sil=mlp"]),  # Table 3 "KSM+TPL"
    "ks-no-distill": ("ks_synthetic.yaml", ["method.distill=false"]),  # Table 3 "SIL+TPL"
    "ks-no-tpl": ("ks_synthetic.yaml", ["method.tpl=false"]),  # Table 3 "SIL+KSM"
    # issue 17: each change off, the others on (ks_synthetic's random-weights defaults otherwise)
    "ks-kl-summed": ("ks_synthetic.yaml", ["method.kd_lambda=6"]),  # 1 off: λ·U, the old summed KL on BP4D (U = 12)
    "ks-no-distill-ramp": ("ks_synthetic.yaml", ["method.distill_ramp=false"]),  # 2 off
    "ks-no-tb-bce": ("ks_synthetic.yaml", ["method.w_tb=0"]),  # 3 off
    "ks-per-position": ("ks_synthetic.yaml", ["method.students=per_position"]),  # 5 off: the paper's students
    # 5 off: the paper's encoders (LayerNorm) and the ViT head initialisation
    "ks-layernorm": ("ks_synthetic.yaml", ["method.encoder_norm=layer", "method.au_head_init=trunc_normal"]),
    # the paper's own design: per-position students and LayerNorm encoders (the three choices above made for random trunks)
    "ks-paper": ("ks_synthetic.yaml", ["method.students=per_position", "method.encoder_norm=layer",
                                       "method.au_head_init=trunc_normal"]),
    # not in the paper: both ResNet-18s start from the supervised cell's trained trunk (same labels, same ratio),
    # standing in for the paper's ImageNet initialisation; needs the "supervised" cell of that ratio first
    "ks-warm": ("ks_synthetic.yaml", []),
    # the three ablations from the same warm start
    "ks-warm-sil-mlp": ("ks_synthetic.yaml", ["method.sil=mlp"]),
    "ks-warm-no-distill": ("ks_synthetic.yaml", ["method.distill=false"]),
    "ks-warm-no-tpl": ("ks_synthetic.yaml", ["method.tpl=false"]),
    # its counterpart with the same compute: the supervised cell's trunk (new head) trained for the same budget again
    "supervised-warm": ("supervised_synthetic.yaml", []),
}
QUICK = ["data.synth_preset=tiny", "data.image_size=32", "optim.batch_size=4", "optim.epochs=2",
         "optim.steps_per_epoch=2", "method.ramp_epochs=1", "method.unlabelled_from_epoch=1", "eval_every=1"]


def _logged_seconds(cell_dir: Path) -> float:
    """Span of a stopped cell's metrics log (first to last record): the training time it spent before it was
    stopped, added to a resumed cell's minutes so that the table prints the whole cell's."""
    log = cell_dir / "metrics.jsonl"
    if not log.is_file():
        return 0.0
    times = [json.loads(line).get("time") for line in log.read_text().splitlines() if line.strip()]
    times = [t for t in times if isinstance(t, (int, float))]
    return max(times) - min(times) if len(times) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder of the runs (default: a temporary folder)")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--labels", default="2,5,10,100", help="label percentages")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--start", default="pretrained", choices=sorted(STARTS),
                    help="pretrained: every cell from the cached `auspread pretrain` trunk, 20 epochs (issue 19); "
                         "random: random weights, 10 epochs (the budget of issues 5-17); imagenet: torchvision's "
                         "ImageNet MobileNetV2, 20 epochs")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 32 px, 2 epochs x 2 steps, labels 5,100")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every cell, after the budget (e.g. optim.amp=off on a CPU without native bf16)")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="ks-table-"))
    labels = ["5", "100"] if a.quick else [x.strip() for x in a.labels.split(",") if x.strip()]
    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    results: dict[tuple[str, str], dict] = {}
    for lab in labels:
        for row in rows:
            cfg_name, extra = ROWS[row]
            name = f"{row}-l{lab}"
            summary_file = out / name / "results" / "summary.json"
            if summary_file.is_file():
                results[row, lab] = json.loads(summary_file.read_text())
                continue
            ks = cfg_name.startswith("ks")
            budget = QUICK if a.quick else budget_for(a.start) + per_method(a.start)["ks" if ks else "supervised"]
            if a.quick and not ks:
                budget = [b for b in budget if not b.startswith("method.")]
            if "-warm" in row:
                warm = out / f"supervised-l{lab}" / "checkpoints" / "best.pt"
                if not warm.is_file():
                    raise SystemExit(f"{row} needs the supervised cell first: {warm} not found")
                extra = extra + [f"pretrained={warm}"]
            overrides = budget + a.set + extra + [f"data.labels={lab}%", f"threads={a.threads}", f"out_dir={out}", f"name={name}"]
            cell_dir, resume = out / name, None
            if (cell_dir / "checkpoints" / "last.pt").is_file():  # a killed cell continues from its last epoch
                resume = cell_dir
                print(f"{name}: continuing the stopped cell from {cell_dir}/checkpoints/last.pt", flush=True)
            elif cell_dir.is_dir() and any(cell_dir.iterdir()):  # stopped before its first epoch ended: start again
                print(f"{name}: {cell_dir} holds no finished epoch; starting the cell again", flush=True)
                shutil.rmtree(cell_dir)
            before = _logged_seconds(cell_dir) if resume else 0.0
            t0 = time.time()
            s = run_training(load_config(REPO / "configs" / cfg_name, overrides), progress=not a.quick, resume=resume).to_dict()
            s["seconds"] = time.time() - t0 + before
            results[row, lab] = s
    print("\n| method | " + " | ".join(f"{lab}%" for lab in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for row in rows:
        cells = []
        for lab in labels:
            s = results.get((row, lab))
            cells.append("–" if s is None else f"{100 * s['test_f1']:.1f} ({s.get('seconds', 0) / 60:.0f} min)")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print(f"\nruns: {out}")


if __name__ == "__main__":
    main()
