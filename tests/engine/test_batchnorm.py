"""optim.freeze_bn and optim.sync_bn: BatchNorm options of the engine that apply to every method."""

import pytest
import torch
from engine_fakes import FakeBatches, config, info
from torch import nn

from auspread.engine.config import OptimConfig
from auspread.engine.distributed import DistInfo
from auspread.engine.loop import Trainer, configure_batchnorm, seed_everything
from auspread.engine.run import build_method
from auspread.errors import ConfigError
from tests.methods.test_contract import _method, _package_methods

CPU = torch.device("cpu")
TWO = DistInfo(rank=0, world_size=2)


def _bns(m: nn.Module) -> list[nn.Module]:
    return [x for x in m.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("name", _package_methods())
def test_freeze_bn_keeps_every_batchnorm_of_any_method_on_running_statistics(name):
    m = _method(name)
    configure_batchnorm(m, OptimConfig(freeze_bn=True), DistInfo(), CPU)
    m.train()
    bns = _bns(m)
    assert bns and all(not b.training for b in bns)
    assert any(x.training for x in m.modules() if not isinstance(x, nn.modules.batchnorm._BatchNorm))
    m.eval().train()  # the engine's validation switches modes between epochs: the layers stay frozen
    assert all(not b.training for b in _bns(m))


def test_trainer_with_freeze_bn_leaves_running_statistics_untouched(tmp_path):
    cfg = config(tmp_path, "optim.freeze_bn=true", "optim.epochs=1")  # supervised, method.freeze_bn=false
    seed_everything(cfg.seed)
    method = build_method(cfg, info(32))
    before = {k: v.clone() for k, v in method.state_dict().items() if "running_" in k}
    moved = {k: v.clone() for k, v in method.state_dict().items() if k.endswith("weight")}
    Trainer(cfg, method, FakeBatches(), None, tmp_path / "r", CPU, progress=False).fit()
    after = method.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    assert any(not torch.equal(v, after[k]) for k, v in moved.items())  # the weights did train


@pytest.mark.parametrize("name", _package_methods())
def test_sync_bn_converts_every_batchnorm_of_any_method(name):
    """With several CUDA processes every BatchNorm layer (teachers and copies included) becomes a SyncBatchNorm
    with the same parameters and state-dict keys; the CUDA device is named, not used: conversion moves nothing."""
    m = _method(name)
    params = list(m.parameters())
    state = {k: v.clone() for k, v in m.state_dict().items()}
    n = len(_bns(m))
    configure_batchnorm(m, OptimConfig(sync_bn=True), TWO, torch.device("cuda"))
    bns = _bns(m)
    assert n > 0 and len(bns) == n and all(isinstance(b, nn.SyncBatchNorm) for b in bns)
    assert all(a is b for a, b in zip(params, m.parameters()))  # optimisers and EMA see the same tensors
    after = m.state_dict()
    assert list(after) == list(state) and all(torch.equal(v, after[k]) for k, v in state.items())
    m.eval()  # eval mode synchronises nothing: inference runs without a process group
    assert m.predict_frames(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_sync_bn_with_one_process_changes_nothing():
    m = _method("supervised")
    configure_batchnorm(m, OptimConfig(sync_bn=True), DistInfo(), torch.device("cuda"))
    assert not any(isinstance(b, nn.SyncBatchNorm) for b in m.modules())


def test_sync_bn_refuses_cpu_processes_and_freeze_bn_together():
    with pytest.raises(ConfigError, match="needs CUDA devices.*optim.freeze_bn=true"):
        configure_batchnorm(_method("supervised"), OptimConfig(sync_bn=True), TWO, CPU)
    with pytest.raises(ConfigError, match="contradict"):
        configure_batchnorm(_method("supervised"), OptimConfig(sync_bn=True, freeze_bn=True), DistInfo(), CPU)



def test_training_refuses_sync_bn_on_cpu_processes_before_any_work(tmp_path, monkeypatch):
    from auspread.engine import distributed
    from auspread.engine.run import run_training

    monkeypatch.setattr(distributed, "init_distributed", lambda device: TWO)
    cfg = config(tmp_path / "runs", "optim.sync_bn=true", "device=cpu")
    with pytest.raises(ConfigError, match="optim.sync_bn=true needs CUDA devices"):
        run_training(cfg, progress=False)
    assert not (tmp_path / "runs").exists()
