"""Threshold-free diagnostics of one AU's scores: ROC-AUC and the best-threshold ("oracle") F1.

The protocol metric is F1 at threshold 0.5 (``auspread.evaluation.metrics``). These two tell *why* a model scores
what it does: a model that ranks frames well (high AUC) but is calibrated below 0.5 scores F1 0 at 0.5, and the
best-threshold F1, chosen on the very frames it is measured on, bounds what a recalibration could give. Neither
is a result to report as a score; a threshold chosen on *other* frames (:func:`best_threshold` on validation
subjects, :func:`f1_at` on the test subjects) is an honest recalibration, still not the protocol's 0.5. Labels: 1 present, 0 absent, −1 unknown (masked).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann–Whitney U) formula, ties counted half; NaN unless both classes occur."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    known = labels >= 0
    s, y = scores[known], labels[known]
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r_pos = rankdata(s)[y == 1].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mean_roc_auc(preds) -> float | None:
    """Mean over AUs of :func:`roc_auc` on every frame of dense predictions (AUs without both classes skipped);
    ``None`` when no AU has both."""
    probs, labels = np.concatenate(preds.probs), np.concatenate(preds.labels)
    aucs = [roc_auc(probs[:, k], labels[:, k]) for k in range(labels.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else None


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, F1)`` of the best cut: calling ``scores >= threshold`` present gives the highest F1 over every
    threshold (the top-k scores present, for every k); ``(nan, nan)`` without positives.

    Tied scores are cut together (a threshold cannot split them); among equal F1s the highest threshold wins."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    known = labels >= 0
    s, y = scores[known], labels[known] == 1
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], np.cumsum(y[order])
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # cut only after the last of equal scores
    k = np.arange(1, len(s) + 1)
    f1 = np.where(last_of_tie, 2 * tp / (k + n_pos), -1.0)
    i = int(np.argmax(f1))
    return float(s[i]), float(f1[i])


def best_threshold_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    """The highest F1 over every threshold (see :func:`best_threshold`); NaN without positives."""
    return best_threshold(scores, labels)[1]


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of calling ``scores >= threshold`` present (unknown labels ignored); 0 when nothing is present or called."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    known = labels >= 0
    pred, y = scores[known] >= threshold, labels[known] == 1
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    return 2 * tp / max(1, 2 * tp + fp + fn)
