"""Mixed precision: which autocast a run uses on the device it runs on (``optim.amp``).

``auto`` (the packaged configs' setting) picks the fastest precision the device runs natively:

* CUDA: bf16 on GPUs that compute it natively (compute capability 8.0 and later: Ampere, Ada, Hopper, ...),
  else fp16 with a gradient scaler. ``torch.cuda.is_bf16_supported()`` is not the test: it also answers True on
  Volta and Turing (V100, T4, RTX 2080 Ti), which emulate bf16 without bf16 tensor cores, while their fp16 tensor
  cores are native;
* CPU: bf16 only where the processor computes it with oneDNN bf16 support (AVX-512-class CPUs;
  AMX is fastest), as `torch.ops.mkldnn._is_mkldnn_bf16_supported()` reports, else fp32.
  On a CPU without native bf16 (for example AVX2-only processors) PyTorch emulates bf16 convolutions: measured on
  such a 2-core AMD EPYC, a ResNet-18 training step at 64 px ran **27× slower** in bf16 than in fp32
  (docs/BENCHMARKS.md), while on an AMX CPU bf16 is about 2× faster than fp32;
* anything else (MPS, …): fp32.

An explicit ``bf16`` is honoured everywhere, with one warning on a CPU or GPU that would emulate it.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Literal

import torch

Amp = Literal["off", "bf16", "fp16"]


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when oneDNN computes bf16 on this CPU (AVX-512 class, AMX), so bf16 autocast is not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


@functools.cache
def cpu_description() -> str:
    """The CPU a figure was measured on, for run summaries and reports: its model name (``/proc/cpuinfo``, else
    ``platform.processor()``), the logical CPUs and whether it computes bf16 natively, e.g. ``"Intel(R) Xeon(R)
    Processor, 2 CPUs, native bf16"``. Speeds and bf16 results differ between CPUs (docs/BENCHMARKS.md)."""
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.lower().startswith("model name")), "")
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count() or 1} CPUs, {'native bf16' if cpu_has_native_bf16() else 'no native bf16'}"


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True when the CUDA ``device`` has bf16 tensor cores (compute capability >= 8.0)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


_warned: set[str] = set()


def _say_once(key: str, text: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(text, file=sys.stderr)


def native_amp(device: torch.device, fp16: bool = True) -> Amp:
    """The fastest precision ``device`` computes natively (the rule of ``auto``, module docstring): bf16 on a GPU
    of compute capability 8.0 or later and on a CPU with oneDNN bf16, fp16 on older GPUs (``off`` when ``fp16`` is
    False: inference without a gradient scaler), else ``off`` (fp32)."""
    if device.type == "cuda":
        return "bf16" if cuda_has_native_bf16(device) else ("fp16" if fp16 else "off")
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "off"


def resolve_amp(amp: str, device: torch.device) -> Amp:
    """The precision actually used for ``optim.amp`` (``off``, ``bf16``, ``fp16`` or ``auto``) on ``device``."""
    if amp == "auto":
        native = native_amp(device)
        if native != "off":
            return native
        if device.type == "cpu":
            _say_once("auto-cpu", "optim.amp=auto: fp32 (this CPU has no native bf16, which PyTorch "
                                  "would emulate many times slower)")
        return "off"
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        _say_once("bf16-cpu", "warning: optim.amp=bf16 on a CPU without native bf16 (no AVX-512/AMX): PyTorch "
                              "emulates it, measured 27x slower than fp32 for ResNet-18 training; use optim.amp=auto "
                              "or optim.amp=off")
    if amp == "bf16" and device.type == "cuda" and not cuda_has_native_bf16(device):
        major, minor = torch.cuda.get_device_capability(device)
        _say_once("bf16-cuda", f"warning: optim.amp=bf16 on a GPU of compute capability {major}.{minor} (bf16 is "
                               "native from 8.0): it is emulated and slower; optim.amp=auto uses fp16 with a gradient "
                               "scaler there")
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"unknown amp {amp!r}")
    return amp  # type: ignore[return-value]


def resolve_channels_last(setting: bool | str, amp: str) -> bool:
    """Whether a run uses channels-last: ``optim.channels_last`` with ``"auto"`` meaning "with bf16" (``amp`` is the
    resolved precision). bf16 convolutions and pooling run faster channels-last on CPU (max-pooling about 6×);
    in fp32 on a 2-core AVX2 CPU it made no measurable end-to-end difference (docs/BENCHMARKS.md, issue 21)."""
    return amp == "bf16" if setting == "auto" else bool(setting)
