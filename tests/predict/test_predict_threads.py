"""The AU model's intra-op thread tuner (auspread.predict.threads), on fake clocks: which split it picks for a
heavy or light model on a free or loaded machine, that it takes back a raise that did not pay, and that the
pipeline records its decision without changing the answer."""

import numpy as np
import pytest
import torch
from faces_fakes import composite, write_video
from predict_fakes import tiny_bundle

from auspread.predict.inputs import VideoSource
from auspread.predict.options import PredictOptions
from auspread.predict.pipeline import Predictor
from auspread.predict.prefetch import prefetch
from auspread.predict.threads import ModelThreadTuner, StageClock, keep_raise, should_raise


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_should_raise_hand_values():
    # idle machine, model 2.0 s per chunk, detection 0.6 s CPU per chunk: the model is the bottleneck
    assert should_raise(2.0, 0.97, 0.6)
    # light model (112 px): 0.4 s against 0.6 s of detection
    assert not should_raise(0.4, 0.97, 0.6)
    # at the ratio exactly (1.5 x 0.5 = 0.75): not above it
    assert not should_raise(0.75, 1.0, 0.5)
    assert should_raise(0.76, 1.0, 0.5)
    # loaded machine: the model's thread had half a core
    assert not should_raise(4.0, 0.5, 0.6)
    assert should_raise(4.0, 0.5, 0.6, min_share=0.4)


def test_keep_raise_hand_values():
    assert keep_raise(2.0, 1.8)        # 10% faster: kept
    assert not keep_raise(2.0, 1.81)   # 9.5%: taken back
    assert not keep_raise(2.0, 2.4)    # slower


class FakeClocks:
    """Wall and thread-CPU clocks the test advances by hand."""

    def __init__(self):
        self.t = 0.0
        self.c = 0.0

    def wall(self) -> float:
        return self.t

    def cpu(self) -> float:
        return self.c

    def run_model(self, seconds: float, share: float) -> None:
        self.t += seconds
        self.c += seconds * share


def _drive(tuner: ModelThreadTuner, clocks: FakeClocks, n: int, model_seconds, share: float) -> list[int]:
    """Consume ``n`` chunks; the model's time per chunk depends on the threads it currently has."""
    seen = []
    for _ in tuner.wrap(iter(range(n))):
        seen.append(torch.get_num_threads())
        clocks.run_model(model_seconds(torch.get_num_threads()), share)
    return seen


def _tuner(detect_cpu: float, clocks: FakeClocks) -> ModelThreadTuner:
    clock = StageClock()
    for _ in range(3):
        clock.add(detect_cpu)
    torch.set_num_threads(1)
    return ModelThreadTuner(1, 2, clock, wall=clocks.wall, cpu=clocks.cpu)


def test_heavy_model_on_a_free_machine_gets_every_thread():
    clocks = FakeClocks()
    tuner = _tuner(0.6, clocks)
    seen = _drive(tuner, clocks, 8, lambda k: {1: 2.0, 2: 1.2}[k], share=0.98)
    # chunk 1 warm-up, chunks 2-3 measure 1 thread, from chunk 4 on 2 threads (4 warm-up, measured on 5-6, kept)
    assert seen == [1, 1, 1, 2, 2, 2, 2, 2]
    assert tuner.threads == 2 and tuner.decision.startswith("2 (model 2.00 -> 1.20")


def test_a_raise_that_does_not_pay_is_taken_back():
    clocks = FakeClocks()
    tuner = _tuner(0.6, clocks)
    seen = _drive(tuner, clocks, 8, lambda k: {1: 2.0, 2: 1.9}[k], share=0.98)
    assert seen == [1, 1, 1, 2, 2, 2, 1, 1]
    assert tuner.threads == 1 and "2 tried" in tuner.decision


def test_the_first_chunk_after_a_raise_is_not_measured():
    """A compiled trunk recompiles for the new thread count: that chunk must not decide against the raise."""
    clocks = FakeClocks()
    tuner = _tuner(0.6, clocks)
    times = iter([2.0, 2.0, 2.0, 6.5, 1.2, 1.2, 1.2, 1.2])  # chunk 4: the recompile
    seen = _drive(tuner, clocks, 8, lambda k: next(times), share=0.98)
    assert seen[-1] == 2 and tuner.decision.startswith("2 (model 2.00 -> 1.20")


@pytest.mark.parametrize("model_seconds, share, why", [(0.4, 0.98, "detection 0.60"), (3.0, 0.5, "share 0.50")])
def test_light_model_or_loaded_machine_keeps_one_thread(model_seconds, share, why):
    clocks = FakeClocks()
    tuner = _tuner(0.6, clocks)
    seen = _drive(tuner, clocks, 6, lambda k: model_seconds, share=share)
    assert seen == [1] * 6
    assert tuner.decision.startswith("1 (") and why in tuner.decision


def test_a_short_video_is_not_measured():
    clocks = FakeClocks()
    tuner = _tuner(0.6, clocks)
    assert _drive(tuner, clocks, 2, lambda k: 5.0, share=1.0) == [1, 1]
    assert "too short" in tuner.decision


def test_prefetch_clock_counts_the_producers_items():
    clock = StageClock()
    assert list(prefetch(iter(range(5)), clock=clock)) == list(range(5))
    assert clock.items == 5 and clock.per_item() is not None and clock.per_item() >= 0


def test_pipeline_records_the_decision_and_the_answer_does_not_depend_on_it(faces, tmp_path):
    frames = composite(faces[0][:10], [True] * len(faces[0][:10]))
    path = write_video(tmp_path / "v.mp4", frames)
    assert len(frames) >= 8  # at least 4 chunks of 2: the tuner measures
    torch.set_num_threads(2)
    tuned = Predictor(tiny_bundle(), PredictOptions(batch_size=2))
    fixed = Predictor(tiny_bundle(), PredictOptions(batch_size=2, model_threads=1))
    a, b = tuned.predict(VideoSource(path)), fixed.predict(VideoSource(path))
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-5, equal_nan=True)
    assert fixed.thread_decision == "1 (fixed)"
    assert tuned.thread_decision.startswith(("1 (", "2 ("))  # 5 chunks: measured, whichever way it went
    assert "too short" not in tuned.thread_decision
    serial = Predictor(tiny_bundle(), PredictOptions(batch_size=2, prefetch=False))
    serial.predict(VideoSource(path))
    assert serial.thread_decision == "torch's setting (no overlap)"
