"""``auspread train / eval / cv`` through the command line entry point (in-process, tiny synthetic data)."""

import json
import sys

import numpy as np
import pytest

from auspread.cli import main
from auspread.engine.checkpoint import load_checkpoint, save_checkpoint
from auspread.evaluation.metrics import au_scores

FAST = ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=1", "optim.batch_size=8",
        "optim.steps_per_epoch=2", "threads=1"]


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["auspread", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args, message", [
    (["data.dataset=bp4d", "data.root=/nonexistent/BP4D"], "/nonexistent/BP4D: dataset root does not exist"),
    (["data.dataset=disfa"], "data.dataset=disfa needs data.root="),
    (["method.name=no-such-method"], "unknown method 'no-such-method'"),
    (["optim.lr=abc"], "optim.lr"),
    (["nonexistent.key=1"], "nonexistent"),
    (["optim.lr"], "bad override 'optim.lr'"),
    (["--pretrained", "/nonexistent/r18.pth"], "/nonexistent/r18.pth: pretrained weights file not found"),
])
def test_clear_one_line_errors(monkeypatch, capsys, tmp_path, args, message):
    code, out, err = run_cli(monkeypatch, capsys, "train", f"out_dir={tmp_path}", *args)
    assert code == 2
    assert message in err and err.startswith("error: ")
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # no run folder left behind


def test_eval_and_resume_refuse_a_folder_that_is_not_a_run(monkeypatch, capsys, tmp_path):
    (tmp_path / "x").mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(tmp_path / "x"))
    assert code == 2 and "not a run folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "train", "--resume", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
def test_train_then_eval_then_cv(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "train", "-q", f"out_dir={tmp_path}", "name=r1", *FAST)
    assert code == 0, err
    run = tmp_path / "r1"
    assert out.strip().splitlines()[-1] == str(run)  # the run folder is printed last
    assert "mean" in out and "AU12" in out
    for f in ["config.yaml", "data.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt",
              "results/test_f1.md", "results/test_f1.csv", "results/test_f1.png", "results/test_predictions.csv",
              "results/test_predictions.npz", "results/summary.json"]:
        assert (run / f).is_file(), f
    assert any((run / "tb").iterdir())
    summary = json.loads((run / "results" / "summary.json").read_text())
    assert out.startswith("config: started from ks_synthetic (the README main job's method)")
    assert summary["started_from"] == "ks_synthetic" and "started_from: ks_synthetic" in (run / "config.yaml").read_text()

    # per-AU thresholds chosen on the validation subjects: in best.pt and thresholds.json, the test F1 at them
    # recomputed from the saved test predictions, printed beside the protocol's 0.5
    th = json.loads((run / "results" / "thresholds.json").read_text())
    assert th["source"].startswith("validation subjects ") and len(th["values"]) == 12
    assert load_checkpoint(run / "checkpoints" / "best.pt")["thresholds"]["values"] == th["values"]
    npz = np.load(run / "results" / "test_predictions.npz")
    at = au_scores(npz["probs"], npz["labels"], tuple(npz["aus"]), np.array(th["values"]))
    assert summary["test_f1_val_thresholds"] == pytest.approx(at.mean_f1, abs=1e-9)
    assert f"test mean F1 {100 * at.mean_f1:.1f} (results/thresholds.json)" in out

    code, out, err = run_cli(monkeypatch, capsys, "eval", "-q", str(run))
    assert code == 0, err
    again = json.loads((run / "results" / "test_scores.json").read_text())
    assert again["mean_f1"] == pytest.approx(summary["test_f1"], abs=1e-9)  # rebuilt from best.pt alone
    assert again["mean_f1_at_val_thresholds"] == pytest.approx(at.mean_f1, abs=1e-9)
    assert f"chosen on the validation subjects: {100 * at.mean_f1:.1f}" in out

    # a run trained before runs chose thresholds gets the same ones from `auspread calibrate`
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    save_checkpoint(run / "checkpoints" / "best.pt", {k: v for k, v in state.items() if k != "thresholds"})
    (run / "results" / "thresholds.json").unlink()
    code, out, err = run_cli(monkeypatch, capsys, "calibrate", "-q", str(run))
    assert code == 0, err
    assert json.loads((run / "results" / "thresholds.json").read_text())["values"] == th["values"]
    assert load_checkpoint(run / "checkpoints" / "best.pt")["thresholds"]["values"] == th["values"]
    assert f"test mean F1 {100 * at.mean_f1:.1f} at them, {100 * summary['test_f1']:.1f} at the protocol's 0.5" in out
    code, out, err = run_cli(monkeypatch, capsys, "eval", "-q", str(run), "--split", "val", "--data", "image_size=32")
    assert code == 0, err
    assert out.strip().splitlines()[-1].endswith("eval-image_size-32")

    code, out, err = run_cli(monkeypatch, capsys, "train", "--resume", str(run))
    assert code == 2 and "already finished" in err

    # selecting on the test fold is possible, but only as an explicit, labelled choice
    code, out, err = run_cli(monkeypatch, capsys, "train", "-q", f"out_dir={tmp_path}", "name=r2", "data.select_on=test", *FAST)
    assert code == 0, err
    assert "ON THE TEST FOLD" in (tmp_path / "r2" / "results" / "test_f1.md").read_text()
    assert not (tmp_path / "r2" / "results" / "thresholds.json").exists()  # never thresholds chosen on test people
    assert "selected on test" in out
    code, out, err = run_cli(monkeypatch, capsys, "calibrate", "-q", str(tmp_path / "r2"))
    assert code == 2 and "no honest place to choose thresholds" in err
    assert "validation subjects carved from the training subjects" in (run / "results" / "test_f1.md").read_text()

    code, out, err = run_cli(monkeypatch, capsys, "cv", "-q", f"out_dir={tmp_path}", "name=cv", "--folds", "1,2", *FAST)
    assert code == 0, err
    table = (tmp_path / "cv" / "cv.csv").read_text().splitlines()
    assert [l.split(",")[0] for l in table[1:]] == ["fold 1", "fold 2", "mean"]
    assert (tmp_path / "cv" / "cv.md").is_file() and (tmp_path / "cv" / "fold2" / "results" / "test_f1.md").is_file()


def test_main_job_defaults_match_the_documented_config():
    from pathlib import Path

    from auspread.cli.train import _main_job_defaults
    from auspread.engine.config import load_config

    repo = Path(__file__).resolve().parents[2]
    main_job = load_config(None, base=_main_job_defaults())
    assert main_job == load_config(repo / "configs" / "ks_synthetic.yaml")
    assert main_job.method.name == "ks" and main_job.data.synth_preset == "wide"
    # from torchvision's ImageNet MobileNetV2, which can be had offline (the wheel route of models/backbones.py)
    assert main_job.method.backbone == "mobilenet_v2" and main_job.pretrained == "imagenet"
    assert main_job.data.labels.every == 20  # Knowledge-Spreader at 5% labels (issue 4 item 8, issue 5)
