"""The per-branch readouts of ``benchmarks/diag_ks_readout.py`` (the tool behind the KS diagnoses in
docs/BENCHMARKS.md): the ensemble readout is the method's own prediction, and each branch readout is that branch
computed by hand on a tiny Knowledge-Spreader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from auspread.methods.base import DatasetInfo
from auspread.methods.ks import KnowledgeSpreader, KSOptions

SIZE, U = 32, 3
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "diag_ks_readout.py"


def _readouts_module():
    spec = importlib.util.spec_from_file_location("diag_ks_readout", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("students", ["shared", "per_position"])
def test_branch_readouts_match_the_method_and_the_branches_by_hand(students):
    torch.manual_seed(0)
    info = DatasetInfo("synthetic", tuple(range(1, U + 1)), torch.linspace(0.5, 2.0, U), 2, SIZE, 25.0)
    method = KnowledgeSpreader(KSOptions(clip_len=3, width=16, heads=4, depth=1, student_hidden=32, students=students),
                               info).eval()
    frames = torch.randn(7, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    r = _readouts_module().video_readouts(method, iter(frames.split(3)), 7)
    assert set(r) == {"ensemble", "S_a", "T_b", "S_b"}
    with torch.no_grad():
        torch.testing.assert_close(r["ensemble"], method.predict_video(iter(frames.split(4)), 7), rtol=1e-4, atol=1e-5)
        net = method.net
        sa = torch.sigmoid(net.spatial_head(net.features_a(frames)))
        feats = net.features_b(frames)
        per_student = [torch.sigmoid(net.students[j](feats)[1]) for j in range(len(net.students))]
    assert len(per_student) == (1 if students == "shared" else 3)
    torch.testing.assert_close(r["S_a"], sa, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r["S_b"], torch.stack(per_student).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r["ensemble"], 0.5 * (r["S_a"] + r["T_b"]), rtol=1e-5, atol=1e-6)


def test_val_thresholds_are_chosen_on_val_and_applied_unchanged():
    import numpy as np

    mod = _readouts_module()
    # AU 0: on val the best cut is 0.3 (0.3 and 0.9 present, F1 1); AU 1 has no val positive: keeps 0.5
    val_p = np.array([[0.3, 0.7], [0.9, 0.2], [0.1, 0.6]])
    val_y = np.array([[1, 0], [1, 0], [0, -1]])
    p = np.array([[0.35, 0.55], [0.25, 0.45], [0.8, 0.9]])
    y = np.array([[1, 1], [1, 0], [0, 1]])
    r = mod.val_threshold_f1(val_p, val_y, p, y)
    assert r["val_thresholds"] == [0.3, 0.5]
    # AU 0 at 0.3: 0.35 (+) and 0.8 (-) present, 0.25 (+) missed: F1 2/4; AU 1 at 0.5: 0.55 and 0.9 present: F1 1
    assert r["per_au_f1_val_thresholds"] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert r["f1_val_thresholds"] == pytest.approx(0.75)
