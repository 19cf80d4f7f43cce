"""The contract between the engine and a training method.

A method is an ``nn.Module`` that owns its networks and knows how to turn one batch into a loss. The engine owns
the loop, devices, AMP, schedules, checkpoints, logging and distribution, and never branches on a method's name.

Batch format (a ``dict[str, Tensor]`` produced by ``auspread.data.sampling`` and moved to the device by the engine)::

    frames      float (B, n, 3, H, W)  normalised clip(s); n = DataSpec.clip_len (1 for frame methods)
    labels      float (B, n, U)        labels the method may use: 1, 0, or -1 = unknown (hidden by the label policy)
    key_pos     long  (B,)             index in [0, n) of the clip's labelled key frame, -1 for a fully unlabelled clip
    true_labels float (B, n, U)        the hidden ground truth (-1 where the dataset itself has none). For *logging
                                       only* (e.g. pseudo-label accuracy); a method must never put it in a loss.
    subject     long  (B,)             subject index within the training split (identity tasks, e.g. PIAP-DF)
    video       long  (B,)             video index within the training split
    frame       long  (B, n)           frame position within its video
    strong      float (B, n, 3, H, W)  only if DataSpec.strong_view: a strongly augmented view of the same clip
    landmarks   float (B, n, P, 2)     only if DataSpec.landmarks: landmarks in the transformed crop's pixels
    unlabelled  dict                   only if DataSpec.unlabelled_ratio > 0: a nested batch of the same keys with
                                       mu·B fully unlabelled clips (key_pos = -1, labels all -1)

Every tensor has the same clip length n within a batch. Key-frame shifting (KS §3.1.2, supplement §1.2):
when DataSpec.key_frame_shift is set, every clip of batch number b has its key frame at position m = b mod n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from auspread.data.spec import DataSpec  # noqa: F401 (re-exported: the contract's data half)


class MethodOptions(BaseModel):
    """Base of every method's typed options. Subclasses set ``name: Literal["<method>"] = "<method>"``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: str


@dataclass(frozen=True)
class DatasetInfo:
    """What a method may know about its training data when it is built."""

    dataset: str
    aus: tuple[int, ...]
    class_weights: torch.Tensor  # (U,) w_j = U·(1/r_j)/Σ(1/r_k) on the training labels (reference C.4)
    num_subjects: int  # subjects in the training split
    image_size: int  # network input side in pixels
    fps: float

    @property
    def num_aus(self) -> int:
        return len(self.aus)


@dataclass
class StepContext:
    """Where the loop is. ``progress`` is epoch-level progress in [0, epochs] as a float (epoch + i/steps)."""

    epoch: int
    step: int  # global optimisation step, 0-based
    batch_in_epoch: int
    steps_per_epoch: int
    epochs: int
    device: torch.device
    # for methods with manual_optimization: the optimisers from configure_optimizers, and a callable that
    # averages gradients across processes (no-op when not distributed). Call it after backward, before step.
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    sync_gradients: Callable[[Iterable[nn.Parameter]], None] = lambda params: None
    autocast: Callable[[], Any] | None = None  # context manager factory for mixed precision
    # the engine's torch.amp.GradScaler when training in fp16 (None otherwise). Methods with manual_optimization
    # back-propagate with ``ctx.backward(loss)``, step with ``ctx.optimizer_step(optimizer)`` and end the training
    # step with ``ctx.update_scale()``, so fp16 gradients are scaled against underflow and steps with inf/NaN are
    # skipped.
    scaler: Any = None

    @property
    def progress(self) -> float:
        return self.epoch + self.batch_in_epoch / max(1, self.steps_per_epoch)

    def backward(self, loss: torch.Tensor) -> None:
        scaled_backward(loss, self.scaler)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        scaled_step(optimizer, self.scaler)

    def update_scale(self) -> None:
        """Adjust the gradient scale once per training step, after the step's last ``ctx.optimizer_step``."""
        if self.scaler is not None:
            self.scaler.update()


def scaled_backward(loss: torch.Tensor, scaler: Any = None) -> None:
    """``loss.backward()``, through ``scaler.scale`` when a GradScaler is given (fp16 training)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def scaled_step(optimizer: torch.optim.Optimizer, scaler: Any = None) -> None:
    """``optimizer.step()``, through ``scaler.step`` when a GradScaler is given (unscales the gradients first, skips
    the step when they hold inf/NaN)."""
    if scaler is not None:
        scaler.step(optimizer)
    else:
        optimizer.step()


@dataclass
class StepOutput:
    """A training step's result: the loss for the engine to back-propagate (None when the method did its own
    update), and scalar logs (floats) for the progress bar, metrics.jsonl and TensorBoard."""

    loss: torch.Tensor | None
    logs: dict[str, float] = field(default_factory=dict)


class Method(nn.Module):
    """Base class. Subclasses register with ``@register_method`` and set ``name`` and ``Options``."""

    name: ClassVar[str]
    Options: ClassVar[type[MethodOptions]]
    manual_optimization: ClassVar[bool] = False  # True: train_step does backward/step itself (PIAP-DF)
    # True: every BatchNorm layer stays in eval mode (running statistics) when the method is put in training mode;
    # the engine sets it for optim.freeze_bn (a method may set it from its own options)
    batchnorm_frozen: bool = False

    def __init__(self, options: MethodOptions, info: DatasetInfo):
        super().__init__()
        self.options = options
        self.info = info

    def register_class_weights(self, info: DatasetInfo, enabled: bool) -> None:
        """Register the ``class_weights`` buffer ``(U,)`` (saved with the weights): the training split's per-AU
        weights ``info.class_weights`` if ``enabled``, else ones."""
        w = info.class_weights if enabled else torch.ones(info.num_aus)
        self.register_buffer("class_weights", torch.as_tensor(w, dtype=torch.float32).clone(), persistent=True)

    # --- training ----------------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.batchnorm_frozen:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def data_spec(self) -> DataSpec:
        return DataSpec()

    def param_groups(self) -> list[dict]:
        """Parameter groups for the engine's single optimiser (ignored when manual_optimization builds its own)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self, make_optimizer: Callable[[list[dict]], torch.optim.Optimizer]) -> list[torch.optim.Optimizer]:
        """Optimisers for this method. The default is one optimiser (type, lr, decay from the run config) over
        ``param_groups()``; methods that need several (PIAP-DF teacher and student) return several."""
        return [make_optimizer(self.param_groups())]

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Hook after each epoch; returns extra logs."""
        return {}

    def selectable_epoch(self, epoch: int) -> bool:
        """Whether the model after ``epoch`` completed epochs may be validated and selected as best (multi-stage
        methods, e.g. PIAP-DF, allow only their final stage). Default: every epoch."""
        return True

    def schedule_restarts(self) -> list[int]:
        """Epochs (0-based) where the engine restarts the LR schedule (warm-up and decay), e.g. at each stage of a
        multi-stage method. Default: none (one schedule over the whole run)."""
        return []

    # --- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_video(self, chunks: Iterable[torch.Tensor], num_frames: int) -> torch.Tensor:
        """Per-frame AU probabilities ``(T, U)`` for one whole video.

        ``chunks`` yields consecutive normalised frame batches ``(k, 3, H, W)`` already on the device, covering
        frames 0..T-1 in order exactly once. Temporal methods must compute per-frame backbone features once and
        reuse them across overlapping clips. The default treats the method as a frame classifier.
        """
        return torch.cat([self.predict_frames(c) for c in chunks])[:num_frames]

    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``(k, 3, H, W) -> (k, U)`` probabilities, for frame-level methods."""
        raise NotImplementedError

    def export_module(self) -> nn.Module:
        """A self-contained inference model ``(k, 3, H, W) -> (k, U)`` probabilities for ``auspread export``
        (TorchScript / ONNX). Methods whose inference is not a per-frame network do not provide one."""
        from auspread.errors import ConfigError

        raise ConfigError(f"method {self.name!r} has no self-contained per-frame inference model to export "
                          "(export supports methods that implement Method.export_module, e.g. supervised, piap-df)")


# --- registry -------------------------------------------------------------------------------------------------
_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} registered twice")
    _METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    _import_all()
    return sorted(_METHODS)


def get_method(name: str) -> type[Method]:
    _import_all()
    if name not in _METHODS:
        from auspread.errors import ConfigError

        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def _import_all() -> None:
    import auspread.methods  # noqa: F401  (imports every method module, which registers itself)
