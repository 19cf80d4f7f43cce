"""PIAP-DF ablation (Table 3 rows: baseline, PI-2, PI-3, AP, DF, PIAP, PIAP-DF) on the synthetic data, fold 1.

Each row is one ``auspread train`` run (the same code path) of configs/piap-df_synthetic.yaml with
``method.variant=<row>`` and ``optim.epochs`` = the sum of that variant's stage epochs. Prints the per-AU test F1
table (markdown) and the minutes per row. Resumable: rows whose run folder has results/summary.json are read back.

Full measurement (for docs/BENCHMARKS.md):  python benchmarks/bench_piap_ablation.py --out runs/piap-ablation
    = configs/piap-df_synthetic.yaml (reduced CPU configuration: "small" encoder width 16, 64 px, Adam 1e-3,
      stages pi1 1, pi2 2, person 1, main 3, df 2 epochs x 120 steps of 32 frames, 5% labels) on `bp4d-like`, fold 1,
      evaluation on every 4th validation/test video
Smoke check (about a minute):               python benchmarks/bench_piap_ablation.py --quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from auspread.engine.config import load_config
from auspread.engine.run import run_training
from auspread.methods.piap_df import VARIANT_STAGES

REPO = Path(__file__).resolve().parent.parent
ROWS = ["baseline", "pi-2", "pi-3", "ap", "df", "piap", "piap-df"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder of the runs (default: a temporary folder)")
    ap.add_argument("--preset", default="bp4d-like")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--labels", default="5%")
    ap.add_argument("--steps-per-epoch", type=int, default=120,
                    help="steps per stage epoch (the config's 40 left every row at the all-negative plateau)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: leave a core to a parallel job)")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 32 px, width 4, 1 epoch x 2 steps per stage")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="piap-ablation-"))
    cfg_file = REPO / "configs" / "piap-df_synthetic.yaml"
    base = [f"data.synth_preset={a.preset}", f"data.labels={a.labels}", "data.fold=1", f"out_dir={out}",
            f"threads={a.threads}", "data.eval_video_stride=4", f"optim.steps_per_epoch={a.steps_per_epoch}"]  # stride: as the other label-ratio benchmarks
    if a.quick:
        base = [f"out_dir={out}", "data.synth_preset=tiny", "data.image_size=32", "method.width=4",
                "method.generator_width=4", "method.decoder_width=4", "optim.batch_size=8", "optim.steps_per_epoch=2",
                "method.stage_epochs={pi1: 1, pi2: 1, person: 1, main: 1, df: 1}", "threads=1"]
    rows = []
    for variant in [r.strip() for r in a.rows.split(",") if r.strip()]:
        probe = load_config(cfg_file, base + [f"method.variant={variant}"])
        epochs = sum(getattr(probe.method.stage_epochs, s) for s in VARIANT_STAGES[variant])
        summary_file = out / variant / "results" / "summary.json"
        if summary_file.is_file():
            s = json.loads(summary_file.read_text())
        else:
            t0 = time.time()
            cfg = load_config(cfg_file, base + [f"method.variant={variant}", f"optim.epochs={epochs}", f"name={variant}"])
            s = run_training(cfg, progress=not a.quick).to_dict()
            s["seconds"] = time.time() - t0
        rows.append((variant, s))
    aus = list(rows[0][1]["test_per_au"])
    print("\n| row | " + " | ".join(aus) + " | mean F1 | minutes |")
    print("|---|" + "---:|" * (len(aus) + 2))
    for variant, s in rows:
        print(f"| {variant} | " + " | ".join(f"{100 * s['test_per_au'][k]:.1f}" for k in aus)
              + f" | {100 * s['test_f1']:.1f} | {s['seconds'] / 60:.1f} |")
    print(f"\nruns: {out}")


if __name__ == "__main__":
    main()
