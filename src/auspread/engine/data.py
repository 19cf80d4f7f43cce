"""The data side of a run: ``RunConfig.data`` → dataset index → subject-exclusive split (train / validation /
test) → label policy → frame stores → training batches and evaluation inputs (docs/architecture.md).

Model selection uses **validation subjects carved from the training subjects** (``data.val_fraction``), never the
test fold. ``data.select_on=test`` reproduces the papers' protocol (ME-GraphAU/MDHR select the best epoch on the
test fold, reference C.6) and is labelled as such in every report.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from auspread.data.index import VideoIndex
from auspread.engine.config import DataConfig
from auspread.engine.distributed import env_world_size
from auspread.errors import ConfigError, DataError
from auspread.methods.base import DatasetInfo


def resolve_dataset(dc: DataConfig, progress: bool = True) -> tuple[str, Path]:
    """``(reader name, root)``; the synthetic default is generated once and cached."""
    if dc.dataset == "synthetic":
        if dc.root is not None:
            return dc.synth_format, Path(dc.root)
        from auspread.data.synth import default_dataset

        return dc.synth_format, Path(default_dataset(dc.synth_preset, dc.synth_format, progress=progress))
    if dc.root is None:
        raise DataError("data.root", f"data.dataset={dc.dataset} needs data.root=/path/to/{dc.dataset} (the dataset folder)")
    return dc.dataset, Path(dc.root)


def check_dataset_root(dc: DataConfig) -> None:
    """``DataError`` for a named dataset whose root is not set or does not exist, before any work (the synthetic
    default, generated on first use, passes)."""
    if dc.dataset == "synthetic" and dc.root is None:
        return
    _, root = resolve_dataset(dc, progress=False)
    if not root.exists():
        raise DataError(root, "dataset root does not exist (set data.root=...)")


def read_index(dc: DataConfig, progress: bool = True) -> VideoIndex:
    """The run's dataset as aligned face crops, frames without a face unlabelled (docs/datasets.md, "Face crops or
    camera frames"). A dataset of full camera frames is replaced by its ``auspread prepare`` output
    (:func:`face_crop_index`); training never sees a squashed camera frame."""
    from auspread.data.index import unlabel_no_face_frames
    from auspread.data.readers import read_dataset

    name, root = resolve_dataset(dc, progress)
    if not root.exists():
        raise DataError(root, "dataset root does not exist (set data.root=...)")
    opts: dict = {}
    if name == "disfa":
        opts = {"threshold": dc.disfa_threshold, "camera": dc.camera}
    if name in ("bp4d", "bp4d+", "disfa"):
        opts["progress"] = progress
    if dc.uncoded_frames:
        if name not in ("bp4d", "bp4d+"):
            raise ConfigError(f"data.uncoded_frames=true applies to BP4D and BP4D+ (uncoded frames without a label row); "
                              f"the {name} reader has none: remove it")
        opts["uncoded_frames"] = True
    index = read_dataset(name, root, **opts)
    if not index.face_crops:
        index = face_crop_index(index, name, root, opts, dc.prepare, progress)
    if index.frames_without_face and progress:
        print(f"{index.frames_without_face} of {index.num_frames} frames have no face (auspread prepare found none): "
              f"kept as context, unlabelled", file=sys.stderr)
    return unlabel_no_face_frames(index)


_LABEL_ONLY_OPTIONS = ("threshold", "progress")  # reader options that do not change which frames are read


def prepare_command(name: str, root: Path, out: Path, reader_options: dict) -> str:
    """The ``auspread prepare`` command line that writes ``out`` for this dataset."""
    extra = "".join(f" -o {k}={v}" for k, v in reader_options.items() if k not in _LABEL_ONLY_OPTIONS)
    return f"auspread prepare {shlex.quote(str(root))} {shlex.quote(str(out))} --dataset {name}{extra}"


def face_crop_index(index: VideoIndex, name: str, root: Path, reader_options: dict, prepare: str,
                    progress: bool = True) -> VideoIndex:
    """``index`` (full camera frames) on the aligned face crops of its ``auspread prepare`` output in the default
    place (:func:`~auspread.data.readers.prepared.default_prepared_dir`): used when it holds every video; otherwise
    written there now (``prepare="auto"``; one process; resumable: an interrupted run continues) or refused in one
    line naming the command (``prepare="never"``, and under torchrun, whose other processes would time out waiting).
    Labels always come from ``index``."""
    from auspread.data.readers.prepared import default_prepared_dir, read_prepared, with_prepared_crops

    out = default_prepared_dir(index, name)
    if (out / "auspread_index.json").is_file():
        prepared = read_prepared(out)
        have = {v.video_id for v in prepared.videos}
        if all(v.video_id in have for v in index.videos):
            return with_prepared_crops(index, prepared)
    command = prepare_command(name, root, out, reader_options)
    if prepare == "never" or env_world_size() > 1:
        why = "data.prepare=never" if prepare == "never" else "under torchrun training does not prepare them itself"
        raise DataError(root, f"holds full camera frames, not the aligned face crops training needs (made as "
                              f"`auspread predict` makes them); run `{command}` first ({why})")
    from auspread.faces.prepare import PrepareOptions, prepare_dataset

    if progress:
        print(f"{root} holds full camera frames: detecting and aligning faces as `auspread predict` does, "
              f"into {out} (resumable; the same as `{command}`)", file=sys.stderr)
    prepare_dataset(root, out, name, PrepareOptions(aligned=False), progress=progress, reader_options=reader_options)
    return with_prepared_crops(index, read_prepared(out))


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
    from auspread.data.readers.bp4d import coded_only

    val = coded_only(index.select_subjects(val_s)) if val_s else None  # uncoded frames only train
    test = coded_only(index.select_subjects(test_s))
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

    return replace(splits, val=sparsify(splits.val, dc.labels, dc.label_seed).index)


def _labelled_frames(index: VideoIndex | None) -> int:
    return 0 if index is None else int(sum(int((v.labels >= 0).any(axis=1).sum()) for v in index.videos))


def label_summary(train: VideoIndex, key_frames: np.ndarray, every: int | None, dc: DataConfig | None = None,
                  val: VideoIndex | None = None, val_seen: VideoIndex | None = None) -> dict:
    """The labels a run saw. Training: all frames, labelled frames (with a known label), key frames, and the ratio
    actually used (``ratio_used``: key frames over labelled frames; ``label_ratio``: over all frames). With ``dc``,
    validation: all frames, labelled frames, and the labelled frames model selection saw (``val_seen``, the
    validation index after :func:`validation_labels`)."""
    out = {"every": every, "train_frames": train.num_frames, "key_frames": int(len(key_frames)),
           "label_ratio": float(len(key_frames) / max(1, train.num_frames))}
    if dc is not None:
        labelled = _labelled_frames(train)
        out = {"requested": str(dc.labels), **out, "percent": dc.labels.percent, "train_labelled_frames": labelled,
               "ratio_used": float(len(key_frames) / max(1, labelled)), "val_labels": dc.val_labels,
               "val_frames": 0 if val is None else val.num_frames, "val_labelled_frames": _labelled_frames(val),
               "val_labelled_frames_seen": _labelled_frames(val_seen)}
    return out
