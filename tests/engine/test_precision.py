"""optim.amp=auto picks the device's native precision; an explicit bf16 on an emulating CPU warns once."""

import os

import pytest
import torch

from engine_fakes import FakeBatches, config, info, make_validate

from auspread.engine import precision
from auspread.engine.config import config_to_dict
from auspread.engine.loop import Trainer, autocast_factory, seed_everything
from auspread.engine.run import build_method

CPU = torch.device("cpu")


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(precision, "_warned", set())


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "off")])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, fresh_warnings, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_amp("auto", CPU) == expected


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_on_cuda_is_bf16_from_compute_capability_8_else_fp16(monkeypatch, capability, expected):
    # torch.cuda.is_bf16_supported() answers True on V100/T4/2080 Ti too (emulated bf16): it must not decide
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    assert precision.resolve_amp("auto", torch.device("cuda")) == expected


def test_explicit_bf16_on_an_emulating_gpu_warns_once(monkeypatch, fresh_warnings, capsys):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert precision.resolve_amp("bf16", torch.device("cuda")) == "bf16"
    assert precision.resolve_amp("bf16", torch.device("cuda")) == "bf16"
    err = capsys.readouterr().err
    assert err.count("compute capability 7.5") == 1 and "fp16" in err
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 6))
    monkeypatch.setattr(precision, "_warned", set())
    assert precision.resolve_amp("bf16", torch.device("cuda")) == "bf16" and capsys.readouterr().err == ""


def test_predict_auto_precision_follows_the_same_gpu_rule(monkeypatch):
    from auspread.predict.runner import auto_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert auto_precision(torch.device("cuda")) == "off"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))
    assert auto_precision(torch.device("cuda")) == "bf16"


def test_fp16_trainer_gives_manual_methods_its_grad_scaler(tmp_path, monkeypatch):
    """On a GPU without native bf16 ``auto`` trains in fp16: the trainer makes a GradScaler and hands it to methods
    that optimise themselves (StepContext.scaler), which step through it."""
    from auspread.engine import loop
    from auspread.methods.base import StepOutput

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    monkeypatch.setattr(loop, "resolve_amp", lambda amp, device: precision.resolve_amp(amp, torch.device("cuda")))
    monkeypatch.setattr(loop, "autocast_factory", lambda amp, device: None)  # no CUDA autocast on this machine
    cfg = config(tmp_path, "optim.amp=auto", "optim.epochs=1")
    method = build_method(cfg, info(32))
    seen = []

    def manual_step(batch, ctx):
        seen.append(ctx.scaler)
        return StepOutput(None, {"loss": 0.0})

    monkeypatch.setattr(type(method), "manual_optimization", True)
    monkeypatch.setattr(method, "train_step", manual_step)
    with pytest.warns(UserWarning, match="CUDA is not available"):  # the CUDA GradScaler on a CPU-only machine
        t = Trainer(cfg, method, FakeBatches(), None, tmp_path / "r", CPU, progress=False)
    assert t.amp == "fp16" and isinstance(t.scaler, torch.amp.GradScaler)
    t.fit()
    assert seen and all(s is t.scaler for s in seen)


def test_explicit_values_are_kept(monkeypatch, fresh_warnings, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    for amp in ("off", "bf16"):
        assert precision.resolve_amp(amp, CPU) == amp
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="unknown amp"):
        precision.resolve_amp("fp8", CPU)


def test_emulated_bf16_warns_once(monkeypatch, fresh_warnings, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_amp("bf16", CPU) == "bf16"
    assert precision.resolve_amp("bf16", CPU) == "bf16"
    err = capsys.readouterr().err
    assert err.count("without native bf16") == 1 and "optim.amp=auto" in err


def test_probe_answers_a_bool():
    assert isinstance(precision.cpu_has_native_bf16(), bool)


def test_autocast_factory_resolves_auto(monkeypatch, fresh_warnings):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_factory("auto", CPU) is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    ctx = autocast_factory("auto", CPU)
    with ctx():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "off")])
def test_trainer_records_the_resolved_precision(tmp_path, monkeypatch, fresh_warnings, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cfg = config(tmp_path, "optim.amp=auto", "optim.epochs=1")
    seed_everything(cfg.seed)
    t = Trainer(cfg, build_method(cfg, info(32)), FakeBatches(), make_validate(), tmp_path / "r", CPU,
                progress=False, checkpoint_extra={"config": config_to_dict(cfg)})
    assert t.amp == expected and (t.autocast is None) == (expected == "off") and t.scaler is None


def test_cpu_description_names_the_cpu_its_count_and_bf16():
    from auspread.engine.precision import cpu_description, cpu_has_native_bf16

    d = cpu_description()
    name, count, bf16 = d.rsplit(", ", 2)
    assert name and count == f"{os.cpu_count()} CPUs"
    assert bf16 == ("native bf16" if cpu_has_native_bf16() else "no native bf16")


@pytest.mark.parametrize("setting, amp, expected", [
    ("auto", "bf16", True), ("auto", "off", False), ("auto", "fp16", False),
    (True, "off", True), (False, "bf16", False),
])
def test_channels_last_auto_pairs_with_bf16(setting, amp, expected):
    assert precision.resolve_channels_last(setting, amp) is expected


def test_channels_last_config_accepts_auto_and_bools():
    from auspread.engine.config import OptimConfig

    assert OptimConfig().channels_last == "auto"
    assert OptimConfig(channels_last=True).channels_last is True
    with pytest.raises(ValueError):
        OptimConfig(channels_last="sometimes")
