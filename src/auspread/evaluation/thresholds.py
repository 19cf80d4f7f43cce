"""Per-AU decision thresholds chosen on the validation subjects (an honest recalibration on held-out people).

The papers' protocol calls an AU present when its probability is ≥ 0.5, and every reported score here keeps that.
A model that ranks frames well can still be calibrated away from 0.5 on some AUs (Knowledge-Spreader's temporal
branch on the rare AUs: docs/calibration.md, issue 19, session 17), and then scores F1 far below what its ranking
allows. :func:`fit_thresholds` picks, per AU, the cut with the best F1 on the **validation** subjects
(:func:`auspread.evaluation.ranking.best_threshold`); applied unchanged to other people (the test subjects, a
user's videos) it is a recalibration that never sees their labels. An AU whose validation frames hold fewer than
``MIN_POSITIVES`` positives (or no negative) keeps the default 0.5, and says so (``fitted`` false): a cut chosen on
a handful of frames would be noise. 10 is our choice; on `bp4d-like` and `small` every AU's validation subjects hold
46 or more positives, so it changes none of the measured numbers.

Measured on `bp4d-like` fold 1 (docs/BENCHMARKS.md, issue 19): test F1 at 0.5 → at validation thresholds,
supervised 42.0 → 52.6 at 1% labels, Knowledge-Spreader 43.1 → 52.3 at 2%; at 100% labels it moves ±1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from auspread.evaluation.ranking import best_threshold

DEFAULT = 0.5
MIN_POSITIVES = 10


@dataclass(frozen=True)
class AUThresholds:
    """One threshold per AU (in ``aus`` order); ``fitted[j]`` false where the default 0.5 was kept."""

    aus: tuple[int, ...]
    values: tuple[float, ...]
    fitted: tuple[bool, ...]
    source: str  # where they were chosen, e.g. "validation subjects F003, M012 (4,210 frames)"
    val_f1: float | None = None  # mean F1 on the frames they were chosen on (optimistic there by construction)
    positives: tuple[int, ...] | None = None  # known positive frames per AU where they were chosen

    def __post_init__(self):
        if not (len(self.aus) == len(self.values) == len(self.fitted)):
            raise ValueError("aus, values and fitted must have one entry per AU")

    def array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)

    def to_dict(self) -> dict:
        """Plain data (JSON and ``weights_only`` checkpoints)."""
        return {"aus": list(self.aus), "values": [float(v) for v in self.values], "fitted": list(self.fitted),
                "source": self.source, "val_f1": self.val_f1,
                "positives": None if self.positives is None else [int(n) for n in self.positives]}

    @classmethod
    def from_dict(cls, d: dict) -> "AUThresholds":
        return cls(tuple(int(a) for a in d["aus"]), tuple(float(v) for v in d["values"]),
                   tuple(bool(f) for f in d["fitted"]), str(d.get("source", "")),
                   None if d.get("val_f1") is None else float(d["val_f1"]),
                   None if d.get("positives") is None else tuple(int(n) for n in d["positives"]))

    def describe(self) -> str:
        """``AU1 0.31, AU2 0.50 (default), ...``"""
        return ", ".join(f"AU{a} {v:.2f}" + ("" if f else " (default)")
                         for a, v, f in zip(self.aus, self.values, self.fitted))


def fit_thresholds(probs: np.ndarray, labels: np.ndarray, aus: Sequence[int], source: str = "",
                   default: float = DEFAULT, min_positives: int = MIN_POSITIVES) -> AUThresholds:
    """Per AU, the threshold with the best F1 on ``(N, U)`` probabilities against labels in {1, 0, −1} (−1 masked).

    An AU with fewer than ``min_positives`` known positives, or no known negative, keeps ``default``: no cut can be
    chosen there that is not either "always on" or noise."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.shape != labels.shape or probs.ndim != 2 or probs.shape[1] != len(aus):
        raise ValueError(f"probabilities {probs.shape} and labels {labels.shape} must both be (N, {len(aus)})")
    values, fitted = [], []
    positives = tuple(int((labels[:, j] == 1).sum()) for j in range(len(aus)))
    for j in range(len(aus)):
        y = labels[:, j]
        if positives[j] < max(1, min_positives) or not (y == 0).any():
            values.append(default)
            fitted.append(False)
            continue
        t, _ = best_threshold(probs[:, j], y)
        ok = math.isfinite(t)
        values.append(float(t) if ok else default)
        fitted.append(ok)
    th = AUThresholds(tuple(int(a) for a in aus), tuple(values), tuple(fitted), source)
    from auspread.evaluation.metrics import au_scores

    return AUThresholds(th.aus, th.values, th.fitted, source, au_scores(probs, labels, aus, th.array()).mean_f1,
                        positives)


def per_au(threshold: float | Sequence[float] | AUThresholds, num_aus: int) -> np.ndarray:
    """A scalar or per-AU threshold as a ``(U,)`` array (checked against ``num_aus``)."""
    if isinstance(threshold, AUThresholds):
        threshold = threshold.values
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim == 0:
        return np.full(num_aus, float(t))
    if t.shape != (num_aus,):
        raise ValueError(f"{t.shape[0]} thresholds for {num_aus} AUs")
    return t


def _stack(preds) -> tuple[np.ndarray, np.ndarray]:
    """``(N, U)`` probabilities and labels of every frame of a :class:`~auspread.evaluation.dense.DensePredictions`."""
    return np.concatenate(preds.probs), np.concatenate(preds.labels)


def fit_on_predictions(preds, aus: Sequence[int], source: str) -> AUThresholds:
    """:func:`fit_thresholds` on every frame of dense predictions (the validation subjects')."""
    probs, labels = _stack(preds)
    return fit_thresholds(probs, labels, aus, source)


def scores_on_predictions(preds, aus: Sequence[int], thresholds: float | Sequence[float] | AUThresholds):
    """:class:`~auspread.evaluation.metrics.AUScores` of dense predictions at scalar or per-AU thresholds."""
    from auspread.evaluation.metrics import au_scores

    probs, labels = _stack(preds)
    return au_scores(probs, labels, aus, per_au(thresholds, len(aus)))
