"""`auspread prepare` through the real entry point."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces"))

from faces_fakes import synth_tree  # noqa: E402
from cli_runner import run_cli  # noqa: E402

from auspread.data.readers import read_dataset  # noqa: E402


def test_prepare_synthetic_tree(tmp_path, capsys):
    raw = synth_tree(tmp_path / "raw", frames=8)
    code, err = run_cli(["prepare", raw, tmp_path / "out", "--dataset", "bp4d", "--size", "48", "--no-progress"],
                        capsys)
    assert code == 0, err
    assert "0 without a face" in err
    rep = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert rep["aligned_input"] and rep["videos_done"] == rep["videos"] == 2
    assert read_dataset("bp4d", tmp_path / "out").num_frames == read_dataset("bp4d", raw).num_frames
    # rerun: everything is skipped, same report
    code, err = run_cli(["prepare", raw, tmp_path / "out", "--dataset", "auto", "--size", "48", "--no-progress"],
                        capsys)
    assert code == 0, err


@pytest.mark.parametrize("args,match", [
    (["--dataset", "bp4d"], "does not exist|not found|no such"),
    (["--dataset", "nonsense"], "unknown dataset"),
])
def test_prepare_bad_input_one_message(tmp_path, capsys, args, match):
    import re

    code, err = run_cli(["prepare", tmp_path / "missing", tmp_path / "out", *args, "--no-progress"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.search(match, lines[0], re.IGNORECASE), err


def test_prepare_landmarks_option_errors(tmp_path, capsys, monkeypatch):
    raw = synth_tree(tmp_path / "raw", frames=8)
    code, err = run_cli(["prepare", raw, tmp_path / "out", "--landmarks", "dlib", "--no-progress"], capsys)
    assert code != 0 and "'dataset' or 'mediapipe'" in err
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # the optional extra not installed
    code, err = run_cli(["prepare", raw, tmp_path / "out", "--landmarks", "mediapipe", "--no-progress"], capsys)
    assert code != 0 and 'pip install "auspread[landmarks]"' in err
    assert not (tmp_path / "out" / "img").exists()  # refused before any work
