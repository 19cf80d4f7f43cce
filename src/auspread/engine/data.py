"""The data side of a run: ``RunConfig.data`` → dataset index → subject-exclusive split (train / validation /
test) → label policy → frame stores → training batches and evaluation inputs (docs/architecture.md).

Model selection uses **validation subjects carved from the training subjects** (``data.val_fraction``), never the
test fold. ``data.select_on=test`` reproduces the papers' protocol (ME-GraphAU/MDHR select the best epoch on the
test fold, reference C.6) and is labelled as such in every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from auspread.data.index import VideoIndex
from auspread.engine.config import DataConfig
from auspread.errors import DataError
from auspread.methods.base import DatasetInfo


def resolve_dataset(dc: DataConfig, progress: bool = True) -> tuple[str, Path]:
    """``(reader name, root)``; the synthetic default is generated once and cached."""
    if dc.dataset == "synthetic":
        if dc.root is not None:
            return dc.synth_format, Path(dc.root)
        from auspread.data.synth import default_dataset

        return dc.synth_format, Path(default_dataset(dc.synth_preset, dc.synth_format, progress=progress))
    if dc.root is None:
        raise DataError(f"data.root", f"data.dataset={dc.dataset} needs data.root=/path/to/{dc.dataset} (the dataset folder)")
    return dc.dataset, Path(dc.root)


def read_index(dc: DataConfig, progress: bool = True) -> VideoIndex:
    from auspread.data.readers import read_dataset

    name, root = resolve_dataset(dc, progress)
    if not root.exists():
        raise DataError(root, "dataset root does not exist (set data.root=...)")
    opts: dict = {}
    if name == "disfa":
        opts = {"threshold": dc.disfa_threshold, "camera": dc.camera}
    if name in ("bp4d", "bp4d+", "disfa"):
        opts["progress"] = progress
    return read_dataset(name, root, **opts)


@dataclass
class Splits:
    """Subject-exclusive splits of one fold."""

    train: VideoIndex  # full (true) labels; the label policy decides what training may see
    val: VideoIndex | None  # None when val_fraction = 0 and select_on = val (no model selection: last epoch)
    test: VideoIndex
    subjects: dict[str, list[str]] = field(default_factory=dict)
    val_is_test: bool = False


def split_index(index: VideoIndex, dc: DataConfig, seed: int) -> Splits:
    from auspread.data.folds import fold_subjects, validation_split

    train_s, test_s = fold_subjects(index.dataset, dc.fold, index.subjects())
    if dc.select_on == "test":
        val_s: list[str] = []
    else:
        train_s, val_s = validation_split(train_s, dc.val_fraction, seed)
    val = index.select_subjects(val_s) if val_s else None
    test = index.select_subjects(test_s)
    if dc.select_on == "test":
        val = test
    if dc.eval_video_stride > 1:
        test = test.every_kth_video(dc.eval_video_stride)
        val = val.every_kth_video(dc.eval_video_stride) if val is not None else None
    return Splits(index.select_subjects(train_s), val, test,
                  {"train": list(train_s), "val": list(val_s), "test": list(test_s)}, dc.select_on == "test")


def dataset_info(train_visible: VideoIndex, dc: DataConfig) -> DatasetInfo:
    """What a method may know: AUs, class weights on the *visible* training labels (reference C.4), subjects."""
    from auspread.data.folds import class_weights

    w = class_weights(train_visible.all_labels())
    return DatasetInfo(dataset=train_visible.dataset, aus=tuple(train_visible.aus),
                       class_weights=torch.as_tensor(w, dtype=torch.float32), num_subjects=len(train_visible.subjects()),
                       image_size=dc.image_size, fps=float(train_visible.fps))


def info_to_dict(info: DatasetInfo) -> dict:
    return {"dataset": info.dataset, "aus": list(info.aus), "class_weights": info.class_weights.tolist(),
            "num_subjects": info.num_subjects, "image_size": info.image_size, "fps": info.fps}


def info_from_dict(d: dict) -> DatasetInfo:
    return DatasetInfo(dataset=d["dataset"], aus=tuple(d["aus"]), class_weights=torch.tensor(d["class_weights"], dtype=torch.float32),
                       num_subjects=int(d["num_subjects"]), image_size=int(d["image_size"]), fps=float(d["fps"]))


def open_store(index: VideoIndex, dc: DataConfig, progress: bool = True):
    from auspread.data.store import FrameStore

    return FrameStore.open(index, dc.resolved_store_size, cache_dir=dc.cache_dir, progress=progress)


def eval_transform(dc: DataConfig):
    from auspread.data.transforms import ClipTransform

    return ClipTransform(dc.image_size, dc.augment, train=False)


def validation_labels(splits: Splits, dc: DataConfig) -> Splits:
    """``splits`` with the validation subjects labelled as ``data.val_labels`` says: ``ratio`` keeps one label by the
    training's key-frame rule (:func:`auspread.data.labels.sparsify` with ``data.labels`` and ``data.label_seed``),
    so model selection and the per-AU thresholds see the label budget and no more; ``all`` keeps every label. The
    test subjects (also the "validation" frames under ``data.select_on=test``) always keep every label."""
    if splits.val is None or splits.val_is_test or dc.val_labels == "all":
        return splits
    from auspread.data.labels import sparsify

    return replace(splits, val=sparsify(splits.val, dc.labels.every, dc.label_seed).index)


def _labelled_frames(index: VideoIndex | None) -> int:
    return 0 if index is None else int(sum(int((v.labels >= 0).any(axis=1).sum()) for v in index.videos))


def label_summary(train: VideoIndex, key_frames: np.ndarray, every: int, dc: DataConfig | None = None,
                  val: VideoIndex | None = None, val_seen: VideoIndex | None = None) -> dict:
    """The labels a run saw. Training: all frames, labelled frames (with a known label), key frames, and the ratio
    actually used (``ratio_used``: key frames over labelled frames; ``label_ratio``: over all frames). With ``dc``,
    validation: all frames, labelled frames, and the labelled frames model selection saw (``val_seen``, the
    validation index after :func:`validation_labels`)."""
    out = {"every": every, "train_frames": train.num_frames, "key_frames": int(len(key_frames)),
           "label_ratio": float(len(key_frames) / max(1, train.num_frames))}
    if dc is not None:
        labelled = _labelled_frames(train)
        out = {"requested": str(dc.labels), **out, "train_labelled_frames": labelled,
               "ratio_used": float(len(key_frames) / max(1, labelled)), "val_labels": dc.val_labels,
               "val_frames": 0 if val is None else val.num_frames, "val_labelled_frames": _labelled_frames(val),
               "val_labelled_frames_seen": _labelled_frames(val_seen)}
    return out
