"""Subject-exclusive folds, the validation split and per-fold class weights.

- **Standard folds** (JAA-Net / ME-GraphAU / MDHR): three subject parts per dataset, read from the packaged
  ``resources/folds.json``; fold k trains on two parts and tests on part 4 − k (fold1 tests part3).
- **Other subjects** (generic data, BP4D+, a copy with extra subjects): a deterministic subject-level 3-way split:
  subjects are sorted by the SHA-256 of their id and dealt to parts 1, 2, 3 in turn, so part sizes differ by at most
  one and the result depends only on the set of subjects (not their order or any seed). Or a user folds file:
  ``{"part1": [...], "part2": [...], "part3": [...]}`` (optionally nested under the dataset name).
- **Validation split**: whole subjects carved from the *training* subjects (seeded), for model selection without
  looking at the test fold.
- **Class weights** (ME-GraphAU/JAA-Net, reference C.4): r_j = positives_j / known_j over the training frames,
  w_j = U · (1/r_j) / Σ_k (1/r_k), so Σ w = U.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from auspread.aus import canonical_dataset_name
from auspread.errors import ConfigError, DataError

NUM_FOLDS = 3


@lru_cache(maxsize=1)
def _folds_data() -> dict:
    return json.loads(resources.files("auspread.resources").joinpath("folds.json").read_text())


def fold_test_part(fold: int) -> int:
    """The part fold ``fold`` tests on (from folds.json: fold k → part 4 − k)."""
    if fold not in range(1, NUM_FOLDS + 1):
        raise ConfigError(f"fold must be 1, 2 or 3, got {fold}")
    return int(_folds_data()["folds"][str(fold)]["test"].removeprefix("part"))


def standard_parts(dataset: str) -> dict[int, tuple[str, ...]] | None:
    """``{1: subjects, 2: …, 3: …}`` of the standard split, or None if the dataset has none (BP4D+, generic)."""
    try:
        canon = canonical_dataset_name(dataset)
    except KeyError:
        return None
    d = _folds_data().get(canon)
    if d is None:
        return None
    return {k: tuple(d[f"part{k}"]) for k in range(1, NUM_FOLDS + 1)}


def load_folds_file(path: str | Path, dataset: str | None = None) -> dict[int, tuple[str, ...]]:
    """A user folds file: ``{"part1": [...], "part2": [...], "part3": [...]}`` or that under a dataset key."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "folds file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"is not valid JSON ({e})") from None
    if dataset is not None and isinstance(d, dict) and "part1" not in d:
        for key in (dataset, dataset.upper()):
            if key in d:
                d = d[key]
                break
    if not isinstance(d, dict) or any(f"part{k}" not in d for k in range(1, NUM_FOLDS + 1)):
        raise DataError(path, 'must hold "part1", "part2" and "part3" subject lists')
    parts = {k: tuple(str(s) for s in d[f"part{k}"]) for k in range(1, NUM_FOLDS + 1)}
    seen: dict[str, int] = {}
    for k, subs in parts.items():
        for s in subs:
            if s in seen:
                raise DataError(path, f"subject {s} is in part{seen[s]} and part{k}")
            seen[s] = k
    return parts


def hash_parts(subjects: list[str] | tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """Deterministic 3-way subject split: sort by SHA-256 of the id, deal round-robin to parts 1, 2, 3."""
    ranked = sorted(set(subjects), key=lambda s: (hashlib.sha256(s.encode("utf-8")).hexdigest(), s))
    return {k: tuple(ranked[k - 1::NUM_FOLDS]) for k in range(1, NUM_FOLDS + 1)}


def subject_parts(dataset: str, subjects: list[str] | None = None, folds_file: str | Path | None = None) -> tuple[dict[str, int], str]:
    """``({subject: part}, source)`` with source ``"standard"``, ``"file"``, ``"hash"`` or ``"standard+hash"``.

    Subjects in the standard (or user) lists keep their part; any others are split by :func:`hash_parts`.
    """
    if folds_file is not None:
        parts, source = load_folds_file(folds_file, dataset), "file"
    else:
        parts, source = standard_parts(dataset), "standard"
    known = {s: k for k, subs in (parts or {}).items() for s in subs}
    if subjects is None:
        if not known:
            raise ConfigError(f"{dataset} has no standard folds: pass the subjects (or a folds file)")
        return known, source
    out = {s: known[s] for s in subjects if s in known}
    extra = [s for s in subjects if s not in known]
    if extra:
        for k, subs in hash_parts(extra).items():
            for s in subs:
                out[s] = k
        source = "hash" if len(extra) == len(set(subjects)) else f"{source}+hash"
    return {s: out[s] for s in dict.fromkeys(subjects)}, source


def fold_subjects(dataset: str, fold: int, subjects: list[str] | None = None,
                  folds_file: str | Path | None = None) -> tuple[list[str], list[str]]:
    """``(train, test)`` subjects of fold ``fold`` (1–3): test = part 4 − k, train = the other two parts.

    With ``subjects`` (e.g. ``index.subjects()``) the result is restricted to them, in their order; subjects outside
    the standard lists are placed by the hash split. Raises if the train or test side would be empty.
    """
    part = fold_test_part(fold)
    parts, _ = subject_parts(dataset, subjects, folds_file)
    train = [s for s, k in parts.items() if k != part]
    test = [s for s, k in parts.items() if k == part]
    if not train or not test:
        raise DataError(dataset, f"fold {fold} would have {len(train)} training and {len(test)} test subjects "
                                 f"({len(parts)} subjects in all; at least 2 are needed, 3 for every fold)")
    return train, test


def validation_split(train_subjects: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(train, val)``: ``round(fraction · n)`` whole subjects (at least 1 if fraction > 0, at most n − 1) chosen
    by a seeded permutation of the sorted subject ids; both lists keep the input order."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction}")
    subs = list(dict.fromkeys(train_subjects))
    if fraction == 0 or len(subs) < 2:
        if fraction > 0:
            raise DataError("subjects", f"cannot hold out validation subjects from {len(subs)} training subject(s)")
        return subs, []
    n_val = min(max(1, round(fraction * len(subs))), len(subs) - 1)
    order = np.random.default_rng(seed).permutation(len(subs))
    chosen = {sorted(subs)[i] for i in order[:n_val]}
    return [s for s in subs if s not in chosen], [s for s in subs if s in chosen]


def class_weights(labels: np.ndarray, min_rate: float = 0.02) -> np.ndarray:
    """Per-AU loss weights ``(U,)`` float64 from training labels ``(N, U)`` in {−1, 0, 1} (−1 ignored).

    r_j = (#frames with AU j = 1) / (#frames with AU j known); w_j = U · (1/r_j) / Σ_k (1/r_k) (reference C.4,
    ME-GraphAU/JAA-Net). Guards (ME-GraphAU divides by zero there):
    - r_j is floored at ``min_rate`` (default 0.02, below every real BP4D/DISFA training rate, the lowest being
      DISFA AU2 at 0.023, so the published weights are unchanged). Under sparse labels an AU can have no or a
      handful of positives among the kept labels; without the floor its weight would dwarf every other AU's and
      stall learning (measured on the `tiny` preset: 5.4 against about 0.02).
    - no known label for AU j: w_j = 0 and the other weights are normalised to sum to the number of AUs that
      have known labels.
    """
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be (N, U), got shape {y.shape}")
    known = (y >= 0).sum(0).astype(np.float64)
    pos = (y == 1).sum(0).astype(np.float64)
    has = known > 0
    if not has.any():
        raise DataError("labels", "no known label for any AU: class weights are undefined")
    rate = np.where(has, np.maximum(pos / np.maximum(known, 1.0), min_rate), np.nan)
    inv = np.where(has, 1.0 / rate, 0.0)
    return has.sum() * inv / inv.sum()
