"""Resume on the real pipeline (synthetic `tiny`): a run killed in epoch 2 and resumed with ``resume=RUN`` ends
bit-identical to an uninterrupted run (CPU, same seed)."""

import json

import numpy as np
import pytest
import torch

from auspread.engine.checkpoint import load_checkpoint
from auspread.engine.config import load_config
from auspread.engine.loop import TrainHooks
from auspread.engine.run import run_training

FAST = ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=2", "optim.batch_size=8",
        "optim.steps_per_epoch=3", "optim.ema=0.5", "method.dropout=0.2", "threads=1"]


class Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_then_resumed_equals_uninterrupted(tmp_path):
    full = run_training(load_config(None, [*FAST, f"out_dir={tmp_path}", "name=full"]), progress=False)

    def kill(step):
        if step == 5:  # second step of epoch 2
            raise Killed

    with pytest.raises(Killed):
        run_training(load_config(None, [*FAST, f"out_dir={tmp_path}", "name=killed"]), progress=False,
                     hooks=TrainHooks(after_step=kill))
    run = tmp_path / "killed"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (run / "results").exists()
    torch.manual_seed(12345)  # the resumed process starts from a different RNG state: the checkpoint restores it
    np.random.seed(999)
    resumed = run_training(load_config(None, ["optim.lr=123"]), progress=False, resume=run)  # cfg comes from RUN
    assert resumed.run_dir == run and resumed.epochs == 2 and resumed.steps == 6

    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert resumed.test_f1 == full.test_f1 and resumed.best_epoch == full.best_epoch
    pa = np.load(tmp_path / "full" / "results" / "test_predictions.npz")["probs"]
    pb = np.load(run / "results" / "test_predictions.npz")["probs"]
    assert np.array_equal(pa, pb)
    # the validation thresholds too, whether the resumed process validated the selected epoch itself or (best epoch
    # before the kill) had to predict the validation subjects again
    ta = json.loads((tmp_path / "full" / "results" / "thresholds.json").read_text())["values"]
    assert json.loads((run / "results" / "thresholds.json").read_text())["values"] == ta
