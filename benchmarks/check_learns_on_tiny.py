"""Does a method learn at all? Train it on the synthetic `tiny` preset (100% labels, no validation split) and score
it on its own training subjects against the all-positive predictor on the same frames.

The tiny preset has 4 training subjects: this measures learning through the engine and the data pipeline, not
transfer to new people. Any run-configuration override may follow the config file. Measured (docs/BENCHMARKS.md):

    python benchmarks/check_learns_on_tiny.py configs/mdhr_synthetic.yaml method.clip_len=8 optim.batch_size=2 \\
        optim.epochs=150 optim.lr=0.001 data.image_size=112 data.augment.rotation=45 optim.amp=off \
        optim.channels_last=false                                                   # MDHR: 43.1 vs 40.2
    python benchmarks/check_learns_on_tiny.py configs/piap-df_synthetic.yaml method.variant=baseline \\
        data.image_size=48 optim.epochs=6 optim.steps_per_epoch=100 optim.batch_size=16 optim.lr=0.002 \\
        "method.stage_epochs={pi1: 1, pi2: 1, person: 1, main: 6, df: 1}"          # PIAP baseline: 44.7 vs 40.2
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from auspread.engine.config import load_config
from auspread.engine.run import evaluate_run, run_training
from auspread.evaluation.metrics import all_positive_f1


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = tempfile.mkdtemp(prefix="learns-on-tiny-")
    cfg = load_config(Path(sys.argv[1]), ["data.synth_preset=tiny", "data.labels=100%", "data.val_fraction=0",
                                          "threads=1", *sys.argv[2:], f"out_dir={out}"])
    s = run_training(cfg, progress=False)
    r = evaluate_run(s.run_dir, split="train", progress=False)
    y = np.load(r.out_dir / "train_predictions.npz")["labels"]
    trivial = all_positive_f1(y, r.scores.aus).mean_f1
    print(f"{cfg.method.name}: F1 on the training subjects {100 * r.scores.mean_f1:.1f} | all-positive predictor "
          f"{100 * trivial:.1f} | {s.steps} steps in {s.seconds / 60:.1f} min | run {s.run_dir}")


if __name__ == "__main__":
    main()
