"""``PredictOptions.compile`` (auspread.predict.compiled): the trunks are swapped method-agnostically, every chunk
reaches the compiled graph padded to one batch size, the answer equals eager, a compiler failure falls back to eager
with a warning, and ``auto`` leaves short videos alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from faces_fakes import composite, write_video

from auspread.engine.config import build_config
from auspread.engine.run import build_method
from auspread.methods.base import DatasetInfo
from auspread.models.backbones import ResNetFeatures
from auspread.predict import compiled as C
from auspread.predict.inputs import VideoSource
from auspread.predict.options import ModelBundle, PredictOptions
from auspread.predict.pipeline import Predictor

AUS = (1, 2, 4, 6, 12)


def _method(name: str, size: int = 32):
    cfg = build_config({"method": {"name": name}, "data": {"image_size": size}})
    info = DatasetInfo("BP4D", AUS, torch.ones(len(AUS)), 4, size, 25.0)
    torch.manual_seed(0)
    return build_method(cfg, info, None).eval(), cfg


def _eager_then_compiled(frames: int, batch: int):
    """A supervised model's predictions for ``frames`` random frames, eager and after compile_trunks(batch)."""
    m, _ = _method("supervised")
    x = torch.randn(frames, 3, 32, 32)
    with torch.inference_mode():
        ref = m.predict_frames(x)
        C.compile_trunks(m, batch)
        out = m.predict_frames(x)
    return m, x, ref, out


class _Recorder:
    """Stands in for torch.compile: returns the module itself, recording the batch sizes it is called with."""

    def __init__(self, fail: bool = False):
        self.batches: list[int] = []
        self.fail = fail

    def __call__(self, module, **kwargs):
        assert kwargs.get("dynamic") is False

        def run(x):
            self.batches.append(x.shape[0])
            if self.fail:
                raise RuntimeError("no C compiler\nsecond line")
            return module(x)

        return run


@pytest.mark.parametrize("name,trunks", [("supervised", 1), ("ks", 2), ("tcl", 1)])
def test_every_resnet_trunk_is_swapped_once(monkeypatch, name, trunks):
    monkeypatch.setattr(C.torch, "compile", _Recorder())
    m, _ = _method(name)
    assert C.compile_status(m) == "off"
    assert C.compile_trunks(m, 4) == trunks
    assert C.compile_trunks(m, 4) == 0  # idempotent
    wrapped = [x for x in m.modules() if isinstance(x, C.CompiledTrunk)]
    assert len(wrapped) == trunks
    assert all(isinstance(w.inner, ResNetFeatures) for w in wrapped)


def test_chunks_are_padded_to_one_batch_and_the_answer_is_unchanged(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(C.torch, "compile", rec)
    m, x, ref, out = _eager_then_compiled(7, 3)
    with torch.inference_mode():
        out2 = m.predict_frames(x[:2])  # a short last chunk of a video
    assert rec.batches == [3, 3, 3, 3]  # 7 frames = 3 + 3 + 1 padded to 3; then 2 padded to 3
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out2, ref[:2], atol=1e-6, rtol=1e-6)
    assert C.compile_status(m) == "on"


def test_a_compiler_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    monkeypatch.setattr(C.torch, "compile", _Recorder(fail=True))
    m, _ = _method("supervised")
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        ref = m.predict_frames(x)
        C.compile_trunks(m, 4)
        with pytest.warns(RuntimeWarning, match="no C compiler"):
            out = m.predict_frames(x)
        out2 = m.predict_frames(x)  # no second attempt, no second warning
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out2, ref)
    assert C.compile_status(m) == "failed: RuntimeError: no C compiler"


def test_auto_compiles_long_videos_on_cpu_only():
    cpu = torch.device("cpu")
    assert not C.wants_compile("auto", 1_000, cpu)
    assert C.wants_compile("auto", C.AUTO_MIN_FRAMES, cpu)
    assert not C.wants_compile("auto", 10 * C.AUTO_MIN_FRAMES, torch.device("cuda"))
    assert C.wants_compile("on", 1, cpu) and not C.wants_compile("off", 10 ** 9, cpu)


def _bundle():
    m, cfg = _method("supervised")
    return ModelBundle(m, AUS, 32, cfg.data.resolved_store_size, {"method": "supervised"})


def test_predictor_compiles_on_request_only_and_agrees(monkeypatch, faces, tmp_path):
    monkeypatch.setattr(C.torch, "compile", _Recorder())
    v = VideoSource(write_video(tmp_path / "v.mp4", composite(faces[0][:5], [True] * 5)))
    off = Predictor(_bundle(), PredictOptions(batch_size=4, compile="off"))
    auto = Predictor(_bundle(), PredictOptions(batch_size=4))  # default auto: a 5-frame video stays eager
    on = Predictor(_bundle(), PredictOptions(batch_size=4, compile="on"))
    ref = off.predict(v)
    a, b = auto.predict(v), on.predict(v)
    assert (off.compile_status, auto.compile_status, on.compile_status) == ("off", "off", "on")
    np.testing.assert_allclose(a.probs, ref.probs, atol=1e-6)
    np.testing.assert_allclose(b.probs, ref.probs, atol=1e-5)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="inductor needs a C compiler")
def test_real_compile_matches_eager():
    """The real torch.compile (inductor, freezing) on a ResNet-18 at 32 px: ~20 s on 2 cores."""
    m, _, ref, out = _eager_then_compiled(5, 4)
    assert C.compile_status(m) == "on"
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
