"""The AU model of ``auspread predict``: its precision (:mod:`auspread.engine.precision`), compiled or int8 trunks
(:mod:`auspread.predict.compiled`, :mod:`auspread.predict.quantized`), its input transform and its intra-op threads
while the pipeline's stages overlap (:mod:`auspread.predict.threads`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from auspread.engine.precision import native_amp, resolve_amp, resolve_channels_last
from auspread.predict.compiled import compile_status, compile_trunks, wants_compile
from auspread.predict.options import ModelBundle, PredictOptions
from auspread.predict.prefetch import prefetch
from auspread.predict.quantized import quantize_status, quantize_trunks, wants_quantize
from auspread.predict.threads import ModelThreadTuner, SlowestStage, StageClock


def auto_precision(device: torch.device) -> Literal["off", "bf16"]:
    """``bf16`` where ``device`` computes bf16 natively (a CUDA GPU with bf16, a CPU with oneDNN bf16: AVX-512 BF16
    or AMX), else ``off`` (fp32): the rule of ``optim.amp=auto`` without its fp16 branch."""
    return native_amp(device, fp16=False)  # type: ignore[return-value]


class ModelRunner:
    """Runs a :class:`ModelBundle`'s ``predict_video`` on a stream of aligned crops."""

    def __init__(self, model: ModelBundle, options: PredictOptions):
        from auspread.data.transforms import ClipTransform

        self.model = model
        self.options = o = options
        self.transform = ClipTransform(model.image_size, train=False)
        model.method.eval()
        self.amp: Literal["off", "bf16"] = auto_precision(model.device) if o.amp == "auto" else o.amp
        self.channels_last: bool = resolve_channels_last("auto", self.amp) if o.channels_last is None \
            else o.channels_last
        if self.channels_last:
            model.method.to(memory_format=torch.channels_last)
        if o.amp == "bf16":
            resolve_amp("bf16", model.device)  # one warning where the device would emulate bf16
        self.compiled = False  # set once the trunks are compiled (the first long enough video; kept afterwards)
        self.quantized = False  # set once the trunks are swapped for int8 ones (kept afterwards)
        self._thread_note = ""
        self._tuner: ModelThreadTuner | None = None

    @property
    def thread_decision(self) -> str:
        """The AU model's intra-op threads on the last video, and why (the output's sidecar JSON)."""
        return self._tuner.decision if self._tuner is not None else self._thread_note

    @property
    def quantize_status(self) -> str:
        """``off``, ``int8``, ``calibrating`` or ``failed: <reason>`` (int8 trunks that fell back to fp32)."""
        return quantize_status(self.model.method)

    @property
    def compile_status(self) -> str:
        """``off``, ``on`` or ``failed: <reason>`` (compiled trunks that fell back to eager)."""
        return compile_status(self.model.method)

    def to_input(self, crops: np.ndarray) -> torch.Tensor:
        """Aligned uint8 crops ``(k, A, A, 3)`` → normalised ``(k, 3, H, H)`` on the model's device, via the frame
        store's size (A → store size, antialiased), then the evaluation transform (store → H)."""
        t = torch.from_numpy(np.ascontiguousarray(crops))
        s = self.model.store_size
        if t.shape[1] != s:
            x = t.permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            t = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        x, _ = self.transform(t.contiguous())
        x = x.to(self.model.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def thread_split(self) -> tuple[int | None, int | None]:
        """Intra-op threads of (the detection thread, the AU model) while the stages overlap; ``(None, None)``
        (leave torch's setting alone) without ``prefetch``."""
        o = self.options
        if not o.prefetch:
            return None, None
        det = o.detect_threads or 1
        return det, o.model_threads or max(1, torch.get_num_threads() - det)

    def stream(self, chunks: Iterator, align=None) -> tuple[Iterator[torch.Tensor], int | None]:
        """The chunk stream the AU model consumes and its intra-op threads: with ``prefetch``, ``chunks``
        (detection) and ``align`` (alignment: a function of the chunk stream, if given) each run in a background
        thread of their own and, unless ``model_threads`` is given, a :class:`ModelThreadTuner` (recorded in
        :attr:`thread_decision`) chooses the model's threads on the running video, against the slower of the two
        stages."""
        o = self.options
        self._tuner = None
        if not o.prefetch:
            self._thread_note = "torch's setting (no overlap)"
            return (align(chunks) if align else chunks), None
        det_threads, model_threads = self.thread_split()
        clocks = [StageClock()]
        stream = prefetch(chunks, threads=det_threads, clock=clocks[0])
        if align is not None:  # one intra-op thread: the stages share the cores with the model
            clocks.append(StageClock())
            stream = prefetch(align(stream), threads=1, clock=clocks[1])
        full = torch.get_num_threads()
        if o.model_threads is not None or full <= model_threads:
            self._thread_note = f"{model_threads} (fixed)" if o.model_threads is not None else f"{model_threads}"
            return stream, model_threads
        tuner = self._tuner = ModelThreadTuner(model_threads, full, SlowestStage(clocks))
        return tuner.wrap(stream), model_threads

    def run(self, chunks: Iterator[torch.Tensor], num_frames: int, threads: int | None = None) -> np.ndarray:
        """``predict_video`` over ``chunks`` (``num_frames``: an upper bound), under the chosen precision."""
        if not self.quantized and wants_quantize(self.options.quantize, num_frames, self.model.device, self.amp):
            self.quantized = quantize_trunks(self.model.method, self.options.batch_size) > 0
        if not self.compiled and wants_compile(self.options.compile, num_frames, self.model.device):
            self.compiled = compile_trunks(self.model.method, self.options.batch_size) > 0
        # traced trunks run Python (fake tensors) inside autocast's cast cache, which holds a process-wide mutex while
        # doing so: no cache for them (faces.detect.fp32_guard tells the deadlock this avoids)
        ctx = (torch.autocast(self.model.device.type, dtype=torch.bfloat16,
                              cache_enabled=not (self.compiled or self.quantized))
               if self.amp == "bf16" else contextlib.nullcontext())
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode(), ctx:
                probs = self.model.method.predict_video(chunks, num_frames)
        finally:
            if threads is not None:
                torch.set_num_threads(before)
        return probs.float().cpu().numpy()
