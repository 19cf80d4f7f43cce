"""``PredictOptions.quantize`` (auspread.predict.quantized): every ResNet trunk is swapped once, its first chunks
run in fp32 and calibrate it, then it serves int8 on chunks padded to one batch; a failure falls back to fp32 with
one warning; ``auto`` only where the model would otherwise run in fp32 on a long video; and a real int8 trunk stays
close to the fp32 one."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from auspread.engine.config import build_config
from auspread.engine.run import build_method
from auspread.methods.base import DatasetInfo
from auspread.models.backbones import ResNetFeatures
from auspread.predict import compiled as C
from auspread.predict import quantized as Q

AUS = (1, 2, 4, 6, 12)


def _method(name: str, size: int = 32):
    cfg = build_config({"method": {"name": name}, "data": {"image_size": size}})
    info = DatasetInfo("BP4D", AUS, torch.ones(len(AUS)), 4, size, 25.0)
    torch.manual_seed(0)
    return build_method(cfg, info, None).eval()


class _FakeQuantizer:
    """Stands in for quantize_trunk: records the calibration batches and returns the trunk itself, marked."""

    def __init__(self, fail: bool = False):
        self.calibration: list[torch.Tensor] = []
        self.calls: list[int] = []
        self.fail = fail

    def __call__(self, trunk, calibration):
        if self.fail:
            raise RuntimeError("no torchao\nsecond line")
        self.calibration = list(calibration)

        def run(x):
            self.calls.append(x.shape[0])
            return trunk(x)

        return run


@pytest.mark.parametrize("name,trunks", [("supervised", 1), ("ks", 2), ("tcl", 1)])
def test_every_resnet_trunk_is_swapped_once_and_not_compiled_again(name, trunks):
    m = _method(name)
    assert Q.quantize_status(m) == "off"
    assert Q.quantize_trunks(m, 4) == trunks
    assert Q.quantize_trunks(m, 4) == 0  # idempotent
    assert C.compile_trunks(m, 4) == 0   # the int8 trunks compile themselves; their fp32 inner stays eager
    wrapped = [x for x in m.modules() if isinstance(x, Q.QuantizedTrunk)]
    assert len(wrapped) == trunks and all(isinstance(w.inner, ResNetFeatures) for w in wrapped)
    assert Q.quantize_status(m) == "calibrating"


def test_first_chunks_calibrate_in_fp32_then_int8_serves_padded_chunks(monkeypatch):
    fake = _FakeQuantizer()
    monkeypatch.setattr(Q, "quantize_trunk", fake)
    m = _method("supervised")
    x = torch.randn(11, 3, 32, 32)
    with torch.inference_mode():
        ref = m.predict_frames(x)
        Q.quantize_trunks(m, 4)
        out = m.predict_frames(x)  # chunks 4 + 4 (calibration, fp32) + 3 (padded to 4, "int8")
    assert [c.shape[0] for c in fake.calibration] == [4] * Q.CALIBRATION_CHUNKS
    torch.testing.assert_close(fake.calibration[0], x[:4])
    assert fake.calls == [4]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert Q.quantize_status(m) == "int8"


def test_a_quantiser_failure_falls_back_to_fp32_with_one_warning(monkeypatch):
    monkeypatch.setattr(Q, "quantize_trunk", _FakeQuantizer(fail=True))
    m = _method("supervised")
    x = torch.randn(12, 3, 32, 32)
    with torch.inference_mode():
        ref = m.predict_frames(x)
        Q.quantize_trunks(m, 4)
        with pytest.warns(RuntimeWarning, match="no torchao"):
            out = m.predict_frames(x)
        out2 = m.predict_frames(x)  # no second attempt, no second warning
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out2, ref)
    assert Q.quantize_status(m) == "failed: RuntimeError: no torchao"


def test_auto_only_where_the_model_would_run_fp32_on_a_long_video(monkeypatch):
    monkeypatch.setattr(Q, "quantization_available", lambda: True)
    cpu, cuda, long, short = torch.device("cpu"), torch.device("cuda"), C.AUTO_MIN_FRAMES, C.AUTO_MIN_FRAMES - 1
    assert Q.wants_quantize("auto", long, cpu, "off")
    assert not Q.wants_quantize("auto", short, cpu, "off")
    assert not Q.wants_quantize("auto", long, cpu, "bf16")  # bf16-native CPU: bf16 autocast instead
    assert not Q.wants_quantize("auto", long, cuda, "off")
    assert Q.wants_quantize("int8", 10, cpu, "bf16")
    assert not Q.wants_quantize("off", long, cpu, "off")
    monkeypatch.setattr(Q, "quantization_available", lambda: False)
    assert not Q.wants_quantize("auto", long, cpu, "off")


@pytest.mark.slow
def test_a_real_int8_trunk_stays_close_to_fp32():
    """torchao's PT2E flow end to end on a small trunk: features within a few percent, status int8."""
    if not Q.quantization_available():
        pytest.skip("torchao is not installed")
    torch.manual_seed(0)
    trunk = ResNetFeatures("resnet18").eval()
    q = Q.QuantizedTrunk(trunk, 8)
    x = torch.rand(8 * (Q.CALIBRATION_CHUNKS + 1), 3, 64, 64)
    with torch.inference_mode():
        ref = trunk(x)
        out = q(x)
    assert q._failed is None and q._quantized is not None
    last = slice(8 * Q.CALIBRATION_CHUNKS, None)  # the chunk served in int8
    torch.testing.assert_close(out[: 8 * Q.CALIBRATION_CHUNKS], ref[: 8 * Q.CALIBRATION_CHUNKS])
    rel = ((out[last] - ref[last]).norm() / ref[last].norm()).item()
    assert 0 < rel < 0.1, rel


def test_without_torchao_int8_falls_back_to_fp32_naming_the_install_command(monkeypatch):
    """torchao is the optional ``quantize`` extra: its absence (faked: the import fails) costs the speed, not the
    answer, and the one warning names the command that installs it."""
    for name in [n for n in sys.modules if n.partition(".")[0] == "torchao"]:  # imported by an earlier test
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)  # `import torchao...` raises ModuleNotFoundError
    assert not Q.quantization_available()
    assert not Q.wants_quantize("auto", C.AUTO_MIN_FRAMES, torch.device("cpu"), "off")
    m = _method("supervised")
    x = torch.randn(12, 3, 32, 32)
    with torch.inference_mode():
        ref = m.predict_frames(x)
        Q.quantize_trunks(m, 4)
        with pytest.warns(RuntimeWarning, match=re.escape("pip install 'auspread[quantize]'")):
            out = m.predict_frames(x)
    torch.testing.assert_close(out, ref)
    assert Q.quantize_status(m) == f"failed: ModuleNotFoundError: {Q.TORCHAO_MISSING}"
