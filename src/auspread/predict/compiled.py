"""Graph compilation of the AU model's ResNet trunks for ``auspread predict`` on long videos (issue 21).

On a CPU without native bf16 the AU model is the slowest stage of ``predict`` (docs/BENCHMARKS.md), and its time is
the trunks' convolutions. ``torch.compile`` (inductor) with ``freezing`` folds batch norm into the convolutions and
pre-packs their weights: end to end ``predict`` ran 1.4x faster with a ResNet-18 or Knowledge-Spreader at 224 px in
fp32 (``benchmarks/bench_predict.py --variants new-compile``), for a one-off compile of 20-60 s. It pays on long
videos only, hence ``PredictOptions.compile``: ``off``, ``on``, or ``auto`` (on when the video is long enough;
:data:`AUTO_MIN_FRAMES`).

Method-agnostic: every ``ResNetFeatures`` module of the method (the supervised counterpart's and the SSL baselines'
trunk, both Knowledge-Spreader backbones, TCL's) is swapped for :class:`CompiledTrunk`, which pads each chunk to one
fixed batch size so that a single graph serves the whole video (a short last chunk would otherwise compile again).
Where compilation fails (no C compiler, an unsupported platform) the trunk falls back to eager with one warning:
the answer never depends on this option, only the speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from auspread.models.backbones import ResNetFeatures

# ~3 min at 30 frames/s. Measured (docs/BENCHMARKS.md, issue 21; 2-core AVX2 CPU under load, fp32): the compiled
# trunks save 0.07 s/frame for Knowledge-Spreader at 224 px (3.8 -> 5.3 frames/s end to end) and 0.04 s/frame for
# a ResNet-18 at 224 px (7.0 -> 9.8) for a compile of 33 s / 22 s with a warm inductor cache (about twice that
# cold): break-even near 450-550 frames warm, ~1,000 cold. 5,000 keeps a margin for smaller, faster models.
AUTO_MIN_FRAMES = 5_000


class TrunkWrapper(nn.Module):
    """A trunk run on chunks of ``batch`` frames by ``_run`` (subclasses: compiled, int8), falling back to the
    eager ``inner`` once ``_failed`` is set; ``forward_pyramid`` (MDHR's path) stays eager."""

    def __init__(self, inner: ResNetFeatures, batch: int):
        super().__init__()
        self.inner = inner
        self.batch = batch
        self.out_channels = inner.out_channels
        self._failed: str | None = None

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.inner.forward_pyramid(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._failed is not None or x.shape[0] == 0:
            return self.inner(x)
        outs = [self._run(x[i:i + self.batch]) for i in range(0, x.shape[0], self.batch)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Repeat the last frame up to ``batch`` frames: one graph for every chunk."""
        n = x.shape[0]
        return x if n >= self.batch else torch.cat([x, x[-1:].expand(self.batch - n, *x.shape[1:])])

    def _run(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def swap_trunks(method: nn.Module, wrap: Callable[[ResNetFeatures], TrunkWrapper]) -> int:
    """Replace every :class:`ResNetFeatures` inside ``method`` (in place) by ``wrap(trunk)``, except trunks
    already inside a :class:`TrunkWrapper`; returns how many were replaced."""
    targets = [(name, m) for name, m in method.named_modules() if isinstance(m, ResNetFeatures) and name]
    swapped = 0
    for name, m in targets:
        parent_name, _, child = name.rpartition(".")
        parent = method.get_submodule(parent_name) if parent_name else method
        if isinstance(parent, TrunkWrapper):
            continue
        setattr(parent, child, wrap(m))
        swapped += 1
    return swapped


class CompiledTrunk(TrunkWrapper):
    """A trunk whose ``forward`` runs compiled on chunks padded to ``batch`` frames (outputs cut back)."""

    def __init__(self, inner: ResNetFeatures, batch: int):
        super().__init__(inner, batch)
        self._compiled = torch.compile(inner, dynamic=False)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self._pad(x)
        try:
            import torch._inductor.config as inductor_config

            # dynamic_threads: the generated kernels read the intra-op thread count at run time instead of
            # fixing the count at compile time, so the thread tuner (auspread.predict.threads) can still raise it
            dynamic = {"cpp.dynamic_threads": True} if hasattr(inductor_config.cpp, "dynamic_threads") else {}
            with inductor_config.patch(freezing=True, **dynamic):
                y = self._compiled(x)
        except Exception as e:  # noqa: BLE001 - any compiler failure: eager is always correct
            self._failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            warnings.warn(f"predict: compiling the AU model failed ({self._failed}); running it uncompiled",
                          RuntimeWarning, stacklevel=2)
            y = self.inner(x)
        return y[:n]


def compile_trunks(method: nn.Module, batch: int) -> int:
    """Swap every :class:`ResNetFeatures` inside ``method`` for a :class:`CompiledTrunk` (in place); returns how
    many. Compilation itself happens on the first chunk. Idempotent."""
    return swap_trunks(method, lambda m: CompiledTrunk(m, batch))


def compile_status(method: nn.Module) -> str:
    """``off`` (no compiled trunk), ``on``, or ``failed: <reason>`` (fell back to eager): for the output's sidecar."""
    trunks = [m for m in method.modules() if isinstance(m, CompiledTrunk)]
    if not trunks:
        return "off"
    failed = [t._failed for t in trunks if t._failed is not None]
    return f"failed: {failed[0]}" if failed else "on"


def wants_compile(setting: str, num_frames: int, device: torch.device) -> bool:
    """``on`` always; ``off`` never; ``auto`` for a video of at least :data:`AUTO_MIN_FRAMES` frames on a CPU
    (CUDA runs eager: its kernels are not the bottleneck there and compile behaviour differs by GPU)."""
    if setting == "on":
        return True
    return setting == "auto" and device.type == "cpu" and num_frames >= AUTO_MIN_FRAMES
