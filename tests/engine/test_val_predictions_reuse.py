"""The thresholds fit at the end of training reuses the best epoch's validation predictions instead of predicting
the validation subjects a second time (engine/run.py ``_BestValPredictions``)."""

import json
import math

import pytest

import auspread.engine.run as R
from auspread.engine.config import load_config
from auspread.engine.run import _BestValPredictions, calibrate_run, run_training


def test_keeps_the_first_strictly_best_finite_validation():
    kept = _BestValPredictions()
    assert not kept.holds(None) and not kept.holds(0.5)
    for f1, preds in [(0.3, "a"), (math.nan, "nan"), (0.5, "b"), (0.5, "tie"), (0.4, "c")]:
        kept.offer(f1, preds)
    assert kept.holds(0.5) and kept.predictions == "b"  # the trainer's rule: a tie does not replace the best epoch
    assert not kept.holds(0.6)  # the selected epoch was validated elsewhere (before a resume): predict again
    kept.offer(0.7, None)  # a rank > 0 holds no predictions but agrees on the decision
    assert kept.holds(0.7) and kept.predictions is None


@pytest.mark.slow
def test_training_predicts_validation_once_per_validation(tmp_path, monkeypatch):
    calls = []
    real = R.evaluate_split

    def counting(method, store, index, *a, **k):
        calls.append(len(index.videos))
        return real(method, store, index, *a, **k)

    monkeypatch.setattr(R, "evaluate_split", counting)
    cfg = load_config(None, ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=2", "optim.batch_size=8",
                             "optim.steps_per_epoch=2", "eval_every=1", "threads=1", f"out_dir={tmp_path}", "name=r"])
    s = run_training(cfg, progress=False)
    assert s.selected_on == "val" and s.test_f1_val_thresholds is not None
    assert len(calls) == 2 + 1  # two validations, one test pass; no third pass over the validation subjects
    # the same thresholds as predicting the validation subjects again from best.pt (what `auspread calibrate` does)
    th = json.loads((tmp_path / "r" / "results" / "thresholds.json").read_text())["values"]
    monkeypatch.setattr(R, "evaluate_split", real)
    assert list(calibrate_run(tmp_path / "r", progress=False).thresholds.values) == th
