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


def test_auto_on_cuda_prefers_bf16_then_fp16(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_amp("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve_amp("auto", cuda) == "fp16"


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
