"""Frame-based AU metrics (reference C.6), vectorised and masked.

Prediction is ``p >= threshold`` (0.5). True/false positives and negatives are accumulated per AU over **all
frames of the split** (not averaged per video), then F1_j = 2·TP/(2·TP + FP + FN) (= 2PR/(P+R); 0 when there is
no positive prediction nor positive label, as ME-GraphAU's 1e-20 guards give). The headline score is the mean over
AUs. Labels −1 (unknown) are masked out of every count. An AU with no known label at all gets NaN and is left
out of the means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# column order of the count matrix
TP, FP, FN, TN = 0, 1, 2, 3


def confusion_counts(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                     threshold: float | np.ndarray = 0.5) -> torch.Tensor:
    """``(N, U)`` probabilities and labels in {1, 0, −1} → ``(U, 4)`` int64 counts ``[TP, FP, FN, TN]``.

    ``threshold``: one for every AU (the protocol's 0.5) or a ``(U,)`` array, one per AU
    (``auspread.evaluation.thresholds``), compared in float64."""
    p = torch.as_tensor(probs)
    y = torch.as_tensor(labels)
    if p.shape != y.shape:
        raise ValueError(f"probabilities {tuple(p.shape)} and labels {tuple(y.shape)} differ in shape")
    p = p.reshape(-1, p.shape[-1]) if p.ndim else p
    y = y.reshape(-1, y.shape[-1]).to(p.device)
    if np.ndim(threshold) == 0:
        pred = p >= float(threshold)
    else:
        t = torch.as_tensor(np.asarray(threshold, dtype=np.float64), device=p.device)
        if t.shape != p.shape[-1:]:
            raise ValueError(f"{t.numel()} thresholds for {p.shape[-1]} AUs")
        pred = p.to(torch.float64) >= t
    known = y >= 0
    pos = (y == 1) & known
    neg = (y == 0) & known
    tp = (pred & pos).sum(0)
    fp = (pred & neg).sum(0)
    fn = (~pred & pos).sum(0)
    tn = (~pred & neg).sum(0)
    return torch.stack([tp, fp, fn, tn], dim=1).to(torch.int64).cpu()


class CountAccumulator:
    """Accumulates ``[TP, FP, FN, TN]`` per AU over many batches or videos."""

    def __init__(self, num_aus: int, threshold: float = 0.5):
        self.threshold = threshold
        self.counts = torch.zeros(num_aus, 4, dtype=torch.int64)

    def update(self, probs, labels) -> None:
        self.counts += confusion_counts(probs, labels, self.threshold)


@dataclass
class AUScores:
    """Per-AU scores (arrays of length U, in the dataset's AU order) and their means."""

    aus: tuple[int, ...]
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    accuracy: np.ndarray
    support: np.ndarray  # known labels per AU
    positives: np.ndarray  # positive labels per AU

    @property
    def mean_f1(self) -> float:
        return _nanmean(self.f1)

    @property
    def mean_accuracy(self) -> float:
        return _nanmean(self.accuracy)

    def to_dict(self) -> dict:
        return {
            "mean_f1": self.mean_f1,
            "mean_accuracy": self.mean_accuracy,
            "per_au": {
                f"AU{a}": {
                    "f1": _f(self.f1[i]), "precision": _f(self.precision[i]), "recall": _f(self.recall[i]),
                    "accuracy": _f(self.accuracy[i]), "support": int(self.support[i]), "positives": int(self.positives[i]),
                }
                for i, a in enumerate(self.aus)
            },
        }


def _f(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def scores_from_counts(counts: torch.Tensor | np.ndarray, aus: tuple[int, ...] | list[int]) -> AUScores:
    """``(U, 4)`` counts → :class:`AUScores` (F1, precision, recall, accuracy per AU)."""
    c = np.asarray(counts, dtype=np.float64)
    tp, fp, fn, tn = c[:, TP], c[:, FP], c[:, FN], c[:, TN]
    support = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        accuracy = (tp + tn) / support
    none = support == 0
    for arr in (precision, recall, f1):
        arr[none] = np.nan
    accuracy[none] = np.nan
    return AUScores(tuple(int(a) for a in aus), f1, precision, recall, accuracy, support.astype(np.int64), (tp + fn).astype(np.int64))


def au_scores(probs, labels, aus, threshold: float | np.ndarray = 0.5) -> AUScores:
    """Scores of ``(N, U)`` probabilities against ``(N, U)`` labels (−1 masked); ``threshold`` scalar or per AU."""
    return scores_from_counts(confusion_counts(probs, labels, threshold), aus)


def all_positive_f1(labels: np.ndarray, aus: tuple[int, ...] | list[int]) -> AUScores:
    """Scores of the trivial predictor that calls every AU present in every frame (``(N, U)`` labels, −1 masked).

    Its F1 per AU is 2r / (1 + r) for base rate r, so a mean F1 below it means a model has not beaten "always on";
    reports quote it next to the model's score."""
    y = np.asarray(labels)
    return au_scores(np.ones(y.shape, dtype=np.float32), y, aus)
