"""Multi-process training on CPU (gloo): gradient averaging, every collective under a process group without a
CPU backend (as NCCL is), and a 2-process torchrun run that matches the single-process run with the same global
batch."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from auspread.engine import distributed as D


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_worker(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    info = D.init_distributed(torch.device("cpu"))
    assert D.cpu_group() is None  # gloo serves CPU tensors itself: no side group
    try:
        a = torch.nn.Parameter(torch.zeros(3))
        b = torch.nn.Parameter(torch.zeros(2, 2))
        unused = torch.nn.Parameter(torch.zeros(1))
        a.grad = torch.full((3,), float(rank + 1))
        b.grad = torch.full((2, 2), 10.0 * rank)
        if rank == 1:
            unused.grad = torch.ones(1)  # used on one rank only
        D.sync_gradients([a, b, unused])
        counts = D.all_reduce_sum(torch.tensor([rank + 1]))
        logs = D.all_reduce_mean({"loss": float(rank)})
        out.put((info.rank, a.grad.tolist(), b.grad.flatten().tolist(), unused.grad.tolist(), counts.item(), logs["loss"]))
    finally:
        D.cleanup()


def test_sync_gradients_averages_over_two_processes():
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(_sync_worker, args=(_free_port(), q), nprocs=2, start_method="spawn")
    res = sorted(q.get() for _ in range(2))
    for rank, a, b, unused, counts, loss in res:
        assert a == [1.5] * 3 and b == [5.0] * 4 and unused == [0.5]
        assert counts == 3 and loss == 0.5


class _FixedMethod(torch.nn.Module):
    """Predicts ``offset`` for every frame and AU (evaluate_split never reads the store then)."""

    def predict_video(self, chunks, num_frames):
        return torch.full((num_frames, 2), float(self.offset))


class _Video:
    def __init__(self, i: int, n: int):
        self.video_id, self.labels = f"v{i}", np.ones((n, 2), dtype=np.int8)
        self.frame_numbers = np.arange(n)

    def __len__(self) -> int:
        return len(self.labels)


class _Index:
    aus, num_aus = (1, 2), 2
    videos = tuple(_Video(i, 3 + i) for i in range(3))


def _no_cpu_backend_worker(rank: int, port: int, run_dir: str, out) -> None:
    """Rank ``rank`` of a 2-process gloo group registered for CUDA tensors only, so that a collective on a CPU
    tensor fails exactly as under NCCL ("No backend type associated with device type cpu")."""
    import torch.distributed as dist
    from engine_fakes import FakeBatches, config, info, make_validate

    from auspread.engine.loop import Trainer, seed_everything
    from auspread.engine.run import build_method
    from auspread.evaluation.dense import evaluate_split

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group(backend="cuda:gloo", rank=rank, world_size=2)
    try:
        with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
            dist.all_reduce(torch.ones(1))  # the failure this test guards against
        d = D.init_distributed(torch.device("cpu"))
        assert D.group_device_types() == {"cuda"} and D.cpu_group() is not None
        a = torch.nn.Parameter(torch.zeros(2))
        a.grad = torch.full((2,), float(rank))
        D.sync_gradients([a])
        m = torch.nn.BatchNorm1d(2)
        m.running_mean.fill_(rank + 1.0)
        D.broadcast_module(m)
        res = {"grad": a.grad.tolist(), "bn": m.running_mean.tolist(), "sum": D.all_reduce_sum(torch.tensor([rank + 1])).item(),
               "mean": D.all_reduce_mean({"loss": float(rank)})["loss"], "gathered": D.gather_objects(rank),
               "bcast": D.broadcast_object(f"from {rank}")}
        D.barrier()
        # one epoch of the trainer (gradient sync, buffer broadcast, log means, RNG gather, barrier)
        cfg = config(run_dir, "optim.epochs=1", "method.freeze_bn=true")
        seed_everything(cfg.seed)
        t = Trainer(cfg, build_method(cfg, info(32)), FakeBatches(n=16, rank=rank, world_size=2), make_validate(),
                    run_dir, torch.device("cpu"), d, progress=False)
        res["steps"] = t.fit().steps
        # dense evaluation: counts summed and (validation thresholds) predictions gathered over ranks
        method = _FixedMethod()
        method.offset = 0.9 if rank == 0 else 0.1  # rank 0 predicts every AU present, rank 1 absent
        scores, preds = evaluate_split(method, None, _Index(), None, torch.device("cpu"), dist=d, keep_predictions=True)
        res["support"] = scores.support.tolist()
        res["recall"] = scores.recall.tolist()
        res["preds"] = None if preds is None else [float(p[0, 0]) for p in preds.probs]
        out.put((rank, res))
    finally:
        D.cleanup()


def test_collectives_work_without_a_cpu_backend(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.start_processes(_no_cpu_backend_worker, args=(_free_port(), str(tmp_path / "run"), q), nprocs=2,
                       start_method="spawn")
    res = dict(q.get() for _ in range(2))
    for rank, r in res.items():
        assert r["grad"] == [0.5, 0.5] and r["bn"] == [1.0, 1.0] and r["sum"] == 3 and r["mean"] == 0.5
        assert r["gathered"] == ([0, 1] if rank == 0 else None) and r["bcast"] == "from 0"
        assert r["steps"] == 2
        # videos 0, 2 on rank 0 (3 + 5 frames, all predicted present), video 1 on rank 1 (4 frames, absent)
        assert r["support"] == [12, 12] and r["recall"] == pytest.approx([8 / 12] * 2)
    assert res[0]["preds"] == pytest.approx([0.9, 0.1, 0.9]) and res[1]["preds"] is None
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_single_process_helpers_are_no_ops():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    D.sync_gradients([p])
    assert p.grad.tolist() == [1.0, 1.0]
    assert D.gather_objects(3) == [3] and D.all_reduce_mean({"a": 2.0}) == {"a": 2.0}


# exact per-sample network (BatchNorm on running statistics) and no augmentation, so that the 2 x 4-frame
# shards of a step see exactly what the single process sees in its 8-frame batch
SAME = ["method.name=supervised", "pretrained=null", "method.freeze_bn=true", "data.labels=100%", "data.synth_preset=tiny", "data.image_size=32", "data.augment.flip=false",
        "data.augment.rotation=0", "data.augment.color_jitter=0", "data.augment.crop=false", "optim.epochs=1",
        "optim.batch_size=8", "optim.steps_per_epoch=4", "optim.optimizer=sgd", "optim.lr=0.05", "threads=1"]


@pytest.mark.slow
def test_two_process_torchrun_matches_single_process(tmp_path):
    from auspread.engine.checkpoint import load_checkpoint
    from auspread.engine.config import load_config
    from auspread.engine.run import run_training

    run_training(load_config(None, [*SAME, f"out_dir={tmp_path}", "name=single"]), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--node_rank=0",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "auspread", "train", "-q",
           *SAME, f"out_dir={tmp_path}", "name=ddp"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == str(tmp_path / "ddp")  # rank 0 prints, once
    a = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4 and b["world_size"] == 2
    # both runs start from the same weights; the difference between them must be small compared with how far
    # training moved them. They differ by float summation order and, where a step's two shards hold different
    # numbers of known labels (BP4D-style unknown cells), by averaging two per-shard masked means instead of one
    # (on a step with equal counts the averaged gradient equals the full-batch gradient to 1e-7).
    from auspread.engine.config import build_config
    from auspread.engine.data import info_from_dict
    from auspread.engine.loop import seed_everything
    from auspread.engine.run import build_method

    seed_everything(0)
    init = build_method(build_config(a["config"]), info_from_dict(a["dataset_info"])).state_dict()
    keys = [k for k, v in a["model"].items() if v.dtype.is_floating_point]
    moved = torch.sqrt(sum(((a["model"][k] - init[k]) ** 2).sum() for k in keys))
    diff = torch.sqrt(sum(((a["model"][k] - b["model"][k]) ** 2).sum() for k in keys))
    print(f"ddp vs single: |diff| {float(diff):.3g}, |moved| {float(moved):.3g}")
    assert moved > 0 and diff < 0.1 * moved, (float(diff), float(moved))
    ha, hb = a["history"][0], b["history"][0]
    assert hb["loss"] == pytest.approx(ha["loss"], rel=0.05)
    # validation was sharded over the 2 ranks and the counts summed: it equals a 1-process evaluation of that model
    from auspread.engine.run import evaluate_run

    r = evaluate_run(tmp_path / "ddp", split="val", progress=False, out_dir=tmp_path / "ddp-val")
    assert r.scores.mean_f1 == pytest.approx(hb["val_f1"], abs=1e-9)
    assert (tmp_path / "ddp" / "results" / "test_f1.md").is_file()
    assert not (tmp_path / "ddp-2").exists()  # one run folder, made by rank 0
    # the validation thresholds were chosen on predictions gathered from both ranks: the same as on one process
    import json

    from auspread.engine.run import calibrate_run

    ddp_th = json.loads((tmp_path / "ddp" / "results" / "thresholds.json").read_text())
    assert calibrate_run(tmp_path / "ddp", progress=False).thresholds.values == tuple(ddp_th["values"])
