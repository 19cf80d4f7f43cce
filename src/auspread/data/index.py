"""The common index every reader produces and every sampler consumes.

A :class:`VideoIndex` is a list of :class:`VideoRecord`; each record is one ordered video (BP4D: subject×task,
DISFA: one subject's video, generic: one file or frame folder). Per-frame labels are an ``int8`` array of shape
``(T, U)`` with values ``1`` (present), ``0`` (absent) and ``-1`` (unknown: not coded, BP4D's 9, or hidden by a
sparse-label policy). ``U`` and the AU order are ``VideoIndex.aus``.

Pixels come from a :class:`FrameSource`: a list of image files, or a video file plus decoded frame indices.
Readers never decode pixels; the frame store (``auspread.data.store``) does, once.

``VideoIndex.face_crops`` says what the pixels are: aligned face crops (``True``: ``auspread prepare`` output,
ME-GraphAU/MDHR crop trees, the synthetic benchmark) or full camera frames (``False``: raw BP4D/BP4D+/DISFA trees,
people's own videos). Each reader sets it from the layout; training accepts only face crops
(``auspread.engine.data.read_index``). A record's ``meta["no_face_frames"]`` lists the frame numbers where
``auspread prepare`` found no face; :func:`unlabel_no_face_frames` makes their labels unknown.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Iterator, Literal, Union

import numpy as np

UNKNOWN = -1


@dataclass(frozen=True)
class ImageFiles:
    """Frames stored as one image file per frame, in video order."""

    paths: tuple[str, ...]
    kind: Literal["images"] = "images"

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class VideoFile:
    """Frames stored in one video container; ``indices[i]`` is the 0-based decode index of the record's frame i."""

    path: str
    indices: tuple[int, ...]
    kind: Literal["video"] = "video"

    def __len__(self) -> int:
        return len(self.indices)


FrameSource = Union[ImageFiles, VideoFile]


@dataclass
class VideoRecord:
    """One ordered video.

    Attributes:
        video_id: unique within the index, e.g. ``"F001/T1"`` or ``"SN001"``.
        subject: subject id as in the dataset (``"F001"``, ``"SN001"``); folds are defined on it.
        task: task id (``"T1"``) or ``""``.
        frame_numbers: ``(T,)`` int64, the dataset's own frame numbering (BP4D CSV frame, DISFA line's frame no.).
        labels: ``(T, U)`` int8 in {-1, 0, 1}.
        source: where the pixels are.
        landmarks: optional ``(T, P, 2)`` float32 pixel coordinates in the source frames (P = 68 or 66).
        intensities: optional ``(T, U)`` float32 AU intensities (0–5) where the dataset has them (DISFA, synthetic).
        meta: free-form, JSON-serialisable (e.g. the label file a record came from).
    """

    video_id: str
    subject: str
    task: str
    frame_numbers: np.ndarray
    labels: np.ndarray
    source: FrameSource
    landmarks: np.ndarray | None = None
    intensities: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frame_numbers = np.asarray(self.frame_numbers, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int8)
        t = len(self.frame_numbers)
        if self.labels.ndim != 2 or self.labels.shape[0] != t:
            raise ValueError(f"{self.video_id}: labels shape {self.labels.shape} does not match {t} frames")
        if len(self.source) != t:
            raise ValueError(f"{self.video_id}: frame source has {len(self.source)} frames, labels have {t}")

    def __len__(self) -> int:
        return len(self.frame_numbers)


@dataclass
class VideoIndex:
    """Everything a reader found: the videos, their AU set and where they came from."""

    dataset: str  # "BP4D", "BP4D+", "DISFA", "generic", or a user name
    aus: tuple[int, ...]
    videos: list[VideoRecord]
    fps: float
    root: str = ""
    face_crops: bool = True  # False: full camera frames, to be aligned (auspread prepare) before training

    def __post_init__(self) -> None:
        self.aus = tuple(int(a) for a in self.aus)
        for v in self.videos:
            if v.labels.shape[1] != len(self.aus):
                raise ValueError(f"{v.video_id}: {v.labels.shape[1]} label columns but {len(self.aus)} AUs")

    # --- queries -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self.videos)

    @property
    def num_aus(self) -> int:
        return len(self.aus)

    @property
    def num_frames(self) -> int:
        return sum(len(v) for v in self.videos)

    def subjects(self) -> list[str]:
        """Subjects in first-appearance order."""
        return list(dict.fromkeys(v.subject for v in self.videos))

    def select_subjects(self, subjects: list[str] | set[str]) -> "VideoIndex":
        keep = set(subjects)
        return dataclasses.replace(self, videos=[v for v in self.videos if v.subject in keep])

    def every_kth_video(self, k: int) -> "VideoIndex":
        """About 1/k of the videos, for cheaper evaluation: each subject keeps its videos (sorted by id) at positions j
        with (j + i) % k == 0, i = the subject's sorted rank, so every subject stays and the kept tasks rotate."""
        if k < 1:
            raise ValueError("k must be >= 1")
        rank = {s: i for i, s in enumerate(sorted(self.subjects()))}
        keep: list[VideoRecord] = []
        for s, i in rank.items():
            own = sorted((v for v in self.videos if v.subject == s), key=lambda v: v.video_id)
            keep += [v for j, v in enumerate(own) if (j + i) % k == 0]
        return dataclasses.replace(self, videos=keep)

    @property
    def frames_without_face(self) -> int:
        """Frames where ``auspread prepare`` found no face (``meta["no_face_frames"]`` of every record)."""
        return sum(len(v.meta.get("no_face_frames") or ()) for v in self.videos)

    def with_labels(self, labels: list[np.ndarray]) -> "VideoIndex":
        """A copy whose videos carry the given label arrays (used by sparse-label policies)."""
        if len(labels) != len(self.videos):
            raise ValueError("one label array per video is required")
        return dataclasses.replace(
            self, videos=[dataclasses.replace(v, labels=l) for v, l in zip(self.videos, labels)]
        )

    def all_labels(self) -> np.ndarray:
        """``(N_frames, U)`` int8, videos concatenated in order."""
        if not self.videos:
            return np.zeros((0, self.num_aus), dtype=np.int8)
        return np.concatenate([v.labels for v in self.videos])

    def base_rates(self) -> np.ndarray:
        """Per-AU rate of positives among known labels (NaN where an AU has no known label)."""
        y = self.all_labels()
        known = (y >= 0).sum(0)
        pos = (y == 1).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return pos / known

    def summary(self) -> dict:
        y = self.all_labels()
        return {
            "dataset": self.dataset,
            "root": self.root,
            "subjects": len(self.subjects()),
            "videos": len(self.videos),
            "frames": self.num_frames,
            "aus": list(self.aus),
            "labelled_frames": int((y >= 0).any(1).sum()),
            "face_crops": self.face_crops,
            "frames_without_face": self.frames_without_face,
            "unknown_cells": int((y < 0).sum()),
            "base_rates": {f"AU{a}": (None if np.isnan(r) else round(float(r), 4)) for a, r in zip(self.aus, self.base_rates())},
        }


def index_to_json(index: VideoIndex) -> str:
    """Serialise an index (for caching and debugging); arrays become lists."""

    def rec(v: VideoRecord) -> dict:
        return {
            "video_id": v.video_id,
            "subject": v.subject,
            "task": v.task,
            "frame_numbers": v.frame_numbers.tolist(),
            "labels": v.labels.tolist(),
            "source": dataclasses.asdict(v.source),
            "landmarks": None if v.landmarks is None else np.round(v.landmarks, 2).tolist(),
            "intensities": None if v.intensities is None else np.round(v.intensities, 3).tolist(),
            "meta": v.meta,
        }

    return json.dumps({"dataset": index.dataset, "aus": list(index.aus), "fps": index.fps, "root": index.root,
                       "face_crops": index.face_crops, "videos": [rec(v) for v in index.videos]})


def index_from_json(text: str) -> VideoIndex:
    d = json.loads(text)
    videos = []
    for r in d["videos"]:
        s = r["source"]
        source: FrameSource = (
            ImageFiles(tuple(s["paths"])) if s["kind"] == "images" else VideoFile(s["path"], tuple(s["indices"]))
        )
        videos.append(
            VideoRecord(
                video_id=r["video_id"], subject=r["subject"], task=r["task"],
                frame_numbers=np.array(r["frame_numbers"], dtype=np.int64),
                labels=np.array(r["labels"], dtype=np.int8).reshape(len(r["frame_numbers"]), len(d["aus"])),
                source=source,
                landmarks=None if r["landmarks"] is None else np.array(r["landmarks"], dtype=np.float32),
                intensities=None if r["intensities"] is None else np.array(r["intensities"], dtype=np.float32),
                meta=r["meta"],
            )
        )
    return VideoIndex(d["dataset"], tuple(d["aus"]), videos, d["fps"], d["root"], bool(d.get("face_crops", True)))


def unlabel_no_face_frames(index: VideoIndex) -> VideoIndex:
    """A copy whose frames listed in ``meta["no_face_frames"]`` (no face found by ``auspread prepare``) have
    unknown labels (−1) in every AU: they stay in the videos (temporal context, as ``auspread predict`` keeps them,
    aligned with the nearest face's transform) but are neither trained on nor scored, as ``predict`` gives them no
    AU probabilities."""
    videos = []
    for v in index.videos:
        gone = np.isin(v.frame_numbers, np.asarray(v.meta.get("no_face_frames") or (), dtype=np.int64))
        if gone.any():
            labels = v.labels.copy()
            labels[gone] = UNKNOWN
            v = dataclasses.replace(v, labels=labels)
        videos.append(v)
    return dataclasses.replace(index, videos=videos)
