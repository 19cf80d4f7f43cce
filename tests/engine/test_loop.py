import json
import math

import pytest
import torch

from engine_fakes import FakeBatches, config, info, make_validate

from auspread.engine.checkpoint import load_checkpoint
from auspread.engine.config import build_config, config_to_dict, dump_yaml, load_config
from auspread.engine.loop import LRSchedule, Trainer, TrainHooks, seed_everything
from auspread.engine.run import build_method
from auspread.errors import RunError


class Killed(Exception):
    pass


def _trainer(cfg, run_dir, hooks=None):
    seed_everything(cfg.seed)
    m = build_method(cfg, info(32))
    return Trainer(cfg, m, FakeBatches(), make_validate(), run_dir, torch.device("cpu"), progress=False,
                   checkpoint_extra={"config": config_to_dict(cfg)}, hooks=hooks)


def test_resume_after_a_kill_is_bit_identical(tmp_path):
    cfg = config(tmp_path, "optim.epochs=3", "optim.ema=0.9")
    full = _trainer(cfg, tmp_path / "a")
    full.fit()
    # killed during epoch 2 (after 8 of 6+6+6 steps), then resumed from last.pt (end of epoch 1)
    def kill(step):
        if step == 8:
            raise Killed

    with pytest.raises(Killed):
        _trainer(cfg, tmp_path / "b", TrainHooks(after_step=kill)).fit()
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["step"] == 6
    resumed = _trainer(cfg, tmp_path / "b")
    torch.manual_seed(999)  # whatever happened in between, the checkpoint's RNG state is restored
    resumed.fit(state)
    a, b = full.method.state_dict(), resumed.method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea, eb = full.ema.state_dict(), resumed.ema.state_dict()
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert full.best_epoch == resumed.best_epoch
    # metrics.jsonl reads as one run: no records of the killed part of epoch 2 survive
    recs = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == sorted(steps) and steps == list(range(1, 19))


def test_best_checkpoint_follows_validation_f1(tmp_path):
    cfg = config(tmp_path, "optim.epochs=3")
    t = _trainer(cfg, tmp_path / "r")
    res = t.fit()
    f1s = [h["val_f1"] for h in t.history]
    assert res.best_epoch == 1 + max(range(3), key=lambda i: f1s[i])
    best = load_checkpoint(tmp_path / "r" / "checkpoints" / "best.pt")
    assert best["epoch"] == res.best_epoch and best["best"]["val_f1"] == pytest.approx(max(f1s))
    assert (tmp_path / "r" / "tb").is_dir() and any((tmp_path / "r" / "tb").iterdir())
    # best.pt carries what evaluation and warm starts need, not the optimiser state only resuming (last.pt) needs
    last = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert "optimizers" in last and "optimizers" not in best and "scaler" not in best
    assert {"model", "epoch", "best", "history"} <= set(best)


def test_config_roundtrip_yaml_and_checkpoint(tmp_path):
    cfg = load_config(None, ["method.name=supervised", "method.dropout=0.25", "data.labels=5%", "optim.lr=0.003",
                             "optim.amp=bf16", "data.augment.flip=false", f"out_dir={tmp_path}"])
    y = tmp_path / "c.yaml"
    y.write_text(dump_yaml(cfg))
    assert load_config(y) == cfg
    t = _trainer(config(tmp_path, "optim.epochs=1", "method.dropout=0.25"), tmp_path / "r")
    t.fit()
    back = build_config(load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")["config"])
    assert back == t.cfg and back.method.dropout == 0.25 and cfg.data.labels.every == 20
    # YAML reads `off` as false: the CLI spelling optim.amp=off must still mean "off"
    assert load_config(None, ["optim.amp=off"]).optim.amp == "off"
    # method options without a name, or a method given by name then refined, both work
    assert load_config(None, ["method.dropout=0.5"]).method.dropout == 0.5


@pytest.mark.parametrize("kind", ["cosine", "constant", "step"])
def test_lr_schedules_with_warmup(kind):
    cfg = load_config(None, [f"optim.schedule={kind}", "optim.epochs=4", "optim.warmup_epochs=1", "optim.lr=0.1"]).optim
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    s = LRSchedule(cfg, 10, [opt])
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        s.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)  # linear warm-up over 10 steps
    if kind == "cosine":
        assert lrs[10] == pytest.approx(0.1) and lrs[25] == pytest.approx(0.05) and lrs[39] < 0.001
    elif kind == "constant":
        assert all(l == pytest.approx(0.1) for l in lrs[10:])
    else:  # ×0.1 at epochs 2 and 3
        assert lrs[19] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.01) and lrs[30] == pytest.approx(0.001)


def test_nan_loss_is_a_clear_error(tmp_path):
    t = _trainer(config(tmp_path, "optim.lr=1e30", "optim.schedule=constant", "optim.epochs=3"), tmp_path / "r")
    with pytest.raises(RunError, match="training loss is"):
        t.fit()


def test_bf16_autocast_trains(tmp_path):
    t = _trainer(config(tmp_path, "optim.amp=bf16", "optim.epochs=1"), tmp_path / "r")
    r = t.fit()
    assert r.steps == 6 and math.isfinite(t.history[-1]["loss"])


@pytest.mark.parametrize("name, extra", [("adamw", {"weight_decay": 1e-2}), ("adam", {}), ("sgd", {"momentum": 0.9})])
def test_fused_optimiser_is_used_and_updates_like_the_unfused_one(name, extra):
    """optim.fused (default) picks torch's fused kernel; five steps of it equal the for-loop kernel's to float
    rounding, with two parameter groups at different learning rates (one given as a generator)."""
    from auspread.engine.config import OptimConfig
    from auspread.engine.loop import optimizer_factory

    def run(fused: bool) -> tuple[torch.optim.Optimizer, torch.Tensor]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        groups = [{"params": net[0].parameters()}, {"params": list(net[2].parameters()), "lr_scale": 0.5}]
        opt = optimizer_factory(OptimConfig(optimizer=name, lr=0.05, fused=fused, **extra))(groups)
        x, y = torch.randn(16, 6), torch.randn(16, 3)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
        return opt, torch.cat([p.detach().flatten() for p in net.parameters()])

    fused_opt, fused_w = run(True)
    plain_opt, plain_w = run(False)
    assert fused_opt.defaults["fused"] is True and not plain_opt.defaults.get("fused")
    assert [g["lr"] for g in fused_opt.param_groups] == [0.05, 0.025]
    assert len(fused_opt.param_groups[0]["params"]) == 2  # the generator was read, not consumed empty
    torch.testing.assert_close(fused_w, plain_w, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    start = torch.nn.Linear(6, 5).weight.detach()
    assert not torch.allclose(fused_w[:30], start.flatten())  # the steps moved the weights
