"""The Python API of training and evaluation (used by ``auspread train/eval/cv`` and by ``auspread study``).

- :func:`run_training` ``(cfg) -> RunSummary``: data → method → :class:`~auspread.engine.loop.Trainer` → final test
  evaluation with the best (validation-selected) checkpoint → ``RUN/results``.
- :func:`evaluate_run` ``(run_dir) -> EvalResult``: rebuilds the model from ``best.pt`` alone and evaluates a split.
- :func:`calibrate_run` ``(run_dir) -> CalibrationResult``: per-AU thresholds chosen on the validation subjects
  (``auspread.evaluation.thresholds``) for a run trained before training did it itself.
- :func:`run_cv` ``(cfg, folds) -> CVResult``: the three standard folds and their mean, as in the papers.

A run folder holds ``config.yaml``, ``data.json`` (subjects of each split, label policy), ``metrics.jsonl``,
``tb/``, ``checkpoints/{last,best}.pt`` and ``results/``. With validation subjects, ``best.pt`` also carries the
per-AU thresholds chosen on them (``thresholds``, also ``results/thresholds.json``): reported beside the protocol's
0.5 and used by ``auspread predict``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from auspread.engine import distributed as D
from auspread.engine.checkpoint import BEST, LAST, Key, load_checkpoint, save_checkpoint
from auspread.engine.config import RunConfig, build_config, config_to_dict, dump_yaml, saved_run_config
from auspread.engine.data import (Splits, check_dataset_root, dataset_info, eval_transform, info_from_dict, info_to_dict, label_summary,
                                  open_store, read_index, split_index, validation_labels)
from auspread.engine.logging import RunLogger
from auspread.engine.loop import FitResult, Trainer, TrainHooks, autocast_factory, seed_everything
from auspread.engine.precision import cpu_description, resolve_amp, resolve_channels_last
from auspread.engine.restore import build_method, check_run_dir, eval_weights, load_trained  # noqa: F401 (re-exported)
from auspread.errors import ConfigError, DataError, RunError
from auspread.evaluation.dense import DensePredictions, evaluate_split
from auspread.evaluation.metrics import AUScores, all_positive_f1
from auspread.evaluation.ranking import mean_roc_auc
from auspread.evaluation.report import markdown_table, write_results
from auspread.evaluation.thresholds import AUThresholds, fit_on_predictions, scores_on_predictions
from auspread.io import atomic_write_text
from auspread.methods.base import get_method
from auspread.models.backbones import backbone_names, is_imagenet_spec, pretrained_file, weights_record


@dataclass
class RunSummary:
    run_dir: Path
    best_epoch: int | None
    val_f1: float | None  # mean F1 of the best epoch on the validation subjects (None without validation)
    test_f1: float
    test_accuracy: float
    test_per_au: dict[str, float]
    train_fps: float  # training frames/s, all processes together
    epochs: int
    steps: int
    seconds: float
    selected_on: str  # "val", "test" (papers' protocol) or "last" (no validation split)
    test_f1_all_positive: float | None = None  # the trivial "every AU always on" predictor on the same frames
    precision: str | None = None  # the autocast actually used for training (optim.amp resolved on this device)
    cpu: str | None = None  # the host CPU (engine.precision.cpu_description): speeds and bf16 depend on it
    test_f1_val_thresholds: float | None = None  # test mean F1 at the per-AU thresholds chosen on validation subjects
    test_per_au_val_thresholds: dict[str, float] | None = None
    frames_without_face: int = 0  # frames where auspread prepare found no face: kept as context, unlabelled
    started_from: str | None = None  # the packaged config (or file) the run's configuration started from
    labels: dict | None = None  # frames, labelled frames and key frames of the training and validation splits
    test_roc_auc: float | None = None  # mean over AUs of the test ROC-AUC (threshold-free; 0.5 = no ranking)
    pretrained_weights: dict | None = None  # the weights file the run started from: {"file", "sha256"} (None: random)
    test_scores: AUScores | None = None
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()
                if k not in ("test_scores", "history")}


@dataclass
class EvalResult:
    run_dir: Path
    split: str
    scores: AUScores
    out_dir: Path
    paths: dict[str, Path]
    thresholds: AUThresholds | None = None  # the run's validation thresholds, when its checkpoint has them
    scores_at_thresholds: AUScores | None = None  # the split's scores at them


@dataclass
class CalibrationResult:
    run_dir: Path
    thresholds: AUThresholds
    test_scores: AUScores  # at the protocol's 0.5
    test_scores_at_thresholds: AUScores


@dataclass
class CVResult:
    cv_dir: Path
    folds: list[RunSummary]
    table: "object"  # pandas.DataFrame: one row per fold and the mean; columns AU F1s, mean F1, mean accuracy
    markdown: str


# --- building blocks -------------------------------------------------------------------------------------------
def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", s).strip("-")


def default_run_name(cfg: RunConfig) -> str:
    ds = cfg.data.dataset if cfg.data.dataset != "synthetic" else f"synth-{cfg.data.synth_preset}"
    regime = cfg.data.labels
    lab = (f"{regime.percent:g}pct" if regime.percent is not None else
           "100pct" if regime.every == 1 else f"every{regime.every}")
    return _slug(f"{cfg.method.name}-{ds}-f{cfg.data.fold}-{lab}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


def _new_run_dir(cfg: RunConfig) -> Path:
    return claim_run_dir(Path(cfg.out_dir) / (cfg.name or default_run_name(cfg)))


def claim_run_dir(base: Path) -> Path:
    """Create ``base`` (or ``base-2``, ``base-3`` … if taken) exclusively and return it: concurrent runs with the
    same name each get their own folder, since ``mkdir`` succeeds for exactly one of them."""
    base.parent.mkdir(parents=True, exist_ok=True)
    d, k = base, 2
    while True:
        try:
            d.mkdir(exist_ok=False)
            return d
        except FileExistsError:
            d = base.with_name(f"{base.name}-{k}")
            k += 1


_eval_model = eval_weights  # the former private name (benchmarks/diag_* use it)


def _autocast(cfg: RunConfig, device: torch.device):
    return autocast_factory(cfg.optim.amp, device)


def _open_stores(dist: D.DistInfo, progress: bool, dc, indexes: list) -> list:
    """Frame stores, built by rank 0 first (the others then only map the files)."""
    stores = [None] * len(indexes)
    if dist.is_main:
        stores = [open_store(ix, dc, progress) if ix is not None else None for ix in indexes]
    D.barrier()
    if not dist.is_main:
        stores = [open_store(ix, dc, False) if ix is not None else None for ix in indexes]
    return stores


def _notes(cfg: RunConfig, splits: Splits, best_epoch: int | None, selected: str) -> list[str]:
    sel = {"val": f"model selected on {len(splits.subjects['val'])} validation subjects carved from the training subjects",
           "test": "model selected ON THE TEST FOLD (data.select_on=test, the papers' protocol; optimistic)",
           "last": "no validation split (data.val_fraction=0): the last epoch is evaluated"}[selected]
    return [
        f"method: {cfg.method.name}; dataset: {cfg.data.dataset}"
        + (f" ({cfg.data.synth_preset})" if cfg.data.dataset == "synthetic" else "") + f"; fold {cfg.data.fold}"
        + (f"; configuration started from {cfg.started_from}" if cfg.started_from else ""),
        f"labels: {cfg.data.labels} of the training frames"
        + ({"ratio": "; validation subjects at the same ratio (data.val_labels=ratio)",
            "all": "; every label of the validation subjects (data.val_labels=all)"}[cfg.data.val_labels]
           if selected == "val" else ""),
        f"{sel}; best epoch {best_epoch}",
        f"subjects: {len(splits.subjects['train'])} train, {len(splits.subjects['val'])} val, {len(splits.subjects['test'])} test",
    ]


# --- per-AU thresholds chosen on the validation subjects ------------------------------------------------------


def _fit_val_thresholds(model, store, splits: Splits, tf, device, dist=None, autocast=None,
                        progress: bool = False, kept: _BestValPredictions | None = None,
                        best_val_f1: float | None = None) -> AUThresholds | None:
    """Thresholds chosen on every frame of the validation subjects (every rank evaluates its share; rank 0 fits,
    the other ranks get None). With ``kept`` holding the validation predictions of the epoch whose F1 is
    ``best_val_f1`` (kept by training), those are used instead of predicting the validation subjects again."""
    if kept is not None and kept.holds(best_val_f1):  # the same answer on every rank: no rank skips a collective
        vp = kept.predictions  # None on ranks > 0
    else:
        _, vp = evaluate_split(model, store, splits.val, tf, device, dist=dist, autocast=autocast,
                               keep_predictions=True, progress=progress, desc="val thresholds")
    if vp is None:
        return None
    frames = sum(len(p) for p in vp.probs)
    source = f"validation subjects {', '.join(map(str, splits.subjects['val']))} ({frames} frames)"
    return fit_on_predictions(vp, splits.val.aus, source)


class _BestValPredictions:
    """The validation predictions of the best epoch validated in this process, kept so that the thresholds fit at
    the end of training needs no second pass over the validation subjects. Mirrors the trainer's rule (a finite
    mean F1 strictly above the best so far); ``holds(best_val_f1)`` is true only when their F1 is the selected
    checkpoint's (otherwise, e.g. when the best epoch came before a resume, the caller predicts again). Every rank
    tracks the same (all-reduced) scores, so all ranks agree; only rank 0 holds the predictions."""

    def __init__(self) -> None:
        self.f1: float | None = None
        self.predictions: DensePredictions | None = None

    def offer(self, f1: float, predictions: DensePredictions | None) -> None:
        if math.isfinite(f1) and (self.f1 is None or f1 > self.f1):
            self.f1, self.predictions = f1, predictions

    def holds(self, best_val_f1: float | None) -> bool:
        return self.f1 is not None and self.f1 == best_val_f1


def _store_thresholds(run_dir: Path, state: dict, th: AUThresholds, test_at: AUScores | None) -> None:
    """Add ``th`` to ``best.pt`` (atomically) and write ``results/thresholds.json`` (with the test scores at them)."""
    save_checkpoint(run_dir / "checkpoints" / BEST, {**state, Key.THRESHOLDS: th.to_dict()})
    body = {**th.to_dict(), "note": "per-AU thresholds with the best F1 on the validation subjects, applied "
                                    "unchanged to other people; the protocol's scores use 0.5"}
    if test_at is not None:
        body["test_at_thresholds"] = test_at.to_dict()
    atomic_write_text(run_dir / "results" / "thresholds.json", json.dumps(body, indent=2))


def _thresholds_note(at: AUScores, at_half: AUScores, split: str = "test") -> str:
    return (f"with per-AU thresholds chosen on the validation subjects (results/thresholds.json; `auspread predict` "
            f"uses them): {split} mean F1 {100 * at.mean_f1:.1f} (at the protocol's 0.5: {100 * at_half.mean_f1:.1f})")


# --- training --------------------------------------------------------------------------------------------------
def _start_weights(cfg: RunConfig) -> dict | None:
    """File name and sha256 of the weights the run's backbone started from (already fetched by the method)."""
    from auspread.pretrain.run import method_arch

    arch = method_arch(cfg)
    if not cfg.pretrained or (arch is None and is_imagenet_spec(cfg.pretrained)):
        return None
    return weights_record(pretrained_file(arch, cfg.pretrained))


def _fetch_start_weights(cfg: RunConfig, dist: D.DistInfo) -> None:
    """Put the ImageNet weights of the run's backbone in the torch cache (rank 0 first), or refuse: a run that
    cannot start from its weights stops here, not after reading, generating or face-aligning its dataset."""
    from auspread.pretrain.run import method_arch

    arch = method_arch(cfg)
    if arch is None or not is_imagenet_spec(cfg.pretrained):
        return
    if arch not in backbone_names():
        raise ConfigError(f"pretrained={cfg.pretrained} but the backbone {arch!r} has no ImageNet weights (torchvision "
                          f"backbones: {', '.join(backbone_names())}); set pretrained=null to train it from random weights")
    if dist.is_main:
        pretrained_file(arch, cfg.pretrained)
    D.barrier()
    if not dist.is_main:
        pretrained_file(arch, cfg.pretrained)


def run_training(cfg: RunConfig, progress: bool = True, resume: Path | str | None = None,
                 hooks: TrainHooks | None = None) -> RunSummary:
    """Train ``cfg`` (or continue the killed run ``resume`` from its ``last.pt``), then evaluate the best
    checkpoint on the test subjects and write ``RUN/results``. Works under ``torchrun`` (one call per process)."""
    t_start = time.time()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = D.resolve_device(cfg.device, local_rank)
    dist = D.init_distributed(device)
    resume_state = None
    if resume is not None:
        run_dir = check_run_dir(resume, need=LAST)
        resume_state = load_checkpoint(run_dir / "checkpoints" / LAST)
        cfg = build_config(saved_run_config(resume_state[Key.CONFIG]))
        if resume_state[Key.EPOCH] >= cfg.optim.epochs and (run_dir / "results" / "summary.json").is_file():
            raise RunError(f"{run_dir}: run already finished ({cfg.optim.epochs} epochs); nothing to resume")
    show = progress and dist.is_main
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    get_method(cfg.method.name)  # an unknown method or weights file fails before any work
    from auspread.pretrain.run import resolve_pretrained  # pretrain:auto, pretrain run folders, trunk checks

    cfg = resolve_pretrained(cfg, progress=show)
    if cfg.pretrained and not is_imagenet_spec(cfg.pretrained) and not Path(cfg.pretrained).is_file():
        raise ConfigError(f"{cfg.pretrained}: pretrained weights file not found (pretrained=imagenet, a torchvision "
                          f"weights name such as IMAGENET1K_V1, or a local .pth / auspread checkpoint)")
    if cfg.optim.batch_size % dist.world_size:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} (the global batch) must be divisible by the "
                          f"number of processes ({dist.world_size})")
    from auspread.engine.loop import check_batchnorm_options

    check_batchnorm_options(cfg.optim, dist, device)  # before any data or run folder
    check_dataset_root(cfg.data)
    _fetch_start_weights(cfg, dist)  # missing ImageNet weights stop the run before data is generated or prepared

    seed_everything(cfg.seed)
    index = read_index(cfg.data, progress=show) if dist.is_main else None  # rank 0 generates synthetic data once
    D.barrier()
    if index is None:
        index = read_index(cfg.data, progress=False)
    splits = split_index(index, cfg.data, cfg.seed)
    from auspread.data.labels import sparsify

    sparse = sparsify(splits.train, cfg.data.labels, cfg.data.label_seed)
    if len(sparse.key_frames) == 0:
        raise DataError(index.root or index.dataset, "the training split has no labelled frame")
    if resume is None:  # the run folder appears only once the data is known to be usable
        run_dir = D.broadcast_object(_new_run_dir(cfg) if dist.is_main else None)
    info = dataset_info(sparse.index, cfg.data) if resume_state is None else info_from_dict(resume_state[Key.DATASET_INFO])
    train_store, val_store, test_store = _open_stores(dist, show, cfg.data, [splits.train, splits.val, splits.test])
    all_val = splits.val
    splits = validation_labels(splits, cfg.data)  # the same videos (the stores stay valid), labels per data.val_labels
    labels = label_summary(splits.train, sparse.key_frames, sparse.every, cfg.data, all_val, splits.val)

    seed_everything(cfg.seed)  # the same initial weights whatever was drawn while reading the data
    method = build_method(cfg, info, cfg.pretrained).to(device)
    start_record = _start_weights(cfg)
    if resolve_channels_last(cfg.optim.channels_last, resolve_amp(cfg.optim.amp, device)):
        method = method.to(memory_format=torch.channels_last)
    if dist.rank > 0:
        seed_everything(cfg.seed + 1_000_003 * dist.rank)  # per-rank stream for dropout etc.; rank 0 = 1 process
    world = dist.world_size
    from auspread.data.sampling import TrainBatches

    batches = TrainBatches(splits.train, sparse.key_frames, train_store, method.data_spec(), cfg.data,
                           cfg.optim.batch_size // world, seed=cfg.seed, rank=dist.rank, world_size=world, device=device)
    tf = eval_transform(cfg.data)
    autocast = _autocast(cfg, device)
    validate, kept_val = None, _BestValPredictions()
    if splits.val is not None:
        def validate(model):
            scores, preds = evaluate_split(model, val_store, splits.val, tf, device, dist=dist, autocast=autocast,
                                           keep_predictions=True)
            kept_val.offer(scores.mean_f1, preds)
            return scores

    if dist.is_main and resume_state is None:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_text(run_dir / "data.json", json.dumps({
            "root": index.root, "dataset": index.dataset, "aus": list(index.aus), "subjects": splits.subjects,
            "select_on": cfg.data.select_on, "labels": labels,
            "class_weights": info.class_weights.tolist(), "world_size": world,
            "frames_without_face": index.frames_without_face,
        }, indent=2))
    D.barrier()

    trainer = Trainer(cfg, method, batches, validate, run_dir, device, dist, progress=show,
                      checkpoint_extra={Key.CONFIG: config_to_dict(cfg), Key.DATASET_INFO: info_to_dict(info)}, hooks=hooks)
    fit: FitResult = trainer.fit(resume_state)
    D.barrier()

    # final evaluation of the selected checkpoint on the test subjects
    best = load_checkpoint(run_dir / "checkpoints" / BEST)
    model = eval_weights(method, best)
    scores, preds = evaluate_split(model, test_store, splits.test, tf, device, dist=dist, autocast=autocast,
                                   keep_predictions=True, progress=show, desc="test")
    selected = "test" if splits.val_is_test else ("val" if splits.val is not None else "last")
    best_val = best[Key.BEST]["val_f1"]
    thresholds = test_at = None
    if selected == "val":  # not when the "validation" frames are the test fold's (data.select_on=test)
        thresholds = _fit_val_thresholds(model, val_store, splits, tf, device, dist, autocast, show,
                                         kept=kept_val, best_val_f1=best_val)
        if thresholds is not None:
            test_at = scores_on_predictions(preds, splits.test.aus, thresholds)
    summary = RunSummary(
        run_dir=run_dir, best_epoch=best[Key.EPOCH], val_f1=best_val if selected == "val" else None,
        test_f1=scores.mean_f1, test_accuracy=scores.mean_accuracy,
        test_per_au={f"AU{a}": float(f) for a, f in zip(scores.aus, scores.f1)},
        train_fps=fit.train_fps, epochs=fit.epochs_done, steps=fit.steps, seconds=time.time() - t_start,
        selected_on=selected, test_scores=scores, history=fit.history, precision=trainer.amp, cpu=cpu_description(),
        frames_without_face=index.frames_without_face,
        test_f1_all_positive=all_positive_f1(splits.test.all_labels(), splits.test.aus).mean_f1,
        test_f1_val_thresholds=None if test_at is None else test_at.mean_f1,
        test_per_au_val_thresholds=None if test_at is None else
        {f"AU{a}": float(f) for a, f in zip(test_at.aus, test_at.f1)}, labels=labels, started_from=cfg.started_from,
        test_roc_auc=mean_roc_auc(preds) if preds is not None else None, pretrained_weights=start_record,
    )
    if dist.is_main:
        title = f"{cfg.method.name}: test F1 per AU (fold {cfg.data.fold})"
        write_results(run_dir / "results", scores, split="test", title=title,
                      notes=_notes(cfg, splits, best[Key.EPOCH], selected)
                      + [f"all-positive predictor (every AU always on) on the same frames: mean F1 "
                         f"{100 * summary.test_f1_all_positive:.1f}",
                         f"training precision: {'fp32' if trainer.amp == 'off' else trainer.amp} (optim.amp={cfg.optim.amp}) "
                         f"on {summary.cpu}"]
                      + ([_thresholds_note(test_at, scores)] if test_at is not None else []),
                      predictions=preds,
                      extra={"best_epoch": best[Key.EPOCH], "selected_on": selected})
        if thresholds is not None:
            _store_thresholds(run_dir, best, thresholds, test_at)
        # written last: summary.json marks the run finished (a run killed before it resumes into this evaluation)
        atomic_write_text(run_dir / "results" / "summary.json", json.dumps(summary.to_dict(), indent=2))
        log = RunLogger(run_dir, tensorboard=False)
        log.log("test", fit.steps, fit.epochs_done, {"mean_f1": scores.mean_f1, "mean_accuracy": scores.mean_accuracy,
                                                     "best_epoch": best[Key.EPOCH]})
    D.barrier()
    return summary


# --- evaluation of a finished run -------------------------------------------------------------------------------
def _reload(run_dir: Path, overrides: list[str], progress: bool):
    """A finished run's model from ``best.pt`` (on its device, in its run's memory format; threads and seed set) and
    its data: ``(trained, model, device, index, splits)``. The data's AUs must be the model's."""
    trained = load_trained(run_dir, overrides=overrides)
    cfg, info = trained.cfg, trained.info
    device = D.resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    index = read_index(cfg.data, progress=progress)
    if tuple(index.aus) != tuple(info.aus):
        raise DataError(index.root or cfg.data.dataset, f"has AUs {list(index.aus)} but the model was trained on {list(info.aus)}")
    splits = split_index(index, cfg.data, cfg.seed)
    seed_everything(cfg.seed)
    model = trained.method.to(device)
    if resolve_channels_last(cfg.optim.channels_last, resolve_amp(cfg.optim.amp, device)):
        model = model.to(memory_format=torch.channels_last)
    return trained, model, device, index, splits


def evaluate_run(run_dir: str | Path, data_overrides: list[str] | None = None, split: str = "test",
                 progress: bool = True, out_dir: str | Path | None = None) -> EvalResult:
    """Evaluate a run's ``best.pt`` on ``split`` ("test", "val" or "train", all frames, true labels), rebuilding the
    model from the checkpoint alone. ``data_overrides`` (``root=/other/copy``, ``fold=2`` …) change the data
    section; results go to ``RUN/results`` (or ``RUN/results/eval-<overrides>`` when data is overridden)."""
    if split not in ("test", "val", "train"):
        raise ConfigError(f"split must be test, val or train, got {split!r}")
    ov = [o if o.startswith("data.") else f"data.{o}" for o in (data_overrides or [])]
    run_dir = check_run_dir(run_dir)
    trained, model, device, index, splits = _reload(run_dir, ov, progress)
    cfg, state = trained.cfg, trained.state
    target = {"test": splits.test, "val": splits.val, "train": splits.train}[split]
    if target is None or not target.videos:
        raise DataError(index.root or cfg.data.dataset, f"no {split} subjects for this run's split settings")
    store = open_store(target, cfg.data, progress)
    scores, preds = evaluate_split(model, store, target, eval_transform(cfg.data), device,
                                   autocast=_autocast(cfg, device), keep_predictions=True, progress=progress, desc=split)
    if out_dir is None:
        out_dir = run_dir / "results" / ("eval-" + _slug("_".join(data_overrides)) if data_overrides else "")
    selected = "test" if splits.val_is_test else ("val" if splits.val is not None else "last")
    th = AUThresholds.from_dict(state[Key.THRESHOLDS]) if state.get(Key.THRESHOLDS) else None
    at = None
    notes = _notes(cfg, splits, state[Key.EPOCH], selected) + ([f"data overrides: {' '.join(data_overrides)}"] if data_overrides else [])
    if th is not None:
        if tuple(th.aus) != tuple(scores.aus):
            raise RunError(f"{trained.checkpoint}: thresholds for AUs {list(th.aus)}, model AUs {list(scores.aus)}")
        at = scores_on_predictions(preds, scores.aus, th)
        notes.append(_thresholds_note(at, scores, split) + (" — chosen on these very frames: optimistic"
                                                             if split == "val" and not data_overrides else ""))
    paths = write_results(out_dir, scores, split=split, title=f"{cfg.method.name}: {split} F1 per AU (fold {cfg.data.fold})",
                          notes=notes, predictions=preds,
                          extra={"best_epoch": state[Key.EPOCH], "data_overrides": data_overrides or [],
                                 "mean_f1_at_val_thresholds": None if at is None else at.mean_f1})
    return EvalResult(run_dir, split, scores, Path(out_dir), paths, th, at)


def calibrate_run(run_dir: str | Path, progress: bool = True) -> CalibrationResult:
    """Choose per-AU thresholds on a finished run's validation subjects (what training now does at its end), store
    them in ``best.pt`` and ``results/thresholds.json``, and add the test F1 at them to ``results/summary.json``."""
    run_dir = check_run_dir(run_dir)
    trained, model, device, _index, splits = _reload(run_dir, [], progress)
    cfg, state = trained.cfg, trained.state
    splits = validation_labels(splits, cfg.data)
    if splits.val is None or splits.val_is_test or not splits.val.videos:
        raise RunError(f"{run_dir}: the run has no validation subjects apart from its test subjects "
                       f"(data.val_fraction=0 or data.select_on=test); no honest place to choose thresholds")
    tf, autocast = eval_transform(cfg.data), _autocast(cfg, device)
    th = _fit_val_thresholds(model, open_store(splits.val, cfg.data, progress), splits, tf, device,
                             autocast=autocast, progress=progress)
    test_half, preds = evaluate_split(model, open_store(splits.test, cfg.data, progress), splits.test, tf, device,
                                      autocast=autocast, keep_predictions=True, progress=progress, desc="test")
    test_at = scores_on_predictions(preds, splits.test.aus, th)
    _store_thresholds(run_dir, state, th, test_at)
    summary_file = run_dir / "results" / "summary.json"
    if summary_file.is_file():
        d = json.loads(summary_file.read_text())
        d["test_f1_val_thresholds"] = test_at.mean_f1
        d["test_per_au_val_thresholds"] = {f"AU{a}": float(f) for a, f in zip(test_at.aus, test_at.f1)}
        atomic_write_text(summary_file, json.dumps(d, indent=2))
    return CalibrationResult(run_dir, th, test_half, test_at)


# --- cross-validation -------------------------------------------------------------------------------------------
def cv_table(summaries: list[RunSummary], folds: tuple[int, ...]):
    import pandas as pd

    rows = {}
    for f, s in zip(folds, summaries):
        rows[f"fold {f}"] = {**{k: 100 * v for k, v in s.test_per_au.items()}, "mean F1": 100 * s.test_f1,
                             "mean acc": 100 * s.test_accuracy}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.loc["mean"] = df.mean(axis=0)
    return df


def run_cv(cfg: RunConfig, folds: tuple[int, ...] = (1, 2, 3), progress: bool = True) -> CVResult:
    """Train and test every fold of ``folds`` (runs in ``<out_dir>/<name>/fold<k>``); one table with each fold's
    per-AU F1 and the mean over folds (``cv.md``, ``cv.csv``)."""
    base = cfg.name or default_run_name(cfg).replace(f"-f{cfg.data.fold}-", "-cv-")
    cv_dir = Path(cfg.out_dir) / base
    summaries = []
    for f in folds:
        raw = config_to_dict(cfg)
        raw["data"]["fold"] = f
        raw["out_dir"] = str(cv_dir)
        raw["name"] = f"fold{f}"
        summaries.append(run_training(build_config(raw), progress=progress))
    df = cv_table(summaries, tuple(folds))
    sel = summaries[0].selected_on
    md = [f"# {cfg.method.name}: {len(folds)}-fold cross-validation, test F1 (%)", "",
          f"- dataset: {cfg.data.dataset}; labels: {cfg.data.labels}; model selection: {sel}", "",
          markdown_table([""] + [str(c) for c in df.columns],
                         [[str(i)] + [f"{v:.1f}" for v in row.values] for i, row in df.iterrows()]), ""]
    markdown = "\n".join(md)
    if int(os.environ.get("RANK", "0")) == 0:  # rank 0 writes (under torchrun every rank runs every fold)
        atomic_write_text(cv_dir / "cv.md", markdown)
        atomic_write_text(cv_dir / "cv.csv", df.to_csv(float_format="%.4f"))
    return CVResult(cv_dir, summaries, df, markdown)
