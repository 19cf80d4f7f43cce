"""The Python API of ``auspread pretrain``.

- :func:`run_pretrain` ``(cfg) -> PretrainSummary``: an engine run (``Trainer``: progress, ``last.pt`` every epoch,
  resume, ``optim.amp``, torchrun) of the objective's pretrainer (:class:`~auspread.pretrain.byol.BYOLPretrainer`
  or :class:`~auspread.pretrain.simclr.SimCLRPretrainer`) on the frames of the fold's training subjects
  (``split_index(...).train``: neither the validation nor the test subjects), ending in
  ``RUN/trunk.pt``. With ``out_dir`` unset the run folder is the cache entry
  ``$AUSPREAD_CACHE/pretrain/<dataset>-f<fold>-<size>px-<arch>-<key>`` (:func:`~auspread.pretrain.config.cache_key`):
  a finished entry is returned at once, a killed one resumes where its ``last.pt`` stopped.
- :func:`resolve_pretrained` ``(run_cfg) -> run_cfg``: what ``run_training`` does with ``pretrained=``:
  ``pretrain:auto`` (the cached trunk for this run's data, seed and the method's architecture, pretrained on the
  spot if missing), ``pretrain:<recipe.yaml>``, a pretrain run folder or its ``trunk.pt``; a trunk of another image
  size, architecture, or of another fold of the same dataset is refused with a ``ConfigError``.
- :func:`linear_probe` ``(cfg, trunk) -> ProbeResult``: frozen trunk, logistic-regression head on the labelled
  training frames (``data.labels``), mean F1 on the validation subjects.

``trunk.pt`` is a plain dict (loads with ``weights_only=True``): ``format`` (:data:`TRUNK_FORMAT`), ``arch``,
``image_size``, ``store_size``, ``dataset``, ``data`` (identity), ``fold``, ``subjects`` (the pretraining
subjects), ``recipe``, ``optim``, ``key``, ``config``, ``steps``, ``train_seconds``, ``precision`` and
``state_dict`` (torchvision names, no head), which ``models.backbones.load_pretrained_state`` reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from auspread.engine import distributed as D
from auspread.engine.checkpoint import BEST, LAST, Key, load_checkpoint
from auspread.engine.data import dataset_info, eval_transform, info_to_dict, open_store, read_index, split_index
from auspread.engine.loop import FitResult, Trainer, TrainHooks, seed_everything
from auspread.engine.precision import resolve_amp, resolve_channels_last
from auspread.errors import ConfigError, RunError
from auspread.io import atomic_path, atomic_write_text
from auspread.pretrain.config import (TRUNK_FORMAT, PretrainConfig, build_pretrain_config, cache_dir, cache_key,
                                      cache_name, data_identity, pretrain_config_to_dict)

TRUNK = "trunk.pt"


@dataclass
class PretrainSummary:
    run_dir: Path
    trunk: Path
    cached: bool  # True: an existing cache entry was returned, nothing was trained
    epochs: int
    steps: int
    train_seconds: float  # training time summed over epochs (over resumes too)
    wall_seconds: float  # this call, data preparation included
    loss_first: float | None  # mean loss of the objective (SimCLR or BYOL) in the first and last epoch
    loss_last: float | None
    precision: str | None
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "history"}


def _summary_from_dir(run_dir: Path) -> PretrainSummary:
    d = json.loads((run_dir / "summary.json").read_text())
    d.update(run_dir=run_dir, trunk=run_dir / TRUNK, cached=True, wall_seconds=0.0)
    return PretrainSummary(**d)


def _run_dir(cfg: PretrainConfig, dist: D.DistInfo) -> tuple[Path, dict | None]:
    """The run folder and, for a killed cache entry, its ``last.pt`` state to resume from."""
    if cfg.out_dir is None:
        run_dir = cache_dir() / cache_name(cfg)
        if (run_dir / "checkpoints" / LAST).is_file():
            return run_dir, load_checkpoint(run_dir / "checkpoints" / LAST)
        if dist.is_main and run_dir.exists():  # killed before its first epoch ended: start again, cleanly
            shutil.rmtree(run_dir)
    else:
        name = cfg.name or f"pretrain-{cache_name(cfg)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(cfg.out_dir) / name
        if dist.is_main and run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(f"{run_dir}: run folder exists and is not empty (pick another name, or --resume it)")
    D.barrier()
    return run_dir, None


@contextlib.contextmanager
def _cache_lock(path: Path, enabled: bool = True, progress: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (one cache entry): a second process asking for the same trunk (parallel
    study cells, two benchmark runs) waits for the first, then finds its ``trunk.pt``. Held by rank 0 only."""
    if not enabled:
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"waiting for another process pretraining the same trunk ({path.with_suffix('')})", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_pretrain(cfg: PretrainConfig, progress: bool = True, resume: Path | str | None = None,
                 hooks: TrainHooks | None = None) -> PretrainSummary:
    """Pretrain (or continue a killed run ``resume``, or return the finished cache entry); write ``RUN/trunk.pt``."""
    if resume is None and cfg.out_dir is None:
        lock = cache_dir() / f"{cache_name(cfg)}.lock"
        with _cache_lock(lock, enabled=os.environ.get("RANK", "0") == "0", progress=progress):
            return _run_pretrain(cfg, progress, None, hooks)
    return _run_pretrain(cfg, progress, resume, hooks)


def _run_pretrain(cfg: PretrainConfig, progress: bool, resume: Path | str | None, hooks: TrainHooks | None) -> PretrainSummary:
    from auspread.engine.run import check_run_dir
    from auspread.pretrain.simclr import build_pretrainer
    from auspread.pretrain.views import PretrainBatches

    t_start = time.time()
    device = D.resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = D.init_distributed(device)
    if resume is not None:
        run_dir = check_run_dir(resume, need=LAST)
        state = load_checkpoint(run_dir / "checkpoints" / LAST)
        cfg = build_pretrain_config(state[Key.CONFIG])
    else:
        if cfg.out_dir is None and (cache_dir() / cache_name(cfg) / TRUNK).is_file():
            return _summary_from_dir(cache_dir() / cache_name(cfg))
        run_dir, state = _run_dir(cfg, dist)
    if (run_dir / TRUNK).is_file():
        raise RunError(f"{run_dir}: pretraining already finished ({run_dir / TRUNK}); nothing to resume")
    show = progress and dist.is_main
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.optim.batch_size % dist.world_size:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} must be divisible by the number of processes "
                          f"({dist.world_size})")
    if (cfg.optim.batch_size // dist.world_size) % cfg.recipe.frames_per_video:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} gives each of {dist.world_size} process(es) "
                          f"{cfg.optim.batch_size // dist.world_size} frames, not a multiple of "
                          f"recipe.frames_per_video={cfg.recipe.frames_per_video}")
    index = read_index(cfg.data, progress=show) if dist.is_main else None
    D.barrier()
    if index is None:
        index = read_index(cfg.data, progress=False)
    splits = split_index(index, cfg.data, cfg.seed)
    train = splits.train
    store = open_store(train, cfg.data, show) if dist.is_main else None  # rank 0 builds the frame store first
    D.barrier()
    store = store if store is not None else open_store(train, cfg.data, False)
    info = dataset_info(train, cfg.data)
    seed_everything(cfg.seed)
    method = build_pretrainer(cfg.recipe, info).to(device)
    if resolve_channels_last(cfg.optim.channels_last, resolve_amp(cfg.optim.amp, device)):
        method = method.to(memory_format=torch.channels_last)
    if dist.rank > 0:
        seed_everything(cfg.seed + 1_000_003 * dist.rank)
    batches = PretrainBatches(train, store, cfg.data.image_size, cfg.recipe.views, cfg.recipe.temporal_offset,
                              cfg.optim.batch_size // dist.world_size, cfg.seed, dist.rank, dist.world_size,
                              cfg.data.num_workers, cfg.recipe.frames_per_video)
    if dist.is_main and state is None:
        import yaml

        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(pretrain_config_to_dict(cfg), sort_keys=False))
        atomic_write_text(run_dir / "data.json", json.dumps({
            "root": index.root, "dataset": index.dataset, "subjects": splits.subjects, "pretrained_on": "train",
            "frames": int(train.num_frames), "key": cache_key(cfg), "world_size": dist.world_size}, indent=2))
    D.barrier()
    extra = {Key.CONFIG: pretrain_config_to_dict(cfg), Key.DATASET_INFO: info_to_dict(info), Key.KIND: "pretrain"}
    trainer = Trainer(cfg, method, batches, None, run_dir, device, dist, progress=show, checkpoint_extra=extra,
                      hooks=hooks)
    fit: FitResult = trainer.fit(state)
    D.barrier()
    hist = fit.history
    summary = PretrainSummary(
        run_dir=run_dir, trunk=run_dir / TRUNK, cached=False, epochs=fit.epochs_done, steps=fit.steps,
        train_seconds=float(sum(h.get("train_seconds", 0.0) for h in hist)), wall_seconds=time.time() - t_start,
        loss_first=hist[0]["loss"] if hist else None, loss_last=hist[-1]["loss"] if hist else None,
        precision=trainer.amp, history=hist)
    if dist.is_main:  # trunk.pt last: it marks the run (and the cache entry) finished
        atomic_write_text(run_dir / "summary.json", json.dumps(
            {k: v for k, v in summary.to_dict().items() if k not in ("run_dir", "trunk", "cached", "wall_seconds")},
            indent=2))
        (run_dir / "checkpoints" / BEST).unlink(missing_ok=True)  # = last.pt (no validation): not kept twice
        write_trunk(run_dir / TRUNK, cfg, method.trunk_state(), dataset=index.dataset,
                    subjects=splits.subjects["train"], steps=fit.steps, train_seconds=summary.train_seconds,
                    precision=trainer.amp)
    D.barrier()
    return summary


def write_trunk(path: Path, cfg: PretrainConfig, state_dict: dict, *, dataset: str, subjects: list[str],
                steps: int = 0, train_seconds: float = 0.0, precision: str | None = None) -> Path:
    """Atomically write a trunk file (the module docstring lists its keys)."""
    payload = {
        "format": TRUNK_FORMAT, "arch": cfg.recipe.arch, "image_size": cfg.data.image_size,
        "store_size": cfg.data.resolved_store_size, "dataset": dataset, "data": data_identity(cfg.data),
        "fold": cfg.data.fold, "subjects": list(subjects), "recipe": cfg.recipe.model_dump(mode="json"),
        "optim": cfg.optim.model_dump(mode="json"), "key": cache_key(cfg), "config": pretrain_config_to_dict(cfg),
        "steps": steps, "train_seconds": train_seconds, "precision": precision, "state_dict": state_dict,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


# --- using a trunk: pretrained=... -------------------------------------------------------------------------------
def read_trunk(path: str | Path) -> dict | None:
    """The payload of an ``auspread pretrain`` trunk file, or None for any other weights file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path}: not a readable weights file ({type(e).__name__})") from None
    return state if isinstance(state, dict) and state.get("format") == TRUNK_FORMAT else None


def method_arch(run_cfg) -> str | None:
    """The backbone architecture a run's method builds (``method.backbone`` or PIAP-DF's ``method.encoder``)."""
    for key in ("backbone", "encoder"):
        v = getattr(run_cfg.method, key, None)
        if isinstance(v, str):
            return v
    return None


def check_trunk(meta: dict, path: str | Path, image_size: int, arch: str | None, data=None) -> None:
    """``ConfigError`` unless the trunk ``meta`` fits a model at ``image_size`` px with backbone ``arch`` (None:
    not checked here; the backbone checks it when loading) trained on ``data`` (a DataConfig; None: not checked)."""
    cmd = "auspread pretrain"
    if int(meta["image_size"]) != int(image_size):
        raise ConfigError(f"{path}: this trunk was pretrained at {meta['image_size']} px but this run uses "
                          f"data.image_size={image_size}; pretrain one at that size ({cmd} data.image_size={image_size} "
                          f"...) or use pretrained=pretrain:auto")
    if arch is not None and meta["arch"] != arch:
        raise ConfigError(f"{path}: this trunk is a pretrained {meta['arch']} but the method's backbone is {arch}; "
                          f"pretrain one for it ({cmd} recipe.arch={arch} ...) or use pretrained=pretrain:auto")
    if data is not None:
        mine, theirs = data_identity(data), meta["data"]
        source = [k for k in mine if k not in ("fold", "image_size", "store_size", "val_fraction", "select_on")]
        if all(mine.get(k) == theirs.get(k) for k in source) and mine["fold"] != theirs["fold"]:
            raise ConfigError(f"{path}: this trunk was pretrained on fold {theirs['fold']}'s training subjects, whose "
                              f"frames include test subjects of fold {mine['fold']}; pretrain on fold {mine['fold']} "
                              f"({cmd} data.fold={mine['fold']} ...) or use pretrained=pretrain:auto")


def pretrain_config_for_run(run_cfg, spec: str = "auto") -> PretrainConfig:
    """The pretraining config behind ``pretrained=pretrain:<spec>`` of a run: the recipe of ``spec`` (``auto``:
    the defaults; else a pretraining YAML file) on the run's own data section, seed, device and threads, for the
    method's architecture (unless the YAML names ``recipe.arch`` itself)."""
    from auspread.engine.config import read_yaml_mapping

    raw = {} if spec in ("", "auto") else read_yaml_mapping(Path(spec))
    raw.update(data=run_cfg.data.model_dump(mode="json"), seed=run_cfg.seed, device=run_cfg.device,
               threads=run_cfg.threads, out_dir=None, name=None)
    arch = method_arch(run_cfg)
    if arch is not None and not (isinstance(raw.get("recipe"), dict) and "arch" in raw["recipe"]):
        from typing import get_args

        from auspread.pretrain.config import PretrainArch

        if arch not in get_args(PretrainArch):
            raise ConfigError(f"pretrained=pretrain:{spec}: no self-supervised pretraining for the backbone {arch!r} of "
                              f"method {run_cfg.method.name!r} (pretrainable: {', '.join(get_args(PretrainArch))})")
        raw.setdefault("recipe", {})["arch"] = arch
    return build_pretrain_config(raw)


def resolve_pretrained(run_cfg, progress: bool = True):
    """``run_cfg`` with ``pretrained`` resolved to a weights file and checked against the run (see module doc)."""
    p = run_cfg.pretrained
    if not p:
        return run_cfg
    if p.startswith("pretrain:"):
        pc = pretrain_config_for_run(run_cfg, p[len("pretrain:"):])
        if progress and not (cache_dir() / cache_name(pc) / TRUNK).is_file():
            print(f"pretraining the {pc.recipe.arch} trunk for {p} (cached in {cache_dir() / cache_name(pc)})")
        path = run_pretrain(pc, progress=progress).trunk
    else:
        path = Path(p)
        if path.is_dir() and (path / TRUNK).is_file():
            path = path / TRUNK
        if not path.is_file():
            return run_cfg  # imagenet specs; a missing file is reported by run_training / the backbone
    meta = read_trunk(path)
    if meta is not None:
        check_trunk(meta, path, run_cfg.data.image_size, method_arch(run_cfg), run_cfg.data)
    return run_cfg.model_copy(update={"pretrained": str(path)})


# --- linear probe --------------------------------------------------------------------------------------------------
@dataclass
class ProbeResult:
    trunk: str | None  # None: random initialisation
    split: str  # the subjects scored: "val" (or "test" in benchmark tables)
    f1: float  # mean F1 over AUs on every frame of that split
    accuracy: float
    roc_auc: float  # mean ROC-AUC over AUs: threshold-free, so a head calibrated on the wrong side of 0.5 still shows
    # what the features tell (0.5 = nothing)
    all_positive_f1: float  # the trivial "every AU always on" predictor on the same frames
    per_au: dict[str, float]
    train_frames: int  # labelled frames the head was fitted on
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Probe(nn.Module):
    """Frozen trunk → standardisation → linear head → sigmoid; a frame classifier for ``evaluate_split``."""

    def __init__(self, trunk: nn.Module, mean: torch.Tensor, std: torch.Tensor, head: nn.Linear):
        super().__init__()
        self.trunk, self.head = trunk, head
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.trunk(x) - self.mean) / self.std)

    @torch.no_grad()
    def predict_video(self, chunks, num_frames: int) -> torch.Tensor:
        return torch.cat([torch.sigmoid(self(c).float()) for c in chunks])[:num_frames]


@torch.no_grad()
def _key_frame_features(trunk: nn.Module, store, index, key_frames: np.ndarray, tf, device, chunk: int = 128):
    feats, labels = [], []
    for v in np.unique(key_frames[:, 0]):
        ts = key_frames[key_frames[:, 0] == v, 1]
        for a in range(0, len(ts), chunk):
            t = ts[a:a + chunk]
            x, _ = tf.apply(store.frames(int(v), t)[:, None])
            feats.append(trunk(x[:, 0].to(device)).float().cpu())
            labels.append(torch.from_numpy(index.videos[int(v)].labels[t].astype(np.float32)))
    return torch.cat(feats), torch.cat(labels)


def linear_probe(cfg: PretrainConfig, trunk: str | Path | None, progress: bool = False, split: str = "val") -> ProbeResult:
    """Fit a linear head on frozen ``trunk`` features (None: a randomly initialised trunk, seeded by ``cfg.seed``)
    of the fold's labelled training frames under ``cfg.data.labels``; score it on the validation subjects
    (``split="test"``: the fold's test subjects, for benchmark tables only)."""
    from auspread.data.labels import sparsify
    from auspread.evaluation.dense import evaluate_split
    from auspread.evaluation.metrics import all_positive_f1
    from auspread.evaluation.ranking import roc_auc
    from auspread.losses.weighted_bce import weighted_bce_with_logits
    from auspread.pretrain.byol import make_trunk

    t0 = time.time()
    device = D.resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    index = read_index(cfg.data, progress=progress)
    splits = split_index(index, cfg.data, cfg.seed)
    if split not in ("val", "test"):
        raise ConfigError(f"probe split must be val or test, got {split!r}")
    target = splits.test if split == "test" else splits.val
    if target is None or (split == "val" and splits.val_is_test):
        raise ConfigError("the linear probe scores the validation subjects: set data.val_fraction > 0 and data.select_on=val")
    sparse = sparsify(splits.train, cfg.data.labels, cfg.data.label_seed)
    if trunk is not None:
        meta = read_trunk(trunk)
        if meta is not None:
            check_trunk(meta, trunk, cfg.data.image_size, cfg.recipe.arch)
    seed_everything(cfg.seed)
    net = make_trunk(cfg.recipe.arch, str(trunk) if trunk is not None else None).to(device).eval()
    tf = eval_transform(cfg.data)
    x, y = _key_frame_features(net, open_store(splits.train, cfg.data, progress), splits.train, sparse.key_frames, tf, device)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    xs = (x - mean) / std
    head = nn.Linear(x.shape[1], index.num_aus)
    w = dataset_info(sparse.index, cfg.data).class_weights
    opt = torch.optim.Adam(head.parameters(), lr=cfg.probe.lr, weight_decay=cfg.probe.weight_decay)
    for _ in range(cfg.probe.steps):
        opt.zero_grad(set_to_none=True)
        weighted_bce_with_logits(head(xs), y, w).backward()
        opt.step()
    probe = _Probe(net, mean.to(device), std.to(device), head.to(device)).eval()
    scores, preds = evaluate_split(probe, open_store(target, cfg.data, progress), target, tf, device, keep_predictions=True)
    p_all, y_all = np.concatenate(preds.probs), np.concatenate(preds.labels)
    aucs = [roc_auc(p_all[:, k], y_all[:, k]) for k in range(y_all.shape[1])]  # labels -1 are ignored
    return ProbeResult(trunk=None if trunk is None else str(trunk), split=split, f1=scores.mean_f1,
                       accuracy=scores.mean_accuracy, roc_auc=float(np.nanmean(aucs)), all_positive_f1=all_positive_f1(target.all_labels(), target.aus).mean_f1,
                       per_au={f"AU{a}": float(f) for a, f in zip(scores.aus, scores.f1)}, train_frames=int(len(y)),
                       seconds=time.time() - t0)
