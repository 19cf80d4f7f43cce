"""Per-AU thresholds chosen on validation subjects (auspread.evaluation.thresholds) and per-AU metric thresholds."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from auspread.evaluation.metrics import au_scores, confusion_counts
from auspread.evaluation.ranking import f1_at
from auspread.evaluation.thresholds import AUThresholds, fit_thresholds, per_au


def test_confusion_counts_with_one_threshold_per_au_hand_computed():
    p = np.array([[0.2, 0.9], [0.4, 0.6], [0.6, 0.3]], dtype=np.float32)
    y = np.array([[1, 1], [1, 0], [0, -1]])
    c = confusion_counts(p, y, np.array([0.3, 0.7]))
    # AU a, cut 0.3: calls rows 2, 3 → TP 1 (row 2), FP 1 (row 3), FN 1 (row 1), TN 0
    # AU b, cut 0.7: calls row 1 → TP 1, FP 0 (row 2: 0.6 < 0.7, TN), FN 0; row 3 unknown
    assert c.tolist() == [[1, 1, 1, 0], [1, 0, 0, 1]]
    assert torch.equal(confusion_counts(p, y, np.array([0.5, 0.5])), confusion_counts(p, y, 0.5))
    with pytest.raises(ValueError, match="3 thresholds for 2 AUs"):
        confusion_counts(p, y, np.array([0.1, 0.2, 0.3]))


def test_a_threshold_equal_to_a_float32_score_calls_it_present():
    p = np.array([[0.1234567]], dtype=np.float32)
    t = float(p[0, 0])  # what best_threshold returns: the float32 score widened to float64
    assert confusion_counts(p, np.array([[1]]), np.array([t]))[0, 0] == 1


def test_fit_thresholds_hand_computed_and_defaults_where_no_cut_exists():
    p = np.array([[0.9, 0.2, 0.3], [0.3, 0.1, 0.4], [0.2, 0.15, 0.8], [0.1, 0.05, 0.1]])
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, -1]])
    th = fit_thresholds(p, y, aus=(1, 2, 4), source="val", min_positives=1)
    # AU1: top-2 (0.9, 0.3) are the two positives → F1 1 at 0.3
    # AU2: ranks 0.2(+) 0.15(+) 0.1(−) 0.05(−) → top-2 → 0.15, F1 1
    # AU4: no positive → the default 0.5, not fitted
    assert th.values == (0.3, 0.15, 0.5) and th.fitted == (True, True, False) and th.positives == (2, 2, 0)
    assert th.val_f1 == pytest.approx(au_scores(p, y, (1, 2, 4), th.array()).mean_f1)
    assert au_scores(p, y, (1, 2, 4), th.array()).f1[:2].tolist() == [1.0, 1.0]
    all_pos = fit_thresholds(np.array([[0.2], [0.3]]), np.array([[1], [1]]), aus=(1,), min_positives=1)
    assert all_pos.values == (0.5,) and all_pos.fitted == (False,)  # only positives: no cut to choose


def test_too_few_validation_positives_keep_the_default():
    rng = np.random.default_rng(0)
    p = rng.random((200, 1))
    y = np.zeros((200, 1), dtype=np.int64)
    y[:9, 0] = 1  # nine positives: below the default minimum of 10
    assert fit_thresholds(p, y, aus=(1,)).fitted == (False,)
    y[9, 0] = 1
    th = fit_thresholds(p, y, aus=(1,))
    assert th.fitted == (True,) and th.positives == (10,) and th.values[0] != 0.5


def test_round_trip_and_per_au():
    th = AUThresholds((1, 2), (0.25, 0.5), (True, False), "validation subjects F001 (10 frames)", 0.6, (4, 0))
    assert AUThresholds.from_dict(th.to_dict()) == th
    assert th.describe() == "AU1 0.25, AU2 0.50 (default)"
    assert per_au(th, 2).tolist() == [0.25, 0.5] and per_au(0.3, 3).tolist() == [0.3, 0.3, 0.3]
    with pytest.raises(ValueError, match="1 thresholds for 2 AUs"):
        per_au([0.1], 2)
    with pytest.raises(ValueError, match="one entry per AU"):
        AUThresholds((1, 2), (0.5,), (True,), "")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1, width=32), st.integers(-1, 1)), min_size=2, max_size=40))
def test_fitted_threshold_is_the_best_f1_on_the_frames_it_was_chosen_on(pairs):
    p = np.array([[s] for s, _ in pairs], dtype=np.float32)
    y = np.array([[lab] for _, lab in pairs])
    th = fit_thresholds(p, y, aus=(1,), min_positives=1)
    got = f1_at(p[:, 0], y[:, 0], th.values[0])
    if th.fitted[0]:
        for cut in list(p[:, 0].astype(np.float64)) + [0.5]:  # no cut (nor the default) does better
            assert got >= f1_at(p[:, 0], y[:, 0], cut) - 1e-12
    else:
        assert th.values[0] == 0.5 and not ((y == 1).any() and (y == 0).any())
