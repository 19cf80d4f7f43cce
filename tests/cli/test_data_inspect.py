import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from auspread.cli import app

# frames (BP4D CSV numbers) and AU1, AU2 codes per video; every other AU column is 0, uncoded columns 9
VIDEOS = {("F001", "T1"): [(2440, 1, 0), (2441, 1, 9), (2442, 0, 0)], ("F007", "T2"): [(5, 0, 1), (6, 0, 1)]}


def _bp4d(root: Path) -> None:
    csv_dir = root / "AUCoding" / "AU_OCC"
    csv_dir.mkdir(parents=True)
    for (s, t), rows in VIDEOS.items():
        lines = [",".join(map(str, range(100)))]
        for f, au1, au2 in rows:
            cells = [9] * 100
            cells[0], cells[1], cells[2] = f, au1, au2
            for a in (4, 6, 7, 10, 12, 14, 15, 17, 23, 24):
                cells[a] = 0
            lines.append(",".join(map(str, cells)))
        (csv_dir / f"{s}_{t}.csv").write_text("\n".join(lines) + "\n")
        d = root / "Sequences(2D+3D)" / s / t
        d.mkdir(parents=True)
        for f, *_ in rows:
            Image.new("RGB", (8, 8)).save(d / f"{f:04d}.jpg")


def test_inspect_json(tmp_path):
    _bp4d(tmp_path)
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["dataset"] == "BP4D" and rep["subjects"] == 2 and rep["videos"] == 2 and rep["frames"] == 5
    assert rep["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    assert rep["base_rates"]["AU1"] == 0.4 and rep["base_rates"]["AU2"] == 0.5  # AU2: one 9 → 2 of 4 known
    assert rep["per_au"][1] == {"au": 2, "known": 4, "positive": 2, "base_rate": 0.5}
    assert rep["labelled_frames"] == 5 and rep["unknown_cells"] == 1 and rep["unlabelled_frames"] == 0
    assert rep["fold_source"] == "standard"
    assert rep["subject_folds"]["F001"] == {"part": 1, "test_fold": 3, "videos": 1, "frames": 3}
    assert rep["subject_folds"]["F007"]["part"] == 3 and rep["subject_folds"]["F007"]["test_fold"] == 1


def test_inspect_table_and_options(tmp_path):
    _bp4d(tmp_path)
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path), "--dataset", "bp4d", "-o", "aus=[1,2]"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "dataset   BP4D" in out and "subjects  2   videos 2   frames 5" in out
    assert "AU1            5         2      0.400" in out and "AU4" not in out
    assert "part1 (fold 3 test): F001" in out and "part3 (fold 1 test): F007" in out


def test_inspect_bad_input_one_line_no_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "empty")])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'empty'}: is an empty folder"
    _bp4d(tmp_path / "d")
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "d"), "-o", "colour=blue"])
    assert res.exit_code == 2 and "colour" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_entry_point_subprocess(tmp_path):
    csv = tmp_path / "AUCoding" / "AU_OCC"
    csv.mkdir(parents=True)
    (csv / "F001_T1.csv").write_text("0,1,2\n1,x,0\n")
    (tmp_path / "F001" / "T1").mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "auspread", "data", "inspect", str(tmp_path), "--json", "-o", "aus=[1,2]"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "F001_T1.csv: non-numeric cell 'x' at line 2" in res.stderr


def test_inspect_user_folds_file(tmp_path):
    _bp4d(tmp_path / "d")
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"part1": ["F007"], "part2": [], "part3": ["F001"]}))
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "d"), "--json", "--folds", str(folds)])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["fold_source"] == "file"
    assert rep["subject_folds"]["F001"]["part"] == 3 and rep["subject_folds"]["F007"]["test_fold"] == 3


def _disfa(root: Path, lines: int, frames: int) -> None:
    d = root / "ActionUnit_Labels" / "SN001"
    d.mkdir(parents=True)
    for a in (1, 2, 4, 6, 9, 12, 25, 26):
        (d / f"SN001_au{a}.txt").write_text("".join(f"{i + 1},{i % 4}\n" for i in range(lines)))
    (root / "Videos_LeftCamera").mkdir()
    with av.open(str(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"), "w") as c:
        s = c.add_stream("mpeg4", rate=20)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _unknown(root):
    (root / "notes").mkdir(parents=True)


def _missing_label(root):
    _disfa(root, 4, 4)
    (root / "ActionUnit_Labels" / "SN001" / "SN001_au9.txt").unlink()


def _mismatch(root):
    _disfa(root, 4, 6)


def _bad_cell(root):
    _bp4d(root)
    csv = root / "AUCoding" / "AU_OCC" / "F007_T2.csv"
    csv.write_text(csv.read_text().replace("\n6,0,1,", "\n6,0,?,"))


@pytest.mark.parametrize("make,file,problem", [
    (_unknown, "", "unknown dataset layout"),
    (_missing_label, "SN001_au9.txt", "missing label file for AU9 of SN001"),
    (_mismatch, "LeftVideoSN001_comp.avi: has 6 frames but", "SN001_au1.txt has 4 label lines"),
    (_bad_cell, "F007_T2.csv", "non-numeric cell '?' at line 3, column '2' (AU2)"),
])
def test_bad_input_through_cli(tmp_path, make, file, problem):
    make(tmp_path)
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path), "--json"])
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and problem in lines[0] and file in lines[0]
    assert "Traceback" not in res.output
