"""Validation subjects are labelled at the training ratio by the same key-frame rule (``data.val_labels=ratio``,
the default) or keep every label (``data.val_labels=all``); both label counts are recorded in ``summary.json``."""

import json

import numpy as np
import pytest
import yaml

import auspread.engine.run as R
from auspread.data.labels import sparsify
from auspread.engine.config import DataConfig, load_config, saved_run_config
from auspread.engine.data import Splits, validation_labels
from auspread.engine.run import run_training
from tests.data.test_labels import make_index


def _labelled(index) -> int:
    return int(sum((v.labels >= 0).any(axis=1).sum() for v in index.videos))


def test_validation_subjects_take_the_training_key_frame_rule():
    train, val = make_index([40, 33], seed=1), make_index([50, 27, 9], seed=2)
    splits = Splits(train, val, make_index([20], seed=3))
    dc = DataConfig(labels="20%", label_seed=4)
    seen = validation_labels(splits, dc).val
    expect = sparsify(val, 5, 4).index
    assert [v.video_id for v in seen.videos] == [v.video_id for v in val.videos]  # same videos: stores stay valid
    for a, b in zip(seen.videos, expect.videos):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert _labelled(seen) == len(sparsify(val, 5, 4).key_frames) < _labelled(val)
    assert validation_labels(splits, DataConfig(labels="20%", val_labels="all")).val is val
    on_test = Splits(train, splits.test, splits.test, val_is_test=True)  # data.select_on=test: the test fold
    assert validation_labels(on_test, dc).val is splits.test


def test_a_saved_config_without_the_option_ran_with_every_validation_label():
    assert DataConfig().val_labels == "ratio"
    assert saved_run_config({"data": {"fold": 2}})["data"] == {"fold": 2, "val_labels": "all"}
    assert saved_run_config({"data": {"val_labels": "ratio"}})["data"]["val_labels"] == "ratio"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ratio", "all"])
def test_training_selects_on_the_chosen_validation_labels(tmp_path, monkeypatch, mode):
    seen = []
    real = R.evaluate_split

    def spying(method, store, index, *a, **k):
        seen.append((k.get("desc"), _labelled(index)))
        return real(method, store, index, *a, **k)

    monkeypatch.setattr(R, "evaluate_split", spying)
    cfg = load_config(None, ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=1", "optim.batch_size=8",
                             "optim.steps_per_epoch=1", "threads=1", "data.labels=20%", f"data.val_labels={mode}",
                             f"out_dir={tmp_path}", "name=r"])
    s = run_training(cfg, progress=False)
    lab = json.loads((tmp_path / "r" / "results" / "summary.json").read_text())["labels"]
    assert lab == s.labels == json.loads((tmp_path / "r" / "data.json").read_text())["labels"]
    assert lab["val_labels"] == mode and lab["requested"] == "every:5 (~20%)"
    assert 0 < lab["key_frames"] < lab["train_labelled_frames"] <= lab["train_frames"]
    assert lab["ratio_used"] == pytest.approx(lab["key_frames"] / lab["train_labelled_frames"])
    assert 0.15 < lab["ratio_used"] < 0.25
    assert 0 < lab["val_labelled_frames"] <= lab["val_frames"]
    validations = [n for desc, n in seen if desc != "test"]
    assert validations and all(n == lab["val_labelled_frames_seen"] for n in validations)
    if mode == "all":
        assert lab["val_labelled_frames_seen"] == lab["val_labelled_frames"]
    else:
        assert 0.15 < lab["val_labelled_frames_seen"] / lab["val_labelled_frames"] < 0.25
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["data"]["val_labels"] == mode
