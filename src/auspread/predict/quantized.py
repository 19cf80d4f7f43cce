"""int8 trunks for ``auspread predict`` on CPUs without native bf16 (issue 21).

On a 2-core AVX2 CPU in fp32 the AU model is the slowest stage of ``predict``, and Knowledge-Spreader's two
ResNet-18 trunks at 224 px cap it below 2x the old defaults even compiled (docs/BENCHMARKS.md). Static int8
post-training quantisation of the trunks (PT2E: ``torch.export`` → torchao's ``X86InductorQuantizer``, per-channel
int8 weights, per-tensor uint8 activations → inductor with oneDNN int8 kernels; the stem stays fp32, see
:data:`FP32_MODULES`) nearly halves their time again: a ResNet-18 at 224 px, batch 32, 1 thread ran 64 → 35 ms per
frame against the compiled fp32 trunk.

Calibration uses the video itself: the first :data:`CALIBRATION_CHUNKS` chunks each trunk sees run in fp32
(their outputs are exact) and are recorded; the trunk is then quantised with those activation ranges, compiled,
and serves the rest of the video. Like :mod:`auspread.predict.compiled` every chunk is padded to one batch size,
and any failure (torchao missing: it is the optional ``quantize`` extra; an export or compiler error) falls back to
the fp32 trunk with one warning: the option changes the speed and, within the agreement the benchmark reports, the
answer.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from auspread.models.backbones import ResNetFeatures
from auspread.predict.compiled import AUTO_MIN_FRAMES, TrunkWrapper, swap_trunks

CALIBRATION_CHUNKS = 2  # chunks of --batch-size frames (64 faces at the default 32) seen in fp32 before quantising
# Kept in fp32: the stem (first convolution on the normalised image). Measured on a trained Knowledge-Spreader
# (runs of issue 19, 64 px) over 256 frames of a real video: mean |AU_p int8 - fp32| 0.0158 with every layer in int8,
# 0.0010 with the stem in fp32 (layer4 in fp32 instead: 0.0158), for 35 instead of 30 ms per frame (ResNet-18,
# 224 px, 1 thread; compiled fp32: 64 ms). docs/BENCHMARKS.md, issue 21.
FP32_MODULES = ("stem",)
# torchao is an optional dependency (the `quantize` extra): without it `--quantize` runs the model in fp32
TORCHAO_MISSING = "torchao is not installed: pip install 'auspread[quantize]'"


def quantization_available() -> bool:
    """torchao's PT2E quantiser for x86 is importable."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return False
    return True


class QuantizedTrunk(TrunkWrapper):
    """A ResNet trunk that calibrates on its first chunks in fp32, then runs int8 (compiled) on chunks padded to
    ``batch`` frames (outputs cut back)."""

    def __init__(self, inner: ResNetFeatures, batch: int, calibration_chunks: int = CALIBRATION_CHUNKS):
        super().__init__(inner, batch)
        self.calibration_chunks = calibration_chunks
        self._seen: list[torch.Tensor] = []
        self._quantized = None

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._quantized is None:
            self._seen.append(self._pad(x.detach().float().contiguous()))
            if len(self._seen) >= self.calibration_chunks:
                self._build()
            return self.inner(x)
        try:
            return self._quantized(self._pad(x))[: x.shape[0]]
        except Exception as e:  # noqa: BLE001 - e.g. the compiler failing on the first int8 call
            self._fail(e)
            return self.inner(x)

    def _build(self) -> None:
        try:
            self._quantized = quantize_trunk(self.inner, self._seen)
        except Exception as e:  # noqa: BLE001 - no torchao, export or quantiser failure: fp32 is always correct
            self._fail(e)
        finally:
            self._seen = []

    def _fail(self, e: Exception) -> None:
        self._failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        self._quantized = None
        warnings.warn(f"predict: int8 quantisation of the AU model failed ({self._failed}); running it in fp32",
                      RuntimeWarning, stacklevel=3)


def quantize_trunk(trunk: nn.Module, calibration: list[torch.Tensor],
                   skip: tuple[str, ...] = FP32_MODULES) -> nn.Module:
    """Static int8 PTQ of ``trunk`` (PT2E + torchao's X86InductorQuantizer), calibrated on ``calibration`` (each a
    full batch), its ``skip`` submodules left in fp32, compiled with inductor (freezing). Raises on any failure."""
    import torch._inductor.config as inductor_config
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "torchao":
            raise
        raise ModuleNotFoundError(TORCHAO_MISSING, name="torchao") from e

    example = calibration[0]
    with torch.no_grad():
        # strict export: each call of a reused module (torchvision's BasicBlock calls one ReLU twice) becomes its
        # own partition, which the quantiser's conv+add+relu fusion needs
        exported = torch.export.export(_Plain(trunk).eval(), (example,), strict=True).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        for name in skip:  # submodules of the trunk kept in fp32
            quantizer.set_module_name_qconfig(f"trunk.{name}", None)
        prepared = prepare_pt2e(exported, quantizer)
        for x in calibration:
            prepared(x)
        converted = convert_pt2e(prepared)
    compiled = torch.compile(converted, dynamic=False)

    # the thread count read at run time, as for the compiled fp32 trunks (the thread tuner may raise it)
    dynamic = {"cpp.dynamic_threads": True} if hasattr(inductor_config.cpp, "dynamic_threads") else {}

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), inductor_config.patch(freezing=True, **dynamic):
            return compiled(x.float().contiguous())

    run(example)  # compile now: a compiler error surfaces here (and falls back), not on a later chunk
    return run


class _Plain(nn.Module):
    """``trunk.forward`` as the module's only entry point (export traces ``forward``)."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def quantize_trunks(method: nn.Module, batch: int) -> int:
    """Swap every :class:`ResNetFeatures` inside ``method`` for a :class:`QuantizedTrunk` (in place); returns how
    many. Calibration and quantisation happen on the first chunks. Idempotent."""
    return swap_trunks(method, lambda m: QuantizedTrunk(m, batch))


def wants_quantize(setting: str, num_frames: int, device: torch.device, amp: str) -> bool:
    """``int8`` always; ``off`` never; ``auto`` on a CPU that runs the model in fp32 (no native bf16: ``amp`` off)
    for a video of at least :data:`~auspread.predict.compiled.AUTO_MIN_FRAMES` frames, when torchao is there."""
    if setting == "int8":
        return True
    return (setting == "auto" and device.type == "cpu" and amp == "off" and num_frames >= AUTO_MIN_FRAMES
            and quantization_available())


def quantize_status(method: nn.Module) -> str:
    """``off``, ``int8``, ``calibrating`` or ``failed: <reason>`` (fell back to fp32)."""
    trunks = [m for m in method.modules() if isinstance(m, QuantizedTrunk)]
    if not trunks:
        return "off"
    failed = [t._failed for t in trunks if t._failed is not None]
    if failed:
        return f"failed: {failed[0]}"
    return "int8" if all(t._quantized is not None for t in trunks) else "calibrating"
