"""The two commands through the real entry point: output, exit codes, one-line errors."""

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_runner import run_cli  # noqa: E402

from auspread.labelling.manifest import LabelManifest  # noqa: E402


def test_suggest_labels_command(clips, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    code, err = run_cli(["suggest-labels", clips["long"], clips["short"], "--budget", "3", "--out", out,
                         "--no-detect", "--aus", "1,12", "--no-progress"], capsys)
    assert code == 0, err
    assert "3 frames suggested" in err and f"next: auspread label {out}" in err
    m = LabelManifest.read(out)
    assert m.aus == [1, 12] and len(m.frame_rows()) == 3
    code, err = run_cli(["suggest-labels", clips["short"], "--budget", "3", "--out", out, "--no-detect"], capsys)
    assert code == 2 and "already exists" in err and str(out) in err


def test_label_command_errors(tmp_path, capsys):
    code, err = run_cli(["label", tmp_path / "missing.csv", "--no-browser"], capsys)
    assert code == 2 and "no such manifest" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("source,subject,frame,AU01\nv.mp4,anna,1,maybe\n")
    code, err = run_cli(["label", bad, "--no-browser"], capsys)
    assert code == 2 and "bad.csv" in err and "'maybe' must be 1, 0 or empty" in err
    ok = tmp_path / "ok.csv"
    ok.write_text("source,subject,frame,AU01\nv.mp4,anna,1,\n")
    code, err = run_cli(["label", ok, "--aus", "1,x", "--no-browser"], capsys)
    assert code == 2 and "--aus" in err
    with socket.socket() as s:  # a port in use
        s.bind(("127.0.0.1", 0))
        s.listen()
        code, err = run_cli(["label", ok, "--port", s.getsockname()[1], "--no-browser"], capsys)
    assert code == 2 and "choose another --port" in err
