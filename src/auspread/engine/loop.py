"""The trainer: one loop for every method.

The engine owns device placement, mixed precision, gradient scaling, LR schedules, EMA, gradient averaging across
processes, validation, checkpoints and logging; a method only turns a batch into a loss (``Method.train_step``).

Resume granularity is the epoch: ``last.pt`` is written at the end of every epoch with the model, optimiser,
schedule, gradient-scaler, EMA and RNG states (of every rank) and the sampler position. Because the training
batches are a pure function of ``(seed, epoch)`` and every generator is restored, a resumed run repeats exactly
the steps of an uninterrupted one (bit-identical on CPU).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from auspread.engine import distributed as D
from auspread.engine.checkpoint import BEST, LAST, Key, rng_state, save_checkpoint, set_rng_state
from auspread.engine.config import OptimConfig, RunConfig
from auspread.engine.logging import RunLogger
from auspread.engine.precision import resolve_amp
from auspread.errors import ConfigError, RunError
from auspread.methods.base import Method, StepContext, StepOutput


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); deterministic cuDNN choices."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


# --- optimisers and schedules ---------------------------------------------------------------------------------
def optimizer_factory(cfg: OptimConfig) -> Callable[[list[dict]], torch.optim.Optimizer]:
    """``make_optimizer(param_groups)`` for ``Method.configure_optimizers``. A group may set its own ``lr`` or an
    ``lr_scale`` (multiplies the configured lr)."""

    def make(groups: list[dict]) -> torch.optim.Optimizer:
        groups = [dict(g) for g in groups]
        for g in groups:
            g.setdefault("lr", cfg.lr * g.get("lr_scale", 1.0))
            g["params"] = [g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"])
        kw = {"fused": True} if cfg.fused and _fusable(groups) else {}
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)

    return make


def _fusable(groups: list[dict]) -> bool:
    """torch's fused Adam/AdamW/SGD kernels take floating-point tensors on CPU, CUDA (and a few other devices) only."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


RESUME_ONLY = (Key.OPTIMIZERS, Key.SCALER)  # what only continuing a run needs: in last.pt, not in best.pt


def best_checkpoint(state: dict) -> dict:
    """``best.pt``'s content: the epoch's state without the optimiser and scaler state (two thirds of an Adam run's
    checkpoint), which only resuming needs and resuming reads from ``last.pt``."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


class LRSchedule:
    """Per-iteration LR factor: linear warm-up over ``warmup_epochs``, then ``cosine`` (to 0 at the last step),
    ``constant``, or ``step`` (× ``lr_gamma`` at each epoch in ``lr_steps``; default at 50% and 75% of training).
    Sets ``lr = base_lr × factor`` on every param group of every optimiser."""

    def __init__(self, cfg: OptimConfig, steps_per_epoch: int, optimizers: list[torch.optim.Optimizer],
                 restarts: list[int] | None = None):
        self.cfg = cfg
        self.spe = steps_per_epoch
        self.total = max(1, cfg.epochs * steps_per_epoch)
        self.warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.optimizers = optimizers
        # epochs where the schedule starts again (Method.schedule_restarts, e.g. PIAP-DF's stages): each phase has
        # its own warm-up and decay; lr_steps are then epochs relative to the phase start
        self.restarts = sorted(r for r in (restarts or []) if 0 < r < cfg.epochs)
        self.step_count = 0
        for opt in optimizers:
            for g in opt.param_groups:
                g.setdefault("base_lr", g["lr"])
        self._apply()

    def factor(self, step: int) -> float:
        total, epochs = self.total, self.cfg.epochs
        if self.restarts:
            bounds = [0, *self.restarts, self.cfg.epochs]
            for a, b in zip(bounds, bounds[1:]):
                if step >= a * self.spe:
                    start, total, epochs = a * self.spe, max(1, (b - a) * self.spe), b - a
            step -= start
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        kind = self.cfg.schedule
        if kind == "constant":
            return 1.0
        if kind == "cosine":
            span = max(1, total - self.warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup) / span)))
        milestones = self.cfg.lr_steps if self.cfg.lr_steps is not None else [0.5 * epochs, 0.75 * epochs]
        epoch = step / self.spe
        return self.cfg.lr_gamma ** sum(epoch >= m for m in milestones)

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * f

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    @property
    def lr(self) -> float:
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()


class ModelEMA:
    """Exponential moving average of a method's floating-point parameters and buffers (used for evaluation)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.lerp_(s.to(v.dtype), 1.0 - self.decay)
            else:
                v.copy_(s)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


# --- BatchNorm across processes -----------------------------------------------------------------------------------
def configure_batchnorm(method: Method, cfg: OptimConfig, dist: D.DistInfo, device: torch.device) -> None:
    """Apply ``optim.freeze_bn`` and ``optim.sync_bn`` to any method, in place, before its optimisers exist.

    ``freeze_bn``: every BatchNorm layer of the method (students, teachers, heads) normalises with its running
    statistics while training. ``sync_bn`` with several processes: every BatchNorm layer becomes a
    ``torch.nn.SyncBatchNorm`` (the same parameters and state-dict keys), so training normalises with the mean and
    variance of the global batch; teachers and EMA copies in eval mode use running statistics and synchronise
    nothing. Every rank runs the same layers the same number of times per step (true of every method here, whose
    forward passes do not depend on the data), as SyncBatchNorm's collectives require. With one process
    ``sync_bn`` changes nothing: BatchNorm already sees the whole batch.
    """
    check_batchnorm_options(cfg, dist, device)
    if cfg.freeze_bn:
        method.batchnorm_frozen = True
    if cfg.sync_bn and dist.enabled:
        nn.SyncBatchNorm.convert_sync_batchnorm(method)


def check_batchnorm_options(cfg: OptimConfig, dist: D.DistInfo, device: torch.device) -> None:
    """Refuse ``optim.sync_bn``/``optim.freeze_bn`` settings that cannot run here (called before a run starts)."""
    if cfg.sync_bn and cfg.freeze_bn:
        raise ConfigError("optim.sync_bn=true and optim.freeze_bn=true contradict each other (frozen BatchNorm layers "
                          "use running statistics and synchronise nothing): choose one")
    if cfg.sync_bn and dist.enabled and device.type != "cuda":
        raise ConfigError(f"optim.sync_bn=true needs CUDA devices: torch's SyncBatchNorm does not train on "
                          f"{device.type} tensors. With {dist.world_size} {device.type} processes use "
                          "optim.freeze_bn=true (running statistics) or optim.sync_bn=false (per-process statistics)")


# --- mixed precision ------------------------------------------------------------------------------------------
def autocast_factory(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager] | None:
    """``bf16``: ``torch.autocast(device, bfloat16)`` (CPU and CUDA); ``fp16``: CUDA only (with a GradScaler);
    ``auto``: the device's native precision (``auspread.engine.precision.resolve_amp``)."""
    amp = resolve_amp(amp, device)
    if amp == "off":
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"optim.amp=fp16 needs a CUDA device (device is {device}); use optim.amp=bf16 on CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_frames(batch: dict) -> int:
    """Frames in a batch (clips × clip length, including a nested unlabelled batch)."""
    n = 0
    f = batch.get("frames")
    if isinstance(f, torch.Tensor):
        n += int(f.shape[0] * (f.shape[1] if f.ndim == 5 else 1))
    u = batch.get("unlabelled")
    if isinstance(u, dict):
        n += batch_frames(u)
    return n


# --- the trainer ------------------------------------------------------------------------------------------------
@dataclass
class TrainHooks:
    """Test and integration hooks. ``after_step(step)`` runs after every optimisation step (it may raise, e.g. to
    simulate a killed run); ``after_epoch(epoch, record)`` after every epoch's checkpoint."""

    after_step: Callable[[int], None] | None = None
    after_epoch: Callable[[int, dict], None] | None = None


@dataclass
class FitResult:
    epochs_done: int
    steps: int
    best_epoch: int | None
    best_val_f1: float | None
    train_fps: float  # training frames per second (all processes together), excluding validation
    history: list[dict] = field(default_factory=list)


class Trainer:
    """Runs ``cfg.optim.epochs`` epochs of ``method.train_step`` over ``batches``, validating with ``validate``.

    Args:
        batches: an iterable of batch dicts with ``set_epoch(e)`` and ``len()`` (``auspread.data.sampling.TrainBatches``).
        validate: ``validate(model) -> AUScores`` on the validation split (synchronised over ranks), or None.
        checkpoint_extra: plain data stored in every checkpoint (the config, dataset info) so that a checkpoint
            alone rebuilds its model.
    """

    def __init__(self, cfg: RunConfig, method: Method, batches, validate: Callable[[nn.Module], Any] | None,
                 run_dir: Path, device: torch.device, dist: D.DistInfo = D.DistInfo(), progress: bool = True,
                 checkpoint_extra: dict | None = None, hooks: TrainHooks | None = None):
        self.cfg, self.method, self.batches, self.validate = cfg, method, batches, validate
        self.run_dir, self.device, self.dist = Path(run_dir), device, dist
        self.progress = progress and dist.is_main
        self.extra = checkpoint_extra or {}
        self.hooks = hooks or TrainHooks()
        oc = cfg.optim
        n = len(batches)
        if n == 0:
            raise RunError(f"{run_dir}: no training batches (no labelled training frames for this label policy?)")
        self.steps_per_epoch = min(n, oc.steps_per_epoch) if oc.steps_per_epoch else n
        configure_batchnorm(method, oc, dist, device)
        self.optimizers = method.configure_optimizers(optimizer_factory(oc))
        self.schedule = LRSchedule(oc, self.steps_per_epoch, self.optimizers, method.schedule_restarts())
        self.amp = resolve_amp(oc.amp, device)  # "auto" → what this device runs natively
        self.autocast = autocast_factory(self.amp, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        self.ema = ModelEMA(method, oc.ema) if oc.ema else None
        self.logger = RunLogger(self.run_dir, enabled=dist.is_main)
        self.epoch = 0  # completed epochs
        self.step = 0
        self.best_epoch: int | None = None
        self.best_val_f1: float | None = None
        self.history: list[dict] = []

    # --- state ----------------------------------------------------------------------------------------------
    def state_dict(self, val: dict | None = None) -> dict:
        rngs = D.gather_objects(rng_state())
        sampler = self.batches.state_dict() if hasattr(self.batches, "state_dict") else {}
        return {
            **self.extra,
            Key.EPOCH: self.epoch,
            Key.STEP: self.step,
            Key.WORLD_SIZE: self.dist.world_size,
            Key.MODEL: self.method.state_dict(),
            Key.EMA: self.ema.state_dict() if self.ema else None,
            Key.OPTIMIZERS: [o.state_dict() for o in self.optimizers],
            Key.SCHEDULE: self.schedule.state_dict(),
            Key.SCALER: self.scaler.state_dict() if self.scaler else None,
            Key.RNG: rngs,
            Key.SAMPLER: {"epoch": self.epoch, **sampler},
            Key.BEST: {"epoch": self.best_epoch, "val_f1": self.best_val_f1},
            Key.VAL: val,
            Key.HISTORY: self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state[Key.MODEL])
        if self.ema is not None and state.get(Key.EMA) is not None:
            self.ema.load_state_dict(state[Key.EMA])
        for o, s in zip(self.optimizers, state[Key.OPTIMIZERS]):
            o.load_state_dict(s)
        self.schedule.load_state_dict(state[Key.SCHEDULE])
        if self.scaler is not None and state.get(Key.SCALER) is not None:
            self.scaler.load_state_dict(state[Key.SCALER])
        self.epoch, self.step = int(state[Key.EPOCH]), int(state[Key.STEP])
        self.best_epoch = state[Key.BEST]["epoch"]
        self.best_val_f1 = state[Key.BEST]["val_f1"]
        self.history = list(state.get(Key.HISTORY) or [])
        if hasattr(self.batches, "load_state_dict") and len(state.get(Key.SAMPLER, {})) > 1:
            self.batches.load_state_dict({k: v for k, v in state[Key.SAMPLER].items() if k != "epoch"})
        rngs = state[Key.RNG]
        same_world = int(state.get(Key.WORLD_SIZE, 1)) == self.dist.world_size
        set_rng_state(rngs[self.dist.rank] if same_world and self.dist.rank < len(rngs) else rngs[0])
        # the logs read as one run: drop what the killed process wrote after this checkpoint
        self.logger.close()
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, purge_step=self.step + 1)
        self.logger.truncate_after(self.step, self.epoch)

    # --- one step -------------------------------------------------------------------------------------------
    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.method.parameters() if p.requires_grad]

    def _train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        m = self.method
        if m.manual_optimization:
            out = m.train_step(batch, ctx)
        else:
            for o in self.optimizers:
                o.zero_grad(set_to_none=True)
            with (self.autocast() if self.autocast else contextlib.nullcontext()):
                out = m.train_step(batch, ctx)
            if out.loss is None:
                raise RunError(f"method {m.name!r} returned no loss but does not set manual_optimization")
            if not torch.isfinite(out.loss.detach()):
                raise RunError(f"{self.run_dir}: training loss is {float(out.loss.detach())} at step {self.step} "
                               f"(epoch {self.epoch + 1}); lower optim.lr or check the data")
            if self.scaler is not None:
                self.scaler.scale(out.loss).backward()
            else:
                out.loss.backward()
            D.sync_gradients(self._params())
            for o in self.optimizers:
                if self.cfg.optim.grad_clip:
                    if self.scaler is not None:
                        self.scaler.unscale_(o)
                    torch.nn.utils.clip_grad_norm_([p for g in o.param_groups for p in g["params"]], self.cfg.optim.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(o)
                else:
                    o.step()
            if self.scaler is not None:
                self.scaler.update()
        self.schedule.step()
        if self.dist.enabled:
            D.broadcast_module(m, buffers_only=True)
        if self.ema is not None:
            self.ema.update(m)
        return out

    # --- the loop -------------------------------------------------------------------------------------------
    def fit(self, resume: dict | None = None) -> FitResult:
        if resume is not None:
            self.load_state_dict(resume)
        elif self.dist.enabled:
            D.broadcast_module(self.method)
            if self.ema is not None:
                D.broadcast_module(self.ema.module)
        cfg = self.cfg
        epochs, spe = cfg.optim.epochs, self.steps_per_epoch
        bar = None
        if self.progress:
            from auspread.progress import progress_bar

            bar = progress_bar(total=epochs * spe, initial=self.epoch * spe, unit="step", desc=f"{self.method.name}",
                               every=spe)  # off a terminal: one line per epoch
        frames_total, train_time = 0, 0.0
        last_val_f1 = self.history[-1].get("val_f1") if self.history else None
        ckpt_dir = self.run_dir / "checkpoints"
        try:
            while self.epoch < epochs:
                e = self.epoch
                self.method.train()
                if hasattr(self.batches, "set_epoch"):
                    self.batches.set_epoch(e)
                loss_sum, loss_n, logs_sum = 0.0, 0, {}
                ep_frames, ep_time = 0, 0.0
                t0 = time.perf_counter()
                it = iter(self.batches)
                for b in range(spe):
                    try:
                        batch = next(it)
                    except StopIteration:
                        raise RunError(f"training batches ended after {b} of {spe} steps in epoch {e + 1}") from None
                    batch = to_device(batch, self.device)
                    ctx = StepContext(epoch=e, step=self.step, batch_in_epoch=b, steps_per_epoch=spe, epochs=epochs,
                                      device=self.device, optimizers=self.optimizers,
                                      sync_gradients=D.sync_gradients, autocast=self.autocast, scaler=self.scaler)
                    out = self._train_step(batch, ctx)
                    nf = batch_frames(batch) * self.dist.world_size
                    ep_frames += nf
                    self.step += 1
                    loss = float(out.loss.detach()) if out.loss is not None else float(out.logs.get("loss", float("nan")))
                    loss_sum += loss
                    loss_n += 1
                    for k, v in out.logs.items():
                        logs_sum[k] = logs_sum.get(k, 0.0) + float(v)
                    if self.step % cfg.log_every == 0:
                        self.logger.log("train", self.step, e + 1, {"loss": loss, "lr": self.schedule.lr, **out.logs})
                    if bar is not None:
                        el = time.perf_counter() - t0
                        bar.set_postfix_str(
                            f"epoch {e + 1}/{epochs} loss {loss_sum / loss_n:.4f} val_F1 "
                            f"{'-' if last_val_f1 is None else f'{100 * last_val_f1:.1f}'} {ep_frames / max(el, 1e-9):.0f} fr/s")
                        bar.update(1)
                    if self.hooks.after_step is not None:
                        self.hooks.after_step(self.step)
                ep_time = time.perf_counter() - t0
                frames_total += ep_frames
                train_time += ep_time
                self.epoch = e + 1
                rec = {"loss": loss_sum / max(1, loss_n), **{k: v / max(1, loss_n) for k, v in logs_sum.items()}}
                rec = D.all_reduce_mean(rec)
                rec.update({"lr": self.schedule.lr, "train_fps": ep_frames / max(ep_time, 1e-9), "train_seconds": ep_time})
                rec.update(self.method.on_epoch_end(e))
                val = None
                if (self.validate is not None and self.method.selectable_epoch(self.epoch)
                        and (self.epoch % cfg.eval_every == 0 or self.epoch == epochs)):
                    tv = time.perf_counter()
                    scores = self.validate(self.ema.module if self.ema else self.method)
                    val = scores.to_dict()
                    last_val_f1 = scores.mean_f1
                    rec.update({"val_f1": scores.mean_f1, "val_accuracy": scores.mean_accuracy,
                                "val_seconds": time.perf_counter() - tv})
                    self.logger.log("val", self.step, self.epoch, {"mean_f1": scores.mean_f1, "mean_accuracy": scores.mean_accuracy,
                                                                   **{f"f1_AU{a}": f for a, f in zip(scores.aus, scores.f1)}})
                    if math.isfinite(scores.mean_f1) and (self.best_val_f1 is None or scores.mean_f1 > self.best_val_f1):
                        self.best_val_f1, self.best_epoch = scores.mean_f1, self.epoch
                        rec["best"] = True
                rec["epoch"] = self.epoch
                self.history.append(rec)
                self.logger.log("epoch", self.step, self.epoch, rec)
                state = self.state_dict(val)  # every rank takes part (RNG gather)
                if self.dist.is_main:
                    save_checkpoint(ckpt_dir / LAST, state)
                    if rec.get("best"):
                        save_checkpoint(ckpt_dir / BEST, best_checkpoint(state))
                    self.logger.flush()
                D.barrier()
                if self.hooks.after_epoch is not None:
                    self.hooks.after_epoch(self.epoch, rec)
            if self.validate is None:  # no model selection: the last epoch is the best
                self.best_epoch = self.epoch
                state = self.state_dict()
                if self.dist.is_main:
                    save_checkpoint(ckpt_dir / BEST, best_checkpoint(state))
        finally:
            if bar is not None:
                bar.close()
            self.logger.close()
        return FitResult(self.epoch, self.step, self.best_epoch, self.best_val_f1,
                         frames_total / max(train_time, 1e-9) if train_time else 0.0, self.history)
