"""`auspread predict` end to end, in-process through the real entry point (auspread.cli.main)."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))

from faces_fakes import composite, synth_faces, synth_tree, write_video  # noqa: E402
from cli_runner import run_cli  # noqa: E402
from predict_fakes import save_tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    faces, _ = synth_faces(synth_tree(d / "synth"))
    run = save_tiny_run(d / "run")
    present = [True, True, False, True, True]
    write_video(d / "face.mp4", composite(faces, present))
    return d, run, present, faces


def test_predict_writes_table_sidecar_plot_overlay(setup, tmp_path, capsys):
    d, run, present, _ = setup
    code, err = run_cli(["predict", d / "face.mp4", "--model", run, "--out", tmp_path, "--plot",
                         "--overlay", tmp_path / "ov.mp4", "--no-progress", "--batch-size", "2"], capsys)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "face.csv")
    assert df["frame"].tolist() == [1, 2, 3, 4, 5] and df["success"].tolist() == [int(p) for p in present]
    assert [c for c in df.columns if c.endswith("_c")] == ["AU01_c", "AU02_c", "AU04_c", "AU06_c", "AU12_c"]
    side = json.loads((tmp_path / "face.json").read_text())
    assert side["model"]["method"] == "tiny_predict_test" and side["model"]["run"] == str(run.resolve())
    assert side["frames"] == 5 and side["frames_with_face"] == 4 and side["error"] is None
    assert side["precision"]["compiled"] == "off"  # compile=auto: a 5-frame video is not worth a compile
    assert side["precision"]["quantized"] == "off"  # quantize=auto: nor an int8 calibration
    assert side["model_threads"]  # the AU model's threads and why (auspread.predict.threads)
    assert (tmp_path / "face_timeline.png").stat().st_size > 1000
    assert (tmp_path / "ov.mp4").stat().st_size > 1000
    assert "1 of 1 inputs done" in err


def test_folder_with_bad_files_reports_and_continues(setup, tmp_path, capsys):
    d, run, present, _ = setup
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes((d / "face.mp4").read_bytes())
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("hello, I am not a video\n")
    code, err = run_cli(["predict", folder, "--model", run, "--out", tmp_path / "out", "--no-progress",
                         "--no-detect"], capsys)
    assert code == 2
    assert "1 of 3 inputs done" in err
    assert "zero.mp4: FAILED" in err and "empty file" in err
    assert "text.mp4: FAILED" in err and "not a readable video" in err
    assert len(pd.read_csv(tmp_path / "out" / "good.csv")) == 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.csv", "good.json"]


def test_truncated_video_rows_and_nonzero_exit(setup, tmp_path, capsys):
    d, run, _, faces = setup
    write_video(tmp_path / "long.mp4", np.concatenate([faces] * 3), faststart=True)
    data = (tmp_path / "long.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    code, err = run_cli(["predict", tmp_path / "cut.mp4", "--model", run, "--out", tmp_path / "o", "--no-progress",
                         "--no-detect"], capsys)
    assert code == 2 and "INCOMPLETE" in err and "cut.mp4" in err
    df = pd.read_csv(tmp_path / "o" / "cut.csv")
    assert 3 < len(df) < 36 and df["frame"].tolist() == list(range(1, len(df) + 1))
    assert json.loads((tmp_path / "o" / "cut.json").read_text())["error"]


@pytest.mark.parametrize("what,match", [
    ("empty_folder", "contains no video or image files"),
    ("not_a_run", "not a run folder"),
    ("missing_model", "no such run folder or checkpoint"),
    ("bad_checkpoint", "not a readable checkpoint"),
    ("bad_compile", "--compile must be auto, on or off"),
    ("bad_quantize", "--quantize must be auto, int8 or off"),
    ("bad_threshold", "--threshold must be auto, val or a number in [0, 1], got 'high'"),
    ("threshold_out_of_range", "--threshold must lie in [0, 1], got 1.5"),
    ("no_val_thresholds", "has no validation thresholds (trained before runs chose them): run `auspread calibrate"),
])
def test_one_clear_message(setup, tmp_path, capsys, what, match):
    d, run, _, _ = setup
    inp, model = d / "face.mp4", run
    if what == "empty_folder":
        inp = tmp_path / "empty"
        inp.mkdir()
    elif what == "not_a_run":
        model = tmp_path / "somefolder"
        model.mkdir()
    elif what == "missing_model":
        model = tmp_path / "nope"
    elif what == "bad_checkpoint":
        model = tmp_path / "x.pt"
        model.write_text("not a checkpoint")
    extra = {"bad_compile": ["--compile", "yes"], "bad_quantize": ["--quantize", "int4"],
             "bad_threshold": ["--threshold", "high"], "threshold_out_of_range": ["--threshold", "1.5"],
             "no_val_thresholds": ["--threshold", "val"]}.get(what, [])
    code, err = run_cli(["predict", inp, "--model", model, "--out", tmp_path / "o", "--no-progress", *extra], capsys)
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert not (tmp_path / "o").exists()


def test_all_faces_and_detect_every(setup, tmp_path, capsys):
    d, run, _, faces = setup
    video = composite(faces[:3], [True] * 3, xy=(190, 40), second=faces[5:8], second_xy=(10, 20))
    write_video(tmp_path / "two.mp4", video)
    code, err = run_cli(["predict", tmp_path / "two.mp4", "--model", run, "--out", tmp_path, "--all-faces",
                         "--detect-every", "2", "--no-progress"], capsys)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "two.csv")
    assert list(df.columns[:3]) == ["frame", "face_id", "timestamp"]
    assert df["frame"].tolist() == [1, 1, 2, 2, 3, 3] and df["face_id"].tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.slow
def test_predict_with_a_real_trained_run(setup, tmp_path, capsys):
    """A run folder written by the engine (`auspread train` internals: 1 epoch, 2 steps on the tiny synthetic
    preset) is accepted by --model, rebuilt from its checkpoint alone, and recorded in the sidecar."""
    from auspread.engine.config import load_config
    from auspread.engine.run import run_training

    d, _, present, _ = setup
    cfg = load_config(None, ["method.name=supervised", "data.synth_preset=tiny", "data.image_size=32",
                             "optim.epochs=1", "optim.batch_size=4", "optim.steps_per_epoch=2", "threads=1",
                             f"out_dir={tmp_path / 'runs'}", "name=tiny"])
    run = run_training(cfg, progress=False).run_dir
    code, err = run_cli(["predict", d / "face.mp4", "--model", run, "--out", tmp_path / "o", "--no-progress", "--plot",
                         "--overlay", tmp_path / "ov.mp4"], capsys)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "o" / "face.csv")
    assert df["success"].tolist() == [int(p) for p in present]
    assert [c for c in df.columns if c.endswith("_p")] == [f"AU{a:02d}_p" for a in (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)]
    p = df.loc[df["success"] == 1, "AU01_p"]
    assert ((p >= 0) & (p <= 1)).all()
    side = json.loads((tmp_path / "o" / "face.json").read_text())
    assert side["model"]["method"] == "supervised" and side["model"]["checkpoint"].endswith("best.pt")
    # the run chose per-AU thresholds on its validation subjects; predict uses them by default and says so
    th = json.loads((run / "results" / "thresholds.json").read_text())["values"]
    assert side["thresholds"].startswith("per AU, chosen on the validation subjects")
    assert side["options"]["threshold"] == th
    code, err = run_cli(["predict", d / "face.mp4", "--model", run, "--out", tmp_path / "h", "--no-progress",
                         "--threshold", "0.5"], capsys)
    assert code == 0, err
    half = pd.read_csv(tmp_path / "h" / "face.csv")
    codes = [c[:-2] for c in half.columns if c.endswith("_p")]
    ok = half["success"] == 1
    for c, t in zip(codes, th):  # the same probabilities; only the occurrence cut differs
        assert (half.loc[ok, f"{c}_c"] == (half.loc[ok, f"{c}_p"] >= 0.5)).all()
        differs = (df.loc[ok, f"{c}_p"] - t).abs() > 1e-4  # away from the CSV's 4-decimal rounding
        assert (df.loc[ok & differs, f"{c}_c"] == (df.loc[ok & differs, f"{c}_p"] >= t)).all()
    assert json.loads((tmp_path / "h" / "face.json").read_text())["thresholds"] == "0.5 for every AU (--threshold)"


def test_folder_of_frames_with_a_corrupt_image(setup, tmp_path, capsys):
    from PIL import Image

    _, run, _, faces = setup
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(composite(faces[:4], [True, True, False, True])):
        Image.fromarray(img).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(b"\x89PNG broken")
    code, err = run_cli(["predict", folder, "--model", run, "--out", tmp_path / "o", "--no-progress"], capsys)
    assert code == 2 and "INCOMPLETE" in err and "2.png" in err
    df = pd.read_csv(tmp_path / "o" / "frames.csv")
    assert df["frame"].tolist() == [1, 2, 3, 4] and df["success"].tolist() == [1, 1, 0, 1]
