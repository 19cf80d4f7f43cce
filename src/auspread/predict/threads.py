"""Intra-op threads of the AU model while the stages of ``auspread predict`` overlap (issue 21).

The detection/alignment thread runs with one torch intra-op thread and the AU model with the rest. Which split is
fastest depends on the model and on the machine's load, measured side by side (docs/BENCHMARKS.md, issue 21):

* idle 2-core AVX2 CPU, fp32: a ResNet-18 at 112 px (model ~13 ms/frame on one thread, detection ~19) runs faster
  with 1 + 1 threads (44.9 frames/s against 40.4 with 1 + 2); at 224 px (model ~60 ms/frame) and for
  Knowledge-Spreader (two trunks, ~120 ms/frame) 1 + 2 wins by far (20.3 against 15.0, 13.2 against 7.9): with one
  thread the heavy model leaves the second core idle two thirds of the time;
* the same CPU under load (load average 4-7 on 2 cores): 1 + 1 wins for every model (two OpenMP teams on busy
  cores wait on each other).

So the split is measured, not guessed: :class:`ModelThreadTuner` starts the model on ``base`` threads (1 + the
rest), times a few chunks of the running video, and gives the model every thread only when it is the bottleneck
(its time per chunk exceeds ``ratio`` times the CPU time per chunk of the busiest producer stage, detection or
alignment, each a thread of its own) and its own thread got
nearly a whole core (``min_share``: a loaded machine gets less); it then keeps the raise only if the model's time
per chunk fell by at least ``min_gain``. The number of threads never changes the answer beyond float rounding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch


@dataclass
class StageClock:
    """CPU seconds a pipeline stage's own thread spent producing its items (filled by ``prefetch``)."""

    cpu: float = 0.0
    items: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, cpu: float) -> None:
        with self._lock:
            self.cpu += cpu
            self.items += 1

    def per_item(self) -> float | None:
        with self._lock:
            return self.cpu / self.items if self.items else None


class SlowestStage:
    """The largest CPU time per item of several pipeline stages (detection and alignment threads)."""

    def __init__(self, clocks: list[StageClock]):
        self.clocks = clocks

    def per_item(self) -> float | None:
        times = [t for t in (c.per_item() for c in self.clocks) if t is not None]
        return max(times) if times else None


def should_raise(model_wall: float, model_share: float, detect_cpu: float, *, ratio: float = 1.5,
                 min_share: float = 0.85) -> bool:
    """Give the model every thread? Only if it limits the pipeline (its wall time per chunk above ``ratio`` × the
    detection thread's CPU time per chunk) and the machine has room (its thread ran ≥ ``min_share`` of the time)."""
    return model_share >= min_share and model_wall > ratio * detect_cpu


def keep_raise(before_wall: float, after_wall: float, *, min_gain: float = 0.10) -> bool:
    """Keep the extra threads only if the model's time per chunk fell by at least ``min_gain``."""
    return after_wall <= (1.0 - min_gain) * before_wall


class ModelThreadTuner:
    """Wraps the chunk stream the AU model consumes (in the model's thread) and sets that thread's intra-op
    threads: ``base`` while measuring, ``full`` if :func:`should_raise` and :func:`keep_raise` say so.

    Chunk 1 is warm-up; chunks 2..1+window measure ``base``; after a raise one more chunk is warm-up (compiled
    trunks recompile for a new thread count: 1.3 -> 3.3 s for that chunk in docs/BENCHMARKS.md) and the next
    ``window`` chunks measure ``full``. ``decision`` says what happened (recorded in the output's sidecar JSON and by the benchmark)."""

    def __init__(self, base: int, full: int, producer: StageClock | SlowestStage, *, window: int = 2, ratio: float = 1.5,
                 min_share: float = 0.85, min_gain: float = 0.10,
                 wall: Callable[[], float] = time.perf_counter, cpu: Callable[[], float] = time.thread_time):
        self.base, self.full, self.producer = base, full, producer
        self._wall, self._cpu = wall, cpu  # clocks (injectable for tests)
        self.window, self.ratio, self.min_share, self.min_gain = window, ratio, min_share, min_gain
        self.threads = base
        self.decision = f"{base} (too short to measure)" if full > base else f"{base} (all threads)"

    def _set(self, n: int) -> None:
        self.threads = n
        torch.set_num_threads(n)

    def wrap(self, chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        base_wall: list[float] = []
        base_cpu: list[float] = []
        full_wall: list[float] = []
        phase = "base" if self.full > self.base else "done"
        skipped_after_raise = False
        for k, chunk in enumerate(chunks):
            w0, c0 = self._wall(), self._cpu()
            yield chunk  # the model runs on this chunk in this thread until the next one is asked for
            wall, cpu = self._wall() - w0, self._cpu() - c0
            if phase == "done" or k == 0:
                continue
            if phase == "base":
                base_wall.append(wall)
                base_cpu.append(cpu)
                if len(base_wall) < self.window:
                    continue
                m, share = _mean(base_wall), min(1.0, sum(base_cpu) / max(sum(base_wall), 1e-9))
                d = self.producer.per_item()
                if d is not None and should_raise(m, share, d, ratio=self.ratio, min_share=self.min_share):
                    self._set(self.full)
                    phase = "full"
                    self._measured = (m, share, d)
                else:
                    phase = "done"
                    why = ("detection thread did not report" if d is None else
                           f"model {m:.2f} s/chunk vs detection {d:.2f} s CPU, model thread share {share:.2f}")
                    self.decision = f"{self.base} ({why})"
            elif phase == "full":
                if skipped_after_raise is False:  # the first chunk after the raise is warm-up too: a compiled
                    skipped_after_raise = True    # trunk recompiles for the new thread count (seconds)
                    continue
                full_wall.append(wall)
                if len(full_wall) < self.window:
                    continue
                m, share, d = self._measured
                after = _mean(full_wall)
                phase = "done"
                if keep_raise(m, after, min_gain=self.min_gain):
                    self.decision = f"{self.full} (model {m:.2f} -> {after:.2f} s/chunk; detection {d:.2f} s CPU)"
                else:
                    self._set(self.base)
                    self.decision = (f"{self.base} ({self.full} tried: model {m:.2f} -> {after:.2f} s/chunk, "
                                     f"less than {self.min_gain:.0%} faster)")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)
