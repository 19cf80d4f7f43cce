import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auspread.data.folds import (
    class_weights,
    fold_subjects,
    fold_test_part,
    hash_parts,
    standard_parts,
    subject_parts,
    validation_split,
)
from auspread.errors import ConfigError, DataError

# reference C.4 (ME-GraphAU weight files, fold 1) and the fold-1 training occurrence rates
BP4D_RATES_F1 = [.184, .146, .198, .440, .571, .567, .540, .457, .176, .342, .166, .148]
BP4D_W_F1 = [1.342985, 1.689665, 1.248091, 0.561356, 0.433044, 0.435894, 0.457287, 0.541004, 1.408054, 0.722762,
             1.493145, 1.666711]
DISFA_RATES_F1 = [.038, .023, .135, .068, .029, .123, .276, .104]
DISFA_W_F1 = [1.422290, 2.347771, 0.399672, 0.795021, 1.878217, 0.440125, 0.195583, 0.521322]


@pytest.mark.parametrize("dataset,sizes", [("BP4D", (14, 14, 13)), ("DISFA", (9, 9, 9))])
def test_standard_parts_partition_subjects(dataset, sizes):
    parts = standard_parts(dataset)
    assert tuple(len(parts[k]) for k in (1, 2, 3)) == sizes
    everyone = [s for k in (1, 2, 3) for s in parts[k]]
    assert len(everyone) == len(set(everyone)) == sum(sizes)
    for fold in (1, 2, 3):
        train, test = fold_subjects(dataset, fold)
        assert set(test) == set(parts[4 - fold])  # fold k tests part 4 − k
        assert set(train) | set(test) == set(everyone) and not set(train) & set(test)
    # every subject is tested exactly once over the 3 folds
    tested = [s for f in (1, 2, 3) for s in fold_subjects(dataset, f)[1]]
    assert sorted(tested) == sorted(everyone)


def test_known_memberships_and_part_mapping():
    assert [fold_test_part(k) for k in (1, 2, 3)] == [3, 2, 1]
    assert "F007" in fold_subjects("bp4d", 1)[1] and "F001" in fold_subjects("BP4D", 3)[1]
    assert "SN010" in fold_subjects("disfa", 3)[1] and "SN003" in fold_subjects("DISFA", 1)[1]
    with pytest.raises(ConfigError):
        fold_test_part(4)


def test_restricted_to_given_subjects_in_their_order():
    subs = ["F007", "F001", "M011", "F015"]
    train, test = fold_subjects("BP4D", 1, subs)
    assert train == ["F001", "M011"] and test == ["F007", "F015"]
    with pytest.raises(DataError, match="fold 2 would have 4 training and 0 test"):
        fold_subjects("BP4D", 2, ["F007", "F001", "F018", "F015"])


def test_hash_split_is_deterministic_balanced_and_order_free():
    subs = [f"person{i}" for i in range(10)]
    a, b = hash_parts(subs), hash_parts(subs[::-1])
    assert a == b
    assert sorted(len(v) for v in a.values()) == [3, 3, 4]
    assert sorted(s for v in a.values() for s in v) == sorted(subs)
    parts, source = subject_parts("generic", subs)
    assert source == "hash" and parts == {s: k for k, v in a.items() for s in v}
    for fold in (1, 2, 3):
        train, test = fold_subjects("generic", fold, subs)
        assert set(test) == set(a[4 - fold]) and set(train) == set(subs) - set(test)
    # mixed: standard subjects keep their part, others are hashed
    parts, source = subject_parts("BP4D", ["F001", "F007", "X1", "X2", "X3"])
    assert source == "standard+hash" and parts["F001"] == 1 and parts["F007"] == 3
    assert sorted(parts[x] for x in ("X1", "X2", "X3")) == [1, 2, 3]
    with pytest.raises(ConfigError, match="no standard folds"):
        fold_subjects("generic", 1)


def test_user_folds_file(tmp_path):
    f = tmp_path / "folds.json"
    f.write_text(json.dumps({"mine": {"part1": ["a"], "part2": ["b", "c"], "part3": ["d"]}}))
    train, test = fold_subjects("mine", 2, ["a", "b", "c", "d"], folds_file=f)
    assert train == ["a", "d"] and test == ["b", "c"]
    f.write_text(json.dumps({"part1": ["a"], "part2": ["a"], "part3": []}))
    with pytest.raises(DataError, match="subject a is in part1 and part2"):
        fold_subjects("x", 1, ["a"], folds_file=f)
    with pytest.raises(DataError, match="folds file does not exist"):
        fold_subjects("x", 1, ["a"], folds_file=tmp_path / "none.json")


def test_validation_split_whole_training_subjects_seeded():
    train, _ = fold_subjects("BP4D", 1)
    tr, val = validation_split(train, 0.2, seed=0)
    assert len(val) == round(0.2 * len(train)) == 6
    assert set(tr) | set(val) == set(train) and not set(tr) & set(val)
    assert tr == [s for s in train if s in set(tr)]  # input order kept
    assert validation_split(train, 0.2, seed=0) == (tr, val)
    assert validation_split(list(reversed(train)), 0.2, seed=0)[1] == [s for s in reversed(train) if s in set(val)]
    assert len({tuple(validation_split(train, 0.2, seed=s)[1]) for s in range(10)}) > 1
    assert validation_split(["a", "b"], 0.9, seed=1)[1] != [] and len(validation_split(["a", "b"], 0.9, 1)[0]) == 1
    assert validation_split(train, 0.0, seed=0) == (train, [])
    with pytest.raises(DataError):
        validation_split(["a"], 0.2, seed=0)
    with pytest.raises(ConfigError):
        validation_split(train, 1.0, seed=0)


def test_class_weights_hand_computed():
    y = np.array([[1, 0, -1], [0, 0, 1], [0, 1, 1], [0, -1, -1]], dtype=np.int8)
    # r = [1/4, 1/3, 2/2]; 1/r = [4, 3, 1]; w = 3 * [4, 3, 1] / 8
    np.testing.assert_allclose(class_weights(y), [1.5, 1.125, 0.375])
    assert class_weights(y).sum() == pytest.approx(3)


def test_class_weights_guards():
    y = np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1], [0, 0, -1]], dtype=np.int8)
    # AU2 never present: r floored at min_rate 0.02; AU3 never known: weight 0, the others sum to 2
    w = class_weights(y)
    inv = np.array([2.0, 50.0])
    np.testing.assert_allclose(w[:2], 2 * inv / inv.sum())
    # the floor bounds the largest weight ratio at (1 / min_rate) / (1 / r_max)
    np.testing.assert_allclose(class_weights(y, min_rate=0.1)[:2], 2 * np.array([2.0, 10.0]) / 12.0)
    assert w[2] == 0 and np.isfinite(w).all()
    with pytest.raises(DataError):
        class_weights(np.full((3, 2), -1, np.int8))


@pytest.mark.parametrize("rates,shipped", [(BP4D_RATES_F1, BP4D_W_F1), (DISFA_RATES_F1, DISFA_W_F1)])
def test_class_weights_reproduce_megraphau_fold1(rates, shipped):
    rates, shipped = np.array(rates), np.array(shipped)
    n = 100_000
    y = (np.arange(n)[:, None] < np.round(rates * n)[None, :]).astype(np.int8)
    y[::7, 0] = -1  # unknowns are ignored, not counted as negatives: AU1 keeps its rate among known frames
    known0 = y[:, 0] >= 0
    y[known0, 0] = (np.arange(known0.sum()) < round(rates[0] * known0.sum())).astype(np.int8)
    w = class_weights(y)
    # the rates are rounded to 3 decimals: first-order bound on the relative error of w_j
    tol = 0.0005 / rates + np.max(0.0005 / rates)
    assert (np.abs(w / shipped - 1) <= tol).all(), np.abs(w / shipped - 1)
    assert w.sum() == pytest.approx(len(rates))


@settings(max_examples=60, deadline=None)
@given(st.sets(st.text(min_size=1, max_size=6), min_size=3, max_size=30), st.integers(0, 2**31 - 1),
       st.floats(0.05, 0.9))
def test_split_properties(subjects, seed, fraction):
    subs = sorted(subjects)
    parts = hash_parts(subs)
    flat = [s for k in (1, 2, 3) for s in parts[k]]
    assert sorted(flat) == subs and max(map(len, parts.values())) - min(map(len, parts.values())) <= 1
    for fold in (1, 2, 3):
        train, test = fold_subjects("generic", fold, subs)
        assert sorted(train + test) == subs and set(test) == set(parts[4 - fold])
        tr, val = validation_split(train, fraction, seed)
        if len(train) >= 2:
            assert sorted(tr + val) == sorted(train) and 1 <= len(val) <= len(train) - 1
