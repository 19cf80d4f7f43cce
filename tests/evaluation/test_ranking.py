import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auspread.evaluation.ranking import best_threshold, best_threshold_f1, f1_at, roc_auc


def test_roc_auc_hand_computed():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4
    assert roc_auc(np.array([0.9, 0.5, 0.4, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts half; the unknown label is ignored
    assert roc_auc(np.array([0.5, 0.5, 0.2, 0.99]), np.array([1, 0, 0, -1])) == pytest.approx(0.75)
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_best_threshold_f1_hand_computed():
    # sorted: 0.9(+) 0.8(-) 0.3(+) 0.2(-): k=1 F1=2/3, k=2 0.5, k=3 0.8, k=4 2/3 -> 0.8
    assert best_threshold_f1(np.array([0.2, 0.9, 0.3, 0.8]), np.array([0, 1, 1, 0])) == pytest.approx(0.8)
    # a constant score cannot be cut: only "all present" is possible, F1 = 2r/(1+r) with r = 1/4
    assert best_threshold_f1(np.full(4, 0.3), np.array([1, 0, 0, 0])) == pytest.approx(0.4)
    assert np.isnan(best_threshold_f1(np.array([0.1, 0.2]), np.array([0, -1])))


def test_best_threshold_returns_the_cut_and_f1_at_applies_it():
    s, y = np.array([0.2, 0.9, 0.3, 0.8]), np.array([0, 1, 1, 0])
    t, f1 = best_threshold(s, y)
    assert (t, f1) == (pytest.approx(0.3), pytest.approx(0.8))  # the top 3 present
    assert f1_at(s, y, t) == pytest.approx(0.8)
    assert f1_at(s, y, 0.5) == pytest.approx(0.5)  # 0.9 and 0.8 present: tp 1, fp 1, fn 1
    assert f1_at(s, np.array([0, 1, -1, 0]), 0.95) == 0.0  # nothing called, the unknown label ignored
    assert all(np.isnan(best_threshold(s, np.array([0, 0, -1, 0]))))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=30))
def test_best_threshold_f1_is_the_best_of_every_threshold(pairs):
    s = np.array([p[0] for p in pairs], dtype=float) / 5
    y = np.array([p[1] for p in pairs])
    if y.sum() == 0:
        return
    brute = max(2 * ((s >= t) & (y == 1)).sum() / ((s >= t).sum() + y.sum()) for t in np.unique(s))
    assert best_threshold_f1(s, y) == pytest.approx(brute)
    t, f1 = best_threshold(s, y)
    assert f1_at(s, y, t) == pytest.approx(f1) == pytest.approx(brute)
    if 0 < y.sum() < len(y):
        flipped = roc_auc(-s, y)
        assert roc_auc(s, y) + flipped == pytest.approx(1.0)
