"""Sparse label policy (KS supplement §1.2) and kept-combination statistics (KS §4.4)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.labels import label_statistics, labelled_positions, sparsify, video_offset


def make_index(lengths, num_aus=3, seed=0, unlabelled=()):
    rng = np.random.default_rng(seed)
    vids = []
    for i, t in enumerate(lengths):
        lab = rng.integers(0, 2, size=(t, num_aus)).astype(np.int8)
        if i in unlabelled:
            lab[:] = -1
        vids.append(VideoRecord(f"S{i}/T1", f"S{i}", "T1", np.arange(t), lab,
                                ImageFiles(tuple(f"/x/{i}/{j}.png" for j in range(t)))))
    return VideoIndex("test", tuple(range(1, num_aus + 1)), vids, fps=25.0)


def test_every_one_keeps_all_labels():
    idx = make_index([7, 5])
    sp = sparsify(idx, 1, seed=3)
    for a, b in zip(idx.videos, sp.index.videos):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert sp.num_key_frames == 12


def test_sparse_rule_exact_and_deterministic():
    idx = make_index([30, 19, 4])
    k = 9
    sp1, sp2 = sparsify(idx, k, seed=5), sparsify(idx, k, seed=5)
    np.testing.assert_array_equal(sp1.key_frames, sp2.key_frames)
    for vi, v in enumerate(idx.videos):
        o = video_offset(v.video_id, k, len(v), 5)
        assert 0 <= o < min(k, len(v))
        expect = np.arange(o, len(v), k)
        got = sp1.key_frames[sp1.key_frames[:, 0] == vi, 1]
        np.testing.assert_array_equal(got, expect)
        masked = sp1.index.videos[vi].labels
        np.testing.assert_array_equal(masked[expect], v.labels[expect])
        other = np.setdiff1d(np.arange(len(v)), expect)
        assert (masked[other] == -1).all()
    # a video shorter than k still keeps one label
    assert (sp1.key_frames[:, 0] == 2).sum() == 1
    # ratio: one label per k frames
    assert abs(sp1.num_key_frames - 53 / k) <= 3


def test_offset_depends_on_seed_and_video_not_on_order():
    idx = make_index([50, 50, 50])
    offs = {sparsify(idx, 10, s).key_frames[0, 1] for s in range(20)}
    assert len(offs) > 3  # seeded offsets vary with the seed
    rev = VideoIndex("t", idx.aus, idx.videos[::-1], 25.0)
    a = sparsify(idx, 10, 1).key_frames
    b = sparsify(rev, 10, 1).key_frames
    np.testing.assert_array_equal(a[a[:, 0] == 0, 1], b[b[:, 0] == 2, 1])


def test_unlabelled_frames_and_videos_never_key_frames():
    idx = make_index([20, 20], unlabelled=(1,))
    idx.videos[0].labels[::2] = -1  # uncoded frames (e.g. BP4D frames without codes)
    sp = sparsify(idx, 3, seed=0)
    assert (sp.key_frames[:, 0] == 0).all()
    lab = labelled_positions(idx.videos[0].labels)
    np.testing.assert_array_equal(lab, np.arange(1, 20, 2))
    o = video_offset(idx.videos[0].video_id, 3, len(lab), 0)
    np.testing.assert_array_equal(sp.key_frames[:, 1], lab[o::3])


def test_partly_known_row_is_labelled():
    idx = make_index([6])
    idx.videos[0].labels[:] = -1
    idx.videos[0].labels[2, 1] = 0
    sp = sparsify(idx, 1, 0)
    np.testing.assert_array_equal(sp.key_frames, [[0, 2]])


def test_bad_every():
    with pytest.raises(ValueError):
        sparsify(make_index([3]), 0, 0)


def test_statistics_hand_computed():
    # one video, AU rows follow 4 long runs of distinct combinations (like real AU data: dense repetition)
    rows = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.int8)
    lab = np.repeat(rows, 10, axis=0)  # 40 frames, 4 runs of 10
    v = VideoRecord("A", "A", "", np.arange(40), lab, ImageFiles(tuple(str(i) for i in range(40))))
    idx = VideoIndex("t", (1, 2), [v], 25.0)
    sp = sparsify(idx, 10, seed=0)
    st = label_statistics(idx, sp, seed=0, repeats=5)
    assert st["key_frames"] == 4 and st["labelled_frames"] == 40
    assert st["frame_ratio"] == pytest.approx(0.1)
    assert st["known_cells_total"] == 80 and st["known_cells_kept"] == 8
    assert st["combinations_all"] == 4
    assert st["combinations_sparse"] == 4  # one key frame in each run of 10
    # a contiguous block of 4 frames covers at most 2 runs
    assert 1 <= st["combinations_contiguous"] <= 2
    assert st["combinations_random_frames"] <= 4
    assert st["positives_kept"]["AU1"] == [2, 20] and st["positives_kept"]["AU2"] == [2, 20]
    # seeded: same numbers twice
    assert label_statistics(idx, sp, seed=0, repeats=5) == st


def test_statistics_sparse_beats_contiguous_on_runs():
    rng = np.random.default_rng(0)
    vids = []
    for i in range(6):
        runs = rng.integers(0, 2, size=(30, 4)).astype(np.int8)
        lab = np.repeat(runs, 12, axis=0)
        vids.append(VideoRecord(f"V{i}", f"S{i}", "", np.arange(len(lab)), lab,
                                ImageFiles(tuple(str(j) for j in range(len(lab))))))
    idx = VideoIndex("t", (1, 2, 4, 6), vids, 25.0)
    st = label_statistics(idx, sparsify(idx, 12, 0), seed=0)
    assert st["combinations_sparse"] > st["combinations_contiguous"]


def test_ratio_exact_on_fully_coded_videos():
    from auspread.engine.config import LabelRegime

    idx = make_index([100] * 10)
    every = LabelRegime.model_validate("10%").every
    assert every == 10
    sp = sparsify(idx, every, seed=0)
    # offset o < 10 in a 100-frame video always leaves exactly 10 key frames: ratio exactly 1/10
    assert sp.num_key_frames == 100
    assert np.bincount(sp.key_frames[:, 0]).tolist() == [10] * 10
    st = label_statistics(idx, sp, repeats=1)
    assert st["frame_ratio"] == pytest.approx(0.1) and st["cell_ratio"] == pytest.approx(0.1)


# --- ratios where 100 / r is not a whole number: exact, never rounded to a k -------------------------------------
@pytest.mark.parametrize("text, every", [("100%", 1), ("50%", 2), ("25%", 4), ("20%", 5), ("12.5%", 8), ("10%", 10),
                                         ("5%", 20), ("2%", 50), ("1%", 100), ("0.5%", 200), ("every:9", 9), (5, 20)])
def test_whole_k_ratios_keep_the_every_k_rule(text, every):
    from auspread.engine.config import LabelRegime

    regime = LabelRegime.model_validate(text)
    assert regime.every == every and regime.percent is None
    idx = make_index([30, 19, 4, 61])
    np.testing.assert_array_equal(sparsify(idx, regime, 5).key_frames, sparsify(idx, every, 5).key_frames)


@pytest.mark.parametrize("pct", [15, 30, 33.3, 60, 70, 75.5, 80, 90, 99])
def test_other_ratios_are_exact_not_rounded(pct):
    from auspread.engine.config import LabelRegime

    regime = LabelRegime.model_validate(f"{pct}%")
    assert regime.every is None and regime.percent == pct and regime.ratio == pytest.approx(pct / 100)
    assert str(regime) == f"{pct:g}% (exact)"
    assert LabelRegime.model_validate(regime.model_dump()) == regime  # saved configs read back the same
    idx = make_index([200] * 6 + [57, 33])
    sp = sparsify(idx, regime, seed=3)
    total = sum(len(v) for v in idx.videos)
    assert abs(sp.num_key_frames - pct / 100 * total) <= len(idx.videos) / 2  # per-video rounding only
    per_video = np.bincount(sp.key_frames[:, 0], minlength=len(idx.videos))
    assert per_video.tolist() == [max(1, round(pct / 100 * len(v))) for v in idx.videos]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=6), st.floats(0.1, 99.9), st.integers(0, 2**31 - 1))
def test_exact_ratio_spreads_key_frames_evenly_and_deterministically(lengths, pct, seed):
    from auspread.engine.config import LabelRegime

    regime = LabelRegime.model_validate(f"{pct!r}%")
    assume(regime.percent is not None)  # a whole 100 / r takes the every-k rule (tested above)
    idx = make_index(lengths)
    sp = sparsify(idx, regime, seed)
    np.testing.assert_array_equal(sp.key_frames, sparsify(idx, regime, seed).key_frames)
    for vi, v in enumerate(idx.videos):
        kept = sp.key_frames[sp.key_frames[:, 0] == vi, 1]
        if len(v) == 0:
            assert len(kept) == 0
            continue
        n = len(kept)
        assert n == min(len(v), max(1, round(regime.ratio * len(v))))
        assert (np.diff(kept) > 0).all() and 0 <= kept[0] and kept[-1] < len(v)
        step = len(v) / n
        gaps = np.diff(kept)
        assert ((gaps == np.floor(step)) | (gaps == np.ceil(step))).all()  # evenly spread
        assert kept[0] < np.ceil(step)  # one seeded offset within the first step
        masked = sp.index.videos[vi].labels
        np.testing.assert_array_equal(masked[kept], v.labels[kept])
        assert (np.delete(masked, kept, axis=0) == -1).all()


@pytest.mark.parametrize("bad", ["0%", "-5%", "150%", "every:0", "5 percent", {"every": 3, "percent": 15}])
def test_bad_label_ratios_are_refused_clearly(bad):
    from auspread.engine.config import LabelRegime, load_config
    from auspread.errors import ConfigError

    with pytest.raises(ValueError):
        LabelRegime.model_validate(bad)
    if isinstance(bad, str):
        with pytest.raises(ConfigError, match="data.labels"):
            load_config(None, [f"data.labels={bad}"])
