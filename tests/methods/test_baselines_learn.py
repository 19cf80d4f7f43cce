"""Each semi-supervised baseline, trained by the engine on the synthetic `tiny` preset, beats the trivial predictors.

As in ``test_supervised.py``: F1 is measured on the training subjects (every frame, true labels), against the
all-positive predictor (2r/(1+r) per AU) and the all-negative one (F1 0) on the same frames. The tiny preset has
4 training subjects, too few to expect transfer to new subjects: this checks that each recipe learns through the
engine and the data pipeline (unlabelled batches, strong views, clips), not the paper's numbers.
"""

import numpy as np
import pytest

from auspread.engine.config import load_config
from auspread.evaluation.metrics import au_scores
from auspread.evaluation.ranking import roc_auc

COMMON = ["data.synth_preset=tiny", "data.image_size=32", "data.val_fraction=0", "data.labels=100%",
          "optim.batch_size=16", "optim.optimizer=adamw", "optim.lr=0.001", "optim.weight_decay=0.0", "threads=1",
          "method.class_weights=false"]

CASES = {
    "pseudo-label": ["method.unlabelled_ratio=1", "method.confidence=0.9", "method.ramp_start=0.5", "method.ramp_end=0.75",
                     "optim.epochs=6", "optim.lr=0.002"],
    "fixmatch": ["method.unlabelled_ratio=1", "method.confidence=0.9", "optim.epochs=6", "optim.lr=0.002"],
    # TCL with all three stages (supervised, contrastive, self-training) on 16 clips of 4 frames per step. The
    # contrastive weights are 0.1 instead of the README's γ = 9 / 1: on `tiny` those pull against the supervised
    # loss and the model ends below the all-positive predictor (docs/methods/tcl.md, "Measured behaviour").
    "tcl": ["method.clip_len=4", "method.unlabelled_ratio=1", "method.gamma=0.1", "method.group_weight=0.1",
            "optim.epochs=16", "optim.lr=0.002"],
}
# log keys that prove each stage of a method ran (its unlabelled-data terms were in the loss)
STAGE_LOGS = {"pseudo-label": ["loss_u"], "fixmatch": ["loss_u"], "tcl": ["loss_ic", "loss_gc", "loss_pl"]}

# Measured with these settings (train-subject F1; all-positive predictor 40.2): pseudo-label 51.1, fixmatch 44.2,
# supervised frame model 51.1, tcl 46.6 (its supervised stage alone, same steps: 44.4). Short tiny runs move by
# several points when the data pipeline changes. TCL's F1 at 0.5 is the least stable: float rounding alone moves it
# (session 19, the fused AdamW kernel against the for-loop one, the same update to 1e-8 per step): seeds 0 / 1 / 2
# scored 40.7 / 43.4 / 59.9 fused and 47.4 / 45.6 / - unfused, while its ranking stayed at mean ROC-AUC 0.91-0.95
# in every run. So its F1 need only beat the all-positive predictor; ROC-AUC (every method) carries "it learns".
MARGIN = {"pseudo-label": 0.05, "fixmatch": 0.01, "tcl": 0.0}
MIN_ROC_AUC = 0.8  # mean over AUs on the training subjects' frames; 0.5 = no ranking


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_baseline_learns_on_tiny_synthetic(name, tmp_path):
    from auspread.engine.run import evaluate_run, run_training

    cfg = load_config(None, [f"method.name={name}", *COMMON, *CASES[name], f"out_dir={tmp_path}"])
    s = run_training(cfg, progress=False)
    losses = [h["loss"] for h in s.history if "loss" in h]
    assert np.isfinite(losses).all()
    logged = set().union(*(h.keys() for h in s.history))
    assert set(STAGE_LOGS[name]) <= logged, (name, sorted(logged))
    r = evaluate_run(s.run_dir, split="train", progress=False)
    saved = np.load(r.out_dir / "train_predictions.npz")
    y = saved["labels"]
    auc = np.nanmean([roc_auc(saved["probs"][:, j], y[:, j]) for j in range(y.shape[1])])
    assert auc >= MIN_ROC_AUC, (name, auc)
    trivial_pos = au_scores(np.ones(y.shape), y, r.scores.aus).mean_f1
    assert au_scores(np.zeros(y.shape), y, r.scores.aus).mean_f1 == 0.0
    assert r.scores.mean_f1 > trivial_pos + MARGIN[name], (name, r.scores.mean_f1, trivial_pos)
