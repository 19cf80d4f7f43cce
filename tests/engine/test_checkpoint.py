import random

import numpy as np
import pytest
import torch

from auspread.engine import checkpoint as C
from auspread.errors import RunError


def test_save_load_weights_only_roundtrip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "config": {"a": 1, "b": [1, 2], "c": None}, "epoch": 3}
    p = C.save_checkpoint(tmp_path / "ck" / "last.pt", state)
    assert torch.load(p, weights_only=True)["epoch"] == 3  # plain data: loadable without pickled code
    back = C.load_checkpoint(p)
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["config"] == state["config"]


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    C.save_checkpoint(p, {"epoch": 1, "model": {"w": torch.ones(1000)}})
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        with open(f, "wb") as fh:  # half a file, then the "crash"
            fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        C.save_checkpoint(p, {"epoch": 2, "model": {"w": torch.zeros(1000)}})
    monkeypatch.setattr(torch, "save", real_save)
    back = C.load_checkpoint(p)
    assert back["epoch"] == 1 and torch.equal(back["model"]["w"], torch.ones(1000))
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_truncated_or_foreign_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="not a readable checkpoint"):
        C.load_checkpoint(bad)
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(RunError, match="not an auspread checkpoint"):
        C.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(RunError, match="not found"):
        C.load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_roundtrip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    C.save_checkpoint(tmp_path / "r.pt", {"rng": C.rng_state()})
    a = (random.random(), np.random.randn(), torch.rand(3))
    C.set_rng_state(C.load_checkpoint(tmp_path / "r.pt")["rng"])
    b = (random.random(), np.random.randn(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
