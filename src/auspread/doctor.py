"""``auspread doctor``: check that a machine trains every method at the packaged real-data settings.

For each method the doctor loads its packaged BP4D config (``<method>_bp4d``: image size, batch, clip length,
optimiser, ``optim.amp``, ``optim.channels_last``, ``data.num_workers``), points it at a small synthetic tree in
the real BP4D layout (``auspread.data.synth``'s ``tiny`` preset, frames generated at the config's frame-store size),
and runs a few training steps through the engine's own step (:class:`auspread.engine.loop.Trainer`: the same
autocast, gradient scaler, fused optimiser, gradient averaging and memory format as a real run). It reports per
method:

* the precision and memory format the run resolved on this device;
* the step time: median over the timed steps after one warm-up step, the device synchronised around each step;
* peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak resident set (``VmHWM``) on CPU;
* frames/s consumed by the step, and frames/s the training loader delivers alone (the same ``DataLoader`` with the
  config's workers, iterated without the model): a loader slower than the step starves the device.

The first step runs at epoch 0 (the method's first phase); the warm-up and timed steps run at the config's last
epoch, where every branch is on (unlabelled clips, later stages).

Weights are random: the doctor checks mechanics and speed, so it loads no ImageNet weights (offline machines have
none) and says so in its output. With two or more GPUs (or ``distributed=True`` on CPU, gloo) it also runs one
method as a 2-process ``torchrun`` (NCCL on GPUs) and reports it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from auspread.engine import distributed as D
from auspread.engine.config import RunConfig, load_config
from auspread.engine.loop import Trainer, batch_frames, seed_everything, to_device
from auspread.engine.precision import cpu_description, resolve_amp, resolve_channels_last
from auspread.methods.base import StepContext

SYNTH_PRESET = "tiny"  # 6 subjects x 2 tasks x ~40 frames: seconds to generate; steps repeat the epoch's batches
RANDOM_WEIGHTS = ("weights: random initialisation (the doctor checks mechanics and speed; it loads no ImageNet "
                  "weights, so no figure here is a pretrained model's)")


@dataclass
class MethodCheck:
    """One method's result. ``error`` is set (and the figures are NaN) when the method failed."""

    method: str
    world_size: int = 1
    precision: str = "-"
    channels_last: bool = False
    image_size: int = 0
    batch_size: int = 0  # global batch (clips or frames, as the config counts them)
    frames_per_step: int = 0  # every frame through the step, all processes
    step_seconds: float = math.nan  # median of the timed steps
    peak_memory_mb: float = math.nan
    loader_workers: int = 0
    augment_on: str = "loader"  # data.augment_on: where training augmentation runs
    loader_fps: float = math.nan  # frames/s of the training loader alone (this process)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def step_fps(self) -> float:
        return self.frames_per_step / self.step_seconds if self.step_seconds > 0 else math.nan

    @property
    def loader_ratio(self) -> float:
        """Loader frames/s ÷ step frames/s per process (≥ 1: the loader keeps up)."""
        per_rank = self.step_fps / max(1, self.world_size)
        return self.loader_fps / per_rank if per_rank > 0 else math.nan


# --- data ---------------------------------------------------------------------------------------------------
def method_config(method: str, root: Path, cache_dir: Path, out_dir: Path, device: str,
                  image_size: int | None = None, workers: int | None = None,
                  overrides: list[str] | None = None) -> RunConfig:
    """``<method>_bp4d`` pointed at ``root`` (a BP4D-layout tree), random weights, the doctor's run folder and frame
    cache; ``image_size`` also resets the frame-store size to its default (``image_size·8/7``)."""
    extra = [f"data.root={root}", f"data.cache_dir={cache_dir}", f"out_dir={out_dir}", f"device={device}",
             "pretrained=null"]
    if image_size is not None:
        extra += [f"data.image_size={image_size}", "data.store_size=null"]
    if workers is not None:
        extra.append(f"data.num_workers={workers}")
    return load_config(f"{method}_bp4d", [*extra, *(overrides or [])])


def synthetic_tree(folder: Path, frame_size: int, progress: bool = False) -> Path:
    """A small synthetic dataset in the real BP4D layout (JPEG tree, AU CSVs, landmarks) with ``frame_size`` px
    frames, generated into ``folder`` (reused when already there)."""
    from auspread.data.synth import generate

    root = Path(folder) / f"{SYNTH_PRESET}-bp4d-{frame_size}px"
    if (root / "manifest.json").is_file():
        return root
    return generate(root, SYNTH_PRESET, "bp4d", size=max(32, int(frame_size)), progress=progress, force=True)


# --- measurements -------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device`` since the last reset, or on CPU the process's peak resident set
    (``VmHWM``, reset per method where the kernel allows; else the process's peak so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loader_rate(batches, steps: int) -> float:
    """Frames/s the training loader delivers alone (``TrainBatches.iterate``: the DataLoader, plus the on-device
    augmentation with ``data.augment_on=device``) over ``steps`` batches, after a first batch that pays for the
    workers' start-up."""
    it = batches.iterate(steps + 1)
    next(it)
    _sync(batches.device)
    t0, frames = time.perf_counter(), 0
    for b in it:
        frames += batch_frames(b)
    _sync(batches.device)
    return frames / max(time.perf_counter() - t0, 1e-9)


def _timed_steps(trainer: Trainer, batches: Iterator[dict], epoch: int, count: int, device: torch.device,
                 dist: D.DistInfo) -> tuple[list[float], int]:
    """Run ``count`` engine steps at ``epoch`` on ``batches``; (seconds of each step, frames of the last step, all
    processes). Only the step itself is timed (the batch is on the device before the clock starts)."""
    times, frames = [], 0
    spe = trainer.steps_per_epoch
    trainer.method.train()
    for _ in range(count):
        batch = to_device(next(batches), device)
        ctx = StepContext(epoch=epoch, step=trainer.step, batch_in_epoch=trainer.step % spe, steps_per_epoch=spe,
                          epochs=trainer.cfg.optim.epochs, device=device, optimizers=trainer.optimizers,
                          sync_gradients=D.sync_gradients, autocast=trainer.autocast)
        _sync(device)
        t0 = time.perf_counter()
        trainer._train_step(batch, ctx)
        _sync(device)
        times.append(time.perf_counter() - t0)
        trainer.step += 1
        frames = batch_frames(batch) * dist.world_size
    return times, frames


def check_method(cfg: RunConfig, steps: int = 3, loader_steps: int | None = None,
                 dist: D.DistInfo = D.DistInfo()) -> MethodCheck:
    """Train ``cfg``'s method for 1 + 1 + ``steps`` steps (first epoch, warm-up, timed) and measure its loader.
    Exceptions propagate (the caller reports them)."""
    from auspread.data.labels import sparsify
    from auspread.data.sampling import TrainBatches
    from auspread.engine.data import dataset_info, open_store, read_index, split_index
    from auspread.engine.restore import build_method

    device = D.resolve_device(cfg.device, dist.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    name = cfg.method.name
    amp = resolve_amp(cfg.optim.amp, device)
    cl = resolve_channels_last(cfg.optim.channels_last, amp)
    res = MethodCheck(name, world_size=dist.world_size, precision="fp32" if amp == "off" else amp, channels_last=cl,
                      image_size=cfg.data.image_size, batch_size=cfg.optim.batch_size,
                      loader_workers=cfg.data.num_workers, augment_on=cfg.data.augment_on)
    seed_everything(cfg.seed)
    index = read_index(cfg.data, progress=False)
    splits = split_index(index, cfg.data, cfg.seed)
    sparse = sparsify(splits.train, cfg.data.labels.every, cfg.data.label_seed)
    store = open_store(splits.train, cfg.data, progress=False) if dist.is_main else None
    D.barrier()  # rank 0 builds the frame store; the others then open it
    if store is None:
        store = open_store(splits.train, cfg.data, progress=False)
    info = dataset_info(sparse.index, cfg.data)
    if cfg.optim.batch_size % dist.world_size:
        raise ValueError(f"batch size {cfg.optim.batch_size} is not divisible by {dist.world_size} processes")
    _reset_peak_memory(device)
    seed_everything(cfg.seed)
    method = build_method(cfg, info, None).to(device)
    if cl:
        method = method.to(memory_format=torch.channels_last)
    batches = TrainBatches(splits.train, sparse.key_frames, store, method.data_spec(), cfg.data,
                           cfg.optim.batch_size // dist.world_size, seed=cfg.seed, rank=dist.rank,
                           world_size=dist.world_size, device=device)
    run_dir = Path(cfg.out_dir) / f"{name}-rank{dist.rank}"
    trainer = Trainer(cfg, method, batches, None, run_dir, device, dist, progress=False)
    try:
        if dist.enabled:
            D.broadcast_module(method)
        last = cfg.optim.epochs - 1
        batches.set_epoch(0)
        _timed_steps(trainer, batches.iterate(1), 0, 1, device, dist)  # the first phase runs
        batches.set_epoch(last)
        times, res.frames_per_step = _timed_steps(trainer, batches.iterate(steps + 1), last, steps + 1,
                                                  device, dist)
        res.step_seconds = statistics.median(times[1:])
        res.peak_memory_mb = peak_memory_mb(device)
    finally:
        trainer.logger.close()
    res.loader_fps = loader_rate(batches, loader_steps or max(steps, 3 * cfg.data.num_workers, 2))
    return res


def run_checks(methods: list[str], make_config: Callable[[str], RunConfig], steps: int, dist: D.DistInfo,
               loader_steps: int | None = None, echo: Callable[[str], None] = print) -> list[MethodCheck]:
    """``check_method`` for each method; a failure is recorded (with its traceback on stderr) and the next method
    runs."""
    out = []
    for m in methods:
        t0 = time.perf_counter()
        if dist.is_main:
            echo(f"  {m}: {steps + 2} steps and the loader alone ...")
        try:
            cfg = make_config(m)
            out.append(check_method(cfg, steps=steps, loader_steps=loader_steps, dist=dist))
            if dist.is_main:
                echo(f"  {m}: ok ({time.perf_counter() - t0:.0f} s)")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next method runs
            if dist.is_main:
                echo(f"  {m}: FAILED ({type(e).__name__}: {e})")
                traceback.print_exc(file=sys.stderr)
            out.append(MethodCheck(m, world_size=dist.world_size, error=f"{type(e).__name__}: {e}"))
    return out


# --- the report ---------------------------------------------------------------------------------------------
def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        nccl = torch.distributed.is_available() and torch.distributed.is_nccl_available()
        return (f"{p.name} ({p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}), "
                f"{torch.cuda.device_count()} GPU(s), CUDA {torch.version.cuda}, NCCL {'yes' if nccl else 'no'}")
    return cpu_description()


def format_table(checks: list[MethodCheck], device: torch.device) -> str:
    mem = "peak MiB (CUDA alloc.)" if device.type == "cuda" else "peak MiB (RSS)"
    head = ["method", "procs", "precision", "ch-last", "px", "frames/step", "step ms", mem, "step fr/s",
            "loader fr/s", "workers", "augment on", "loader÷step"]
    rows = []
    for c in checks:
        if not c.ok:
            rows.append([c.method, str(c.world_size), "FAILED", *[""] * (len(head) - 4), c.error or ""])
            continue
        rows.append([c.method, str(c.world_size), c.precision, "yes" if c.channels_last else "no", str(c.image_size),
                     str(c.frames_per_step), f"{1000 * c.step_seconds:.1f}", f"{c.peak_memory_mb:,.0f}",
                     f"{c.step_fps:,.1f}", f"{c.loader_fps:,.1f}", str(c.loader_workers), c.augment_on,
                     f"{c.loader_ratio:.2f}x"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if i < len(head) - 1 else len(head[i])
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def verdicts(checks: list[MethodCheck]) -> list[str]:
    """One line per method whose loader cannot keep up with its step."""
    out = []
    for c in checks:
        if c.ok and c.loader_ratio < 1:
            out.append(f"{c.method}: the loader ({c.loader_fps:,.0f} frames/s with {c.loader_workers} workers) is "
                       f"slower than the step ({c.step_fps / c.world_size:,.0f} frames/s per process): the device "
                       f"waits for data. Raise data.num_workers (CPU cores permitting)"
                       + (", or augment on the GPU: data.augment_on=device" if c.augment_on == "loader" else "")
                       + " (docs/BENCHMARKS.md, \"Can the loader feed a GPU?\")")
    return out


# --- the 2-process check ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(args: list[str], nproc: int = 2) -> list[str]:
    """``python -m torch.distributed.run`` (torchrun) on this machine running ``auspread doctor ARGS``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            "--node_rank=0", "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "auspread", "doctor",
            *args]


def run_torchrun(args: list[str], nproc: int = 2, timeout: float = 3600) -> tuple[int, str]:
    """Run the doctor under torchrun; (exit code, combined output)."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])  # the auspread being run, also in the child processes
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run(torchrun_command(args, nproc), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return 124, f"torchrun timed out after {timeout:.0f} s\n{e.stdout or ''}{e.stderr or ''}"
    return p.returncode, p.stdout + p.stderr


def make_workdir(workdir: Path | None) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """The folder for the synthetic tree, frame store and throw-away run folders (a temporary one by default)."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return Path(workdir), None
    tmp = tempfile.TemporaryDirectory(prefix="auspread-doctor-")
    return Path(tmp.name), tmp
