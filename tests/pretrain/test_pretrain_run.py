"""``auspread pretrain`` end to end on the synthetic ``tiny`` preset at 32 px: the loss falls, only training
subjects are used, a killed run resumes to the same weights (explicitly and as a cache entry), the cache is reused,
the linear probe and the CLI work, and ``pretrained=pretrain:<recipe>`` trains a method from the trunk."""

import json

import numpy as np
import pytest
import torch

from auspread.engine.checkpoint import load_checkpoint
from auspread.engine.config import load_config
from auspread.engine.loop import TrainHooks
from auspread.errors import ConfigError
from auspread.pretrain import run as prun
from auspread.pretrain.byol import make_trunk
from auspread.pretrain.config import cache_name, load_pretrain_config
from auspread.pretrain.run import TRUNK, linear_probe, read_trunk, run_pretrain

FAST = ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=2", "optim.steps_per_epoch=3",
        "optim.batch_size=8", "recipe.proj_hidden=64", "recipe.proj_dim=32", "recipe.frames_per_video=4",
        "threads=1"]


class Killed(Exception):
    pass


def _kill_at(n):
    def hook(step):
        if step == n:
            raise Killed

    return TrainHooks(after_step=hook)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(prun, "cache_dir", lambda: d)
    return d


def test_tiny_pretraining_loss_falls_on_training_subjects_only(tmp_path):
    cfg = load_pretrain_config(None, [f"out_dir={tmp_path}", "name=quick", "threads=1"], quick=True)
    s = run_pretrain(cfg, progress=False)
    assert s.steps == 24 and not s.cached
    assert s.loss_last < s.loss_first - 0.2, [h["loss"] for h in s.history]
    assert all(h["z_std"] > 0.02 for h in s.history)  # not collapsed
    meta = read_trunk(s.trunk)
    data = json.loads((s.run_dir / "data.json").read_text())
    assert meta["subjects"] == data["subjects"]["train"]
    assert not set(meta["subjects"]) & set(data["subjects"]["val"] + data["subjects"]["test"])
    assert (meta["arch"], meta["image_size"], meta["fold"]) == ("resnet18", 32, 1)
    assert meta["recipe"]["objective"] == "simclr" and meta["recipe"]["frames_per_video"] == 4 and meta["steps"] == 24
    make_trunk("resnet18").load_state_dict(meta["state_dict"])  # complete torchvision trunk
    assert not (s.run_dir / "checkpoints" / "best.pt").exists()
    r = linear_probe(load_pretrain_config(None, ["data.labels=5%", "threads=1", "probe.steps=20"], quick=True), s.trunk)
    assert 0.0 <= r.f1 <= 1.0 and r.split == "val" and r.train_frames > 0 and r.trunk == str(s.trunk)


def test_byol_with_temporal_positives_loss_falls_and_a_bad_group_size_is_refused(tmp_path):
    over = [f"out_dir={tmp_path}", "name=byol", "threads=1", "recipe.objective=byol", "recipe.temporal_offset=4",
            "recipe.frames_per_video=1"]
    s = run_pretrain(load_pretrain_config(None, over, quick=True), progress=False)
    assert s.steps == 24 and s.loss_last < s.loss_first - 0.3, [h["loss"] for h in s.history]
    assert all(h["z_std"] > 0.02 for h in s.history)  # not collapsed
    assert read_trunk(s.trunk)["recipe"]["objective"] == "byol"
    bad = load_pretrain_config(None, [f"out_dir={tmp_path}", "name=bad", "recipe.frames_per_video=5"], quick=True)
    with pytest.raises(ConfigError, match="16 frames, not a multiple of recipe.frames_per_video=5"):
        run_pretrain(bad, progress=False)


def _same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_killed_then_resumed_equals_uninterrupted(tmp_path, cache):
    full = run_pretrain(load_pretrain_config(None, [*FAST, f"out_dir={tmp_path}", "name=full"]), progress=False)
    with pytest.raises(Killed):
        run_pretrain(load_pretrain_config(None, [*FAST, f"out_dir={tmp_path}", "name=killed"]), progress=False,
                     hooks=_kill_at(5))
    killed = tmp_path / "killed"
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"] == 1 and not (killed / TRUNK).exists()
    torch.manual_seed(123)
    np.random.seed(9)
    resumed = run_pretrain(load_pretrain_config(None, ["optim.lr=5"]), progress=False, resume=killed)
    assert resumed.run_dir == killed and resumed.steps == 6
    a, b = load_checkpoint(full.run_dir / "checkpoints" / "last.pt"), load_checkpoint(killed / "checkpoints" / "last.pt")
    assert _same_weights(a["model"], b["model"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert _same_weights(read_trunk(full.trunk)["state_dict"], read_trunk(resumed.trunk)["state_dict"])
    with pytest.raises(Exception, match="already finished"):
        run_pretrain(load_pretrain_config(None, []), progress=False, resume=killed)

    # a cache entry (out_dir unset) resumes by running the same config again, then is reused as is
    cfg = load_pretrain_config(None, FAST)
    with pytest.raises(Killed):
        run_pretrain(cfg, progress=False, hooks=_kill_at(4))
    entry = cache / cache_name(cfg)
    assert (entry / "checkpoints" / "last.pt").is_file() and not (entry / TRUNK).exists()
    again = run_pretrain(cfg, progress=False)
    assert again.run_dir == entry and not again.cached and again.steps == 6
    assert _same_weights(read_trunk(full.trunk)["state_dict"], read_trunk(again.trunk)["state_dict"])
    hit = run_pretrain(cfg, progress=False)
    assert hit.cached and hit.trunk == entry / TRUNK and hit.steps == 6


def test_pretrain_recipe_then_train_a_method_from_it(tmp_path, cache):
    from auspread.engine.run import run_training

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("recipe: {proj_hidden: 64, proj_dim: 32}\noptim: {epochs: 1, steps_per_epoch: 2, batch_size: 8}\n")
    cfg = load_config(None, ["data.synth_preset=tiny", "data.image_size=32", "optim.epochs=1", "optim.batch_size=8",
                             "optim.steps_per_epoch=2", "threads=1", f"out_dir={tmp_path}", "name=sup",
                             f"pretrained=pretrain:{recipe}"])
    s = run_training(cfg, progress=False)
    entries = [d for d in cache.iterdir() if d.is_dir()]  # (beside each entry: its .lock file)
    assert len(entries) == 1 and (entries[0] / TRUNK).is_file()
    saved = load_checkpoint(s.run_dir / "checkpoints" / "last.pt")["config"]
    assert saved["pretrained"] == str(entries[0] / TRUNK)  # the run records the exact trunk it started from


def test_cli_quick_with_probe_and_bad_override(tmp_path, cache):
    from typer.testing import CliRunner

    from auspread.cli import app

    res = CliRunner().invoke(app, ["pretrain", "--quick", "--probe", "--labels", "5%", "-q", "threads=1",
                                   "optim.epochs=1", "optim.steps_per_epoch=2", "probe.steps=5"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()  # stdout only: a one-time precision notice goes to stderr
    assert lines[-1].endswith(TRUNK) and "linear probe at labels every:20" in res.output and "random weights" in res.output
    (entry,) = [d for d in cache.iterdir() if d.is_dir()]
    probe = json.loads((entry / "probe.json").read_text())
    assert set(probe) == {"pretrained", "random"} and probe["random"]["trunk"] is None
    assert "ROC-AUC" in res.output and all(0.0 <= probe[k]["roc_auc"] <= 1.0 for k in probe)  # threshold-free readout
    again = CliRunner().invoke(app, ["pretrain", "--quick", "-q", "threads=1", "optim.epochs=1", "optim.steps_per_epoch=2"])
    assert again.exit_code == 0 and "cached trunk" in again.output
    bad = CliRunner().invoke(app, ["pretrain", "--quick", "recipe.objective=mae"])
    assert bad.exit_code != 0 and "recipe.objective" in str(bad.exception)


def test_a_second_process_waits_for_the_same_cache_entry_then_reuses_it(cache):
    import fcntl
    import threading

    cfg = load_pretrain_config(None, FAST)
    entry = cache / cache_name(cfg)
    entry.mkdir(parents=True)
    out = {}
    with open(cache / f"{cache_name(cfg)}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # "another process" is pretraining this entry
        t = threading.Thread(target=lambda: out.update(s=run_pretrain(cfg, progress=False)))
        t.start()
        t.join(1.0)
        assert t.is_alive() and entry.is_dir()  # waiting, and it did not wipe the other's folder
        prun.write_trunk(entry / TRUNK, cfg, make_trunk("resnet18").state_dict(), dataset="BP4D", subjects=[], steps=6)
        (entry / "summary.json").write_text(json.dumps({"epochs": 2, "steps": 6, "train_seconds": 1.0,
                                                        "loss_first": 3.0, "loss_last": 2.0, "precision": "off"}))
        fcntl.flock(f, fcntl.LOCK_UN)
    t.join(60)
    assert out["s"].cached and out["s"].trunk == entry / TRUNK


@pytest.mark.slow
def test_two_process_torchrun(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--node_rank=0",
           "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "auspread", "pretrain", "-q", *FAST,
           f"out_dir={tmp_path}", "name=ddp"]
    p = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == str(tmp_path / "ddp" / TRUNK)  # rank 0 prints, once
    state = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert state["step"] == 6 and state["world_size"] == 2
    assert json.loads((tmp_path / "ddp" / "data.json").read_text())["world_size"] == 2
    assert read_trunk(tmp_path / "ddp" / TRUNK)["steps"] == 6
