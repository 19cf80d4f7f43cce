import math

import numpy as np
import pytest
import torch

from auspread.evaluation.metrics import CountAccumulator, au_scores, confusion_counts, scores_from_counts, all_positive_f1

# 5 frames x 3 AUs. AU "A": TP, FP, FN, TN, unknown. AU "B": TP (p = 0.5 counts as positive), FN, unknown, TN, TN.
# AU "C": no known label.
P = np.array([[0.9, 0.5, 0.9], [0.6, 0.1, 0.1], [0.4, 0.8, 0.9], [0.2, 0.3, 0.1], [0.7, 0.2, 0.5]])
Y = np.array([[1, 1, -1], [0, 1, -1], [1, -1, -1], [0, 0, -1], [-1, 0, -1]])


def test_counts_hand_computed():
    c = confusion_counts(P, Y)
    assert c.tolist() == [[1, 1, 1, 1], [1, 0, 1, 2], [0, 0, 0, 0]]


def test_scores_hand_computed():
    s = au_scores(P, Y, aus=(1, 2, 4))
    assert s.f1[0] == pytest.approx(0.5)  # 2·1 / (2·1 + 1 + 1)
    assert s.f1[1] == pytest.approx(2 / 3)  # 2·1 / (2·1 + 0 + 1)
    assert math.isnan(s.f1[2])  # no known label: left out of the mean
    assert s.precision[1] == pytest.approx(1.0) and s.recall[1] == pytest.approx(0.5)
    assert s.accuracy[0] == pytest.approx(0.5) and s.accuracy[1] == pytest.approx(0.75)
    assert s.mean_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert s.mean_accuracy == pytest.approx((0.5 + 0.75) / 2)
    assert s.support.tolist() == [4, 4, 0] and s.positives.tolist() == [2, 2, 0]


def test_no_positive_anywhere_gives_f1_zero_like_the_papers():
    s = au_scores(np.array([[0.1], [0.2]]), np.array([[0], [0]]), aus=(1,))
    assert s.f1[0] == 0.0 and s.accuracy[0] == 1.0


def test_accumulation_over_batches_equals_one_pass():
    rng = np.random.default_rng(0)
    p = rng.random((50, 4))
    y = rng.integers(-1, 2, (50, 4))
    acc = CountAccumulator(4)
    for a in range(0, 50, 7):
        acc.update(torch.from_numpy(p[a:a + 7]), torch.from_numpy(y[a:a + 7]))
    assert torch.equal(acc.counts, confusion_counts(p, y))
    one = scores_from_counts(acc.counts, (1, 2, 3, 4))
    # against a per-AU loop
    for j in range(4):
        k = y[:, j] >= 0
        pred, lab = p[k, j] >= 0.5, y[k, j] == 1
        tp, fp, fn = (pred & lab).sum(), (pred & ~lab).sum(), (~pred & lab).sum()
        assert one.f1[j] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_shape_mismatch():
    with pytest.raises(ValueError):
        confusion_counts(np.zeros((2, 3)), np.zeros((2, 2)))


def test_all_positive_f1_is_2r_over_1_plus_r_with_unknown_labels_masked():
    y = np.array([[1, 0, -1], [0, 0, -1], [1, 0, 1], [-1, 0, 0]])
    s = all_positive_f1(y, (1, 2, 4))
    r = np.array([2 / 3, 0.0, 0.5])  # base rates among known labels
    np.testing.assert_allclose(s.f1, 2 * r / (1 + r))
