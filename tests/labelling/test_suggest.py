"""Frame selection: budget split, k-center key frames, guided choice, and `suggest-labels` end to end on synthetic
face videos (fake detector)."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auspread.data.readers import read_dataset
from auspread.errors import DataError
from auspread.labelling.manifest import LabelManifest
from auspread.labelling.plan import suggest_labels
from auspread.labelling.suggest import Candidates, allocate, select, spaced_capacity, uncertainty


def cands(n=200, fps=10.0, face=None, seed=0, dim=8):
    rng = np.random.default_rng(seed)
    frames = np.arange(0, n * 2, 2)
    return Candidates(frames, frames / fps, rng.normal(size=(n, dim)).astype(np.float32),
                      np.ones(n, bool) if face is None else np.asarray(face), int(frames[-1]) + 1, fps)


# --- budget ---------------------------------------------------------------------------------------------------
def test_allocate_in_proportion_to_length():
    assert allocate([100, 300], 8, [50, 50]) == [2, 6]
    assert allocate([100, 200, 100], 10, [50, 50, 50]) == [3, 5, 2]  # equal remainders: input order


def test_allocate_moves_what_a_capped_video_cannot_take():
    assert allocate([1000, 100], 20, [3, 50]) == [3, 17]
    assert allocate([10, 10], 100, [4, 5]) == [4, 5]  # the budget exceeds every video's capacity


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 40)), min_size=1, max_size=8), st.integers(0, 200))
def test_allocate_keeps_the_budget_and_the_caps(videos, budget):
    lengths, caps = zip(*videos)
    share = allocate(lengths, budget, caps)
    assert sum(share) == min(budget, sum(caps))
    assert all(0 <= s <= c for s, c in zip(share, caps))


def test_spaced_capacity():
    t = np.arange(0, 5, 0.25)  # 20 candidates over 5 s (exact in binary)
    assert spaced_capacity(t, 1.0, np.array([])) == 5
    assert spaced_capacity(t, 1.0, np.array([2.0])) == 4  # 0, 1, 3, 4: less than 1 s from 2.0 is blocked
    assert spaced_capacity(t, 1.0, np.array([0.5, 2.5])) == 3  # 1.5, 3.5, 4.5

# --- key frames (no model) ----------------------------------------------------------------------------------------
def test_key_frames_keep_the_budget_no_duplicates_and_the_gap():
    c = cands()
    picks = select(c, 12, seed=3)
    frames = [p.frame for p in picks]
    assert len(frames) == 12 and len(set(frames)) == 12
    t = np.sort(np.array(frames) / c.fps)
    assert np.diff(t).min() >= 1.0
    assert all(p.reason for p in picks)


def test_key_frames_only_on_frames_with_a_face():
    face = np.zeros(200, bool)
    face[::7] = True
    c = cands(face=face)
    picks = select(c, 50, seed=0)
    allowed = set(c.frames[face].tolist())
    assert picks and all(p.frame in allowed for p in picks)


def test_key_frames_are_deterministic_with_a_seed():
    c = cands()
    a = [p.frame for p in select(c, 10, seed=7)]
    assert a == [p.frame for p in select(c, 10, seed=7)]
    assert any([p.frame for p in select(c, 10, seed=s)] != a for s in range(1, 5))


def test_key_frames_spread_over_appearance():
    """Two expressions, one rare (10 of 200 frames): k-center covers it with 4 picks; a draw would miss it often."""
    c = cands(dim=2)
    rare = np.zeros(200, bool)
    rare[100:110] = True
    c.features[:] = 0
    c.features[rare] = 5.0
    for seed in range(5):
        picks = select(c, 4, seed=seed)
        assert any(p.frame in set(c.frames[rare].tolist()) for p in picks)


def test_labelled_frames_are_never_chosen_again_and_keep_their_distance():
    c = cands()
    labelled = [int(c.frames[i]) for i in (10, 80, 150)]
    picks = select(c, 30, labelled=labelled, seed=0)
    for p in picks:
        assert p.frame not in labelled
        assert min(abs(p.frame - f) for f in labelled) / c.fps >= 1.0


# --- guided -----------------------------------------------------------------------------------------------------
def test_uncertainty_is_one_at_the_threshold_and_zero_when_certain():
    p = np.array([[0.5, 0.5], [0.0, 1.0], [0.3, 0.3]])
    np.testing.assert_allclose(uncertainty(p), [1.0, 0.0, 0.6])
    np.testing.assert_allclose(uncertainty(np.array([[0.3]]), [0.3]), [1.0])
    np.testing.assert_allclose(uncertainty(np.array([[0.65]]), [0.3]), [0.5])


def test_guided_choice_prefers_uncertain_frames():
    c = cands()
    scores = np.full(200, 0.05)
    unsure = np.arange(5, 200, 20)  # 10 uncertain frames, 4 s apart
    scores[unsure] = 0.9
    picks = select(c, 6, scores=scores, seed=0)
    assert {p.frame for p in picks} <= set(c.frames[unsure].tolist())
    assert all("uncertainty 0.90" in p.reason for p in picks)


def test_guided_choice_prefers_frames_unlike_the_labelled_ones():
    """Equal uncertainty: the frame that looks different from the labelled one wins."""
    c = cands(dim=2)
    c.features[:] = 0
    c.features[150] = 4.0
    scores = np.full(200, 0.5)
    picks = select(c, 1, scores=scores, labelled=[int(c.frames[20])])
    assert picks[0].frame == int(c.frames[150])


# --- end to end (fake detector) ----------------------------------------------------------------------------------
def test_suggest_labels_writes_a_generic_manifest(clips, detector, tmp_path):
    out, reports = suggest_labels([str(clips["long"]), str(clips["short"])], 6, tmp_path / "m.csv",
                                  detector=detector, per_second=5)
    m = LabelManifest.read(out)
    rows = [r for r in m.rows if r["frame"]]
    assert len(rows) == 6
    per = {r.source: len(r.picked) for r in reports}
    assert per[os.path.relpath(clips["long"], tmp_path)] == 4  # 150 vs 75 frames: 4 + 2
    keys = [(r["source"], int(r["frame"])) for r in rows]
    assert len(set(keys)) == len(keys)
    present = clips["long_present"]
    for r in rows:
        assert all(r[f"AU{a:02d}"] == "" for a in m.aus) and r["reason"]
        if r["source"].endswith("long.mp4"):
            assert present[int(r["frame"])]
    idx = read_dataset("generic", out)  # the manifest is the generic reader's
    assert len(idx.videos) == 2 and (idx.videos[0].labels == -1).all()


def test_suggest_labels_is_deterministic(clips, detector, tmp_path):
    a, _ = suggest_labels([str(clips["long"])], 3, tmp_path / "a.csv", detector=detector, seed=1)
    b, _ = suggest_labels([str(clips["long"])], 3, tmp_path / "b.csv", detector=detector, seed=1)
    assert a.read_text() == b.read_text()


def test_suggest_labels_extends_a_manifest_and_never_overwrites(clips, detector, tmp_path):
    m = tmp_path / "m.csv"
    rel = os.path.relpath(clips["long"], tmp_path)
    m.write_text(f"source,subject,task,frame,AU01,AU12,note\n{rel},anna,,10,1,0,kept\n")
    before = m.read_text()
    with pytest.raises(DataError, match="already exists"):
        suggest_labels([str(clips["short"])], 2, m, detector=detector)
    assert m.read_text() == before
    out, _ = suggest_labels([str(m), str(clips["short"])], 4, m, detector=detector)
    lab = LabelManifest.read(out)
    assert lab.rows[0]["note"] == "kept" and lab.rows[0]["AU01"] == "1" and lab.aus == [1, 12]
    long_frames = [int(r["frame"]) for r in lab.rows[1:] if r["source"] == str(rel)]
    assert long_frames and all(abs(f - 10) >= 25 for f in long_frames)  # ≥ 1 s from the labelled frame
    assert all(r["subject"] == "anna" for r in lab.rows if r["source"] == str(rel))
    # into another file: the input manifest stays as it was, its rows are carried over
    again = m.read_text()
    out2, _ = suggest_labels([str(m)], 1, tmp_path / "sub" / "next.csv", detector=detector)
    assert m.read_text() == again
    carried = LabelManifest.read(out2)
    assert len(carried.rows) == len(lab.rows) + 1
    assert read_dataset("generic", out2).videos[0].labels[10].tolist() == [1, 0]


def test_suggest_labels_reads_a_json_manifest(clips, detector, tmp_path):
    j = tmp_path / "m.json"
    j.write_text('{"videos": [{"source": "%s", "subject": "anna", "labels": [{"frame": 3, "AU06": 1}]}]}'
                 % clips["short"])
    out, rep = suggest_labels([str(j)], 2, tmp_path / "m.csv", detector=detector)
    lab = LabelManifest.read(out)
    assert lab.rows[0]["frame"] == "3" and lab.rows[0]["AU06"] == "1"
    assert len(rep[0].picked) == 2 and 3 not in [p.frame for p in rep[0].picked]


class FakeScorer:
    """Certain everywhere except at frames 100-124 of the long clip, where p = 0.5."""

    aus = (1, 12)
    thresholds = 0.5

    def __init__(self, unsure):
        self.unsure = unsure

    def probabilities(self, path):
        n = 150 if path.name == "long.mp4" else 75
        p = np.full((n, 2), 0.97, np.float32)
        if path.name == "long.mp4":
            p[self.unsure] = 0.5
        return p


def test_suggest_labels_with_a_fake_model_picks_uncertain_frames(clips, detector, tmp_path):
    unsure = np.arange(100, 125)
    out, reports = suggest_labels([str(clips["long"])], 1, tmp_path / "m.csv", detector=detector,
                                  scorer=FakeScorer(unsure))
    picked = reports[0].picked
    assert len(picked) == 1 and picked[0].frame in set(unsure.tolist())
    assert "guided" in picked[0].reason


def test_bad_inputs(clips, detector, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        suggest_labels([str(tmp_path / "nope.mp4")], 2, tmp_path / "m.csv", detector=detector)
    (tmp_path / "bad.csv").write_text("who,what\n1,2\n")
    with pytest.raises(DataError, match="bad.csv"):
        suggest_labels([str(tmp_path / "bad.csv")], 2, tmp_path / "m.csv", detector=detector)


def test_no_suggested_frame_without_a_face_even_when_the_budget_asks_for_more(clips, detector, tmp_path):
    """The long clip has no face in frames 50-74 (1 s): a budget above what the faces allow is not filled there."""
    out, reports = suggest_labels([str(clips["long"])], 10, tmp_path / "m.csv", detector=detector, per_second=10)
    frames = [p.frame for p in reports[0].picked]
    assert 4 <= len(frames) < 10
    assert all(clips["long_present"][f] for f in frames)
    assert np.diff(sorted(frames)).min() >= 25


def test_labelling_sits_below_the_cli():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_layers import SRC, imported_modules

    bad = [f"{f.name}: {mod}" for f in sorted((SRC / "labelling").rglob("*.py"))
           for _, mod in imported_modules(f) if mod.startswith(("auspread.cli", "auspread.study"))]
    assert bad == []


def test_no_detect_treats_each_frame_as_an_aligned_face(tmp_path):
    from PIL import Image

    from auspread.labelling.suggest import WholeFrame

    d = tmp_path / "crops"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(d / f"{i}.png")
    out, reports = suggest_labels([str(d)], 3, tmp_path / "m.csv", detector=WholeFrame(), frame_fps=10)
    assert reports[0].with_face == reports[0].scanned == 30 and len(reports[0].picked) == 3


def test_a_listed_frame_beyond_the_video_is_named(clips, detector, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(f"source,subject,frame,AU01\n{clips['short']},bob,300,1\n")
    with pytest.raises(DataError, match="has 75 frames; the manifest lists frame 300"):
        suggest_labels([str(m)], 2, m, detector=detector)


def test_the_same_videos_elsewhere_get_the_same_frames(clips, detector, tmp_path):
    import shutil

    other = tmp_path / "moved"
    other.mkdir()
    shutil.copy(clips["long"], other / "long.mp4")
    a, _ = suggest_labels([str(clips["long"])], 3, tmp_path / "a.csv", detector=detector, seed=4)
    b, _ = suggest_labels([str(other / "long.mp4")], 3, other / "b.csv", detector=detector, seed=4)
    frames = lambda p: [r["frame"] for r in LabelManifest.read(p).rows]  # noqa: E731
    assert frames(a) == frames(b)
