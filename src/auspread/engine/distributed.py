"""Multi-process training without DDP wrappers.

``torchrun --nproc_per_node=N -m auspread train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and joins the process group (gloo on
CPU, NCCL on CUDA, one GPU per local rank). Multi-node is the same command with torchrun's node arguments
(see docs/training.md).

Why methods are not wrapped in ``DistributedDataParallel``: DDP hooks the wrapped module's ``forward`` and
expects one forward/backward per step through that wrapper. A method's ``train_step`` is not ``forward``: it calls
several sub-networks (teachers without gradients, students, auxiliary heads), may leave parameters unused in a
step (KS selects one spatial student per batch) and may run several backward/step pairs (PIAP-DF's teacher and
student). Instead the engine averages gradients explicitly with :func:`sync_gradients` after ``backward`` and
before ``optimizer.step()`` (methods with manual optimisation call it through ``StepContext.sync_gradients``),
and broadcasts buffers (BatchNorm statistics) from rank 0 after each step, as DDP does. The cost is that the
all-reduce does not overlap the backward pass; for the models here that is small.

Which group carries a collective: NCCL (the CUDA process group) serves CUDA tensors only, and a collective on a
CPU tensor raises "No backend type associated with device type cpu". Tensors therefore go to the default group
only when it has a backend for their device type; CPU tensors otherwise go through a gloo side group, created
once when the process joins (:func:`cpu_group`). Picklable objects (run folder, RNG states, gathered validation
predictions) and barriers always use the CPU-capable group, so they never need a CUDA staging buffer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (the local rank's GPU) if available, else CPU; otherwise the named device."""
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(pref)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            from auspread.errors import ConfigError

            raise ConfigError(f"device={pref!r} but CUDA is not available (use device=auto or device=cpu)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment (no-op with one process)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    backend = dist.get_backend()
    cpu_group()  # collective: every rank creates the gloo side group (if one is needed) at the same point
    if device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _side_groups.clear()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def group_device_types() -> set[str]:
    """Device types the default process group has a backend for, from ``get_backend_config()`` (``"cuda:nccl"``
    → ``{"cuda"}``; ``"gloo"`` → ``"cpu:gloo,cuda:gloo"`` → ``{"cpu", "cuda"}``)."""
    config = dist.get_backend_config()
    return {part.split(":", 1)[0].strip() for part in config.split(",") if ":" in part}


_side_groups: dict[int, Any] = {}  # id(default group) → gloo side group for CPU tensors and objects


def cpu_group():
    """The group that carries CPU tensors and picklable objects: ``None`` (the default group) when the default
    group has a CPU backend (gloo), else a gloo group over the same ranks, created on first use. Creating a group
    is collective, so :func:`init_distributed` calls this once on every rank."""
    if "cpu" in group_device_types():
        return None
    key = id(dist.group.WORLD)
    if key not in _side_groups:
        _side_groups[key] = dist.new_group(backend="gloo")
    return _side_groups[key]


def _group_for(device: torch.device):
    """The group for a tensor collective on ``device``: the default group where it serves that device type, the
    gloo side group for CPU tensors otherwise."""
    if device.type in group_device_types():
        return None
    if device.type == "cpu":
        return cpu_group()
    raise RuntimeError(f"the process group ({dist.get_backend_config()}) has no backend for {device.type} tensors")


def sync_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average ``.grad`` over processes (one flattened all-reduce per dtype/device). No-op with one process.

    Parameters without a gradient on this rank get a zero gradient first, so every rank reduces the same tensors
    (a parameter unused in a step on one rank but used on another still gets the correct mean).
    """
    if not _active():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    world = dist.get_world_size()
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=_group_for(flat.device))
        flat /= world
        off = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[off:off + n].view_as(g))
            off += n


def broadcast_module(module: nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters (unless ``buffers_only``) and buffers to every rank."""
    if not _active():
        return
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += [b for b in module.buffers()]
    for t in tensors:
        dist.broadcast(t, src, group=_group_for(t.device))


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over processes (a new tensor; ``t`` itself with one process)."""
    if not _active():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=_group_for(t.device))
    return t


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Mean of scalar logs over processes (keys must match across ranks)."""
    if not _active() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=_group_for(t.device))
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def gather_objects(obj: Any, dst: int = 0) -> list[Any] | None:
    """Picklable objects of every rank, on ``dst`` (``None`` elsewhere); ``[obj]`` with one process."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst, group=cpu_group())
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, group=cpu_group())
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier(group=cpu_group())


__all__ = ["DistInfo", "init_distributed", "cleanup", "sync_gradients", "broadcast_module", "all_reduce_sum",
           "all_reduce_mean", "gather_objects", "broadcast_object", "barrier", "resolve_device", "env_world_size",
           "cpu_group", "group_device_types"]
