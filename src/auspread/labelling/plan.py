"""``auspread suggest-labels`` end to end: inputs → videos → candidate frames → budget → picks → manifest.

INPUTS are videos, frame folders (or folders of videos), and at most one existing generic manifest (CSV or JSON).
The manifest's rows are all kept; new suggestions are appended as rows with empty AU cells and a ``reason``. The
output is written atomically; an existing output file is only ever the input manifest itself being extended.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from auspread.errors import ConfigError, DataError
from auspread.labelling.frames import FrameReader
from auspread.labelling.manifest import REASON, LabelManifest, au_column
from auspread.labelling.suggest import (Candidates, Pick, Scorer, allocate, scan_video, select, spaced_capacity,
                                        uncertainty)

MANIFEST_SUFFIXES = (".csv", ".json")


@dataclass
class VideoEntry:
    path: Path  # the video file or frame folder
    source: str  # as written in the output manifest
    subject: str
    task: str = ""
    listed: set[int] = field(default_factory=set)  # frames the manifest already has rows for
    in_manifest: bool = False


@dataclass
class VideoReport:
    source: str
    frames: int
    scanned: int
    with_face: int
    picked: list[Pick]


def _is_manifest(p: Path) -> bool:
    if p.is_file():
        return p.suffix.lower() in MANIFEST_SUFFIXES
    return p.is_dir() and any((p / n).is_file() for n in ("auspread_manifest.csv", "auspread_manifest.json"))


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(path.resolve())


def output_path(out: str | Path) -> Path:
    out = Path(out)
    if out.is_dir():
        out = out / "auspread_manifest.csv"
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out must be a .csv file (the generic manifest), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)  # sources are written relative to it
    return out


def load_base(path: Path, out: Path, aus: Sequence[int] | None) -> tuple[LabelManifest, list[VideoEntry]]:
    """The input manifest as a :class:`LabelManifest` that will be written to ``out`` (sources rebased onto
    ``out``'s folder), and its videos."""
    from auspread.data.readers.generic import manifest_path

    path = manifest_path(path)
    if path.suffix.lower() == ".csv":
        base = LabelManifest.read(path)
        if out.resolve() != path.resolve():
            for r in base.rows:
                src = base.get(r, "source")
                if src and not Path(src).is_absolute():
                    base.set(r, "source", _relative(path.parent / src, out.parent))
        base.path = out
    else:  # JSON: its labels become CSV rows
        from auspread.data.readers import read_dataset

        idx = read_dataset("generic", path)
        base = LabelManifest.new(out, list(idx.aus))
        for rec in idx.videos:
            src = _relative(Path(rec.meta["source"]), out.parent)
            done = np.flatnonzero((rec.labels >= 0).any(1))
            if not len(done):
                base.append({"source": src, "subject": rec.subject, "task": rec.task, "frame": ""})
            for t in done:
                cells = {au_column(a): ("" if v < 0 else str(int(v))) for a, v in zip(idx.aus, rec.labels[t])}
                base.append({"source": src, "subject": rec.subject, "task": rec.task, "frame": str(int(t)), **cells})
    if aus:
        base.ensure_columns([au_column(a) for a in aus])
    base.ensure_columns([REASON])
    entries: dict[str, VideoEntry] = {}
    for r in base.rows:
        src = base.get(r, "source")
        if not src:
            raise DataError(path, "a row has an empty 'source'")
        e = entries.get(src)
        if e is None:
            p = Path(src) if Path(src).is_absolute() else out.parent / src
            e = entries[src] = VideoEntry(p, src, base.get(r, "subject"), base.get(r, "task"), in_manifest=True)
        f = base.get(r, "frame")
        if f != "":
            e.listed.add(int(float(f)))
    return base, list(entries.values())


def resolve_inputs(inputs: Sequence[str], out: Path, aus: Sequence[int] | None
                   ) -> tuple[LabelManifest, list[VideoEntry]]:
    from auspread.aus import dataset_aus
    from auspread.media import ImageSequence, expand_inputs

    manifests = [Path(i) for i in inputs if _is_manifest(Path(i))]
    if len(manifests) > 1:
        raise ConfigError(f"give at most one manifest to extend, got {', '.join(map(str, manifests))}")
    if manifests:
        base, entries = load_base(manifests[0], out, aus)
        if out.exists() and out.resolve() != base_source(manifests[0]).resolve():
            raise DataError(out, "already exists; pass it as an input to add frames to it (it is never overwritten)")
    else:
        if out.exists():
            raise DataError(out, "already exists; pass it as an input to add frames to it (it is never overwritten)")
        base, entries = LabelManifest.new(out, list(aus or dataset_aus("BP4D").aus)), []
    known = {e.path.resolve() for e in entries}
    others = [i for i in inputs if Path(i) not in manifests]
    subjects = {e.subject for e in entries}
    for src in (expand_inputs(others) if others else []):
        if isinstance(src, ImageSequence):
            if len(src.paths) == 1:
                raise DataError(src.path, "is a single image; give the folder of a video's frames")
            p = Path(src.paths[0]).parent
        else:
            p = Path(src.path)
        if p.resolve() in known:
            continue
        known.add(p.resolve())
        name, n = src.name, 2
        while name in subjects:
            name, n = f"{src.name}_{n}", n + 1
        subjects.add(name)
        entries.append(VideoEntry(p, _relative(p, out.parent), name))
    if not entries:
        raise DataError(out, "no video to choose frames from")
    return base, entries


def base_source(p: Path) -> Path:
    from auspread.data.readers.generic import manifest_path

    return manifest_path(p)


def video_seed(seed: int, entry: VideoEntry) -> list[int]:
    """A video's own seed, from its subject, task and file name (not its folder, so a moved or copied data set
    picks the same frames): the same picks for a video whatever else is in the list."""
    key = f"{entry.subject}/{entry.task}/{Path(entry.source).name}"
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))]


def suggest_labels(inputs: Sequence[str], budget: int, out: str | Path, *, scorer: Scorer | None = None,
                   aus: Sequence[int] | None = None, seed: int = 0, per_second: float = 5.0, min_gap: float = 1.0,
                   frame_fps: float = 25.0, detector=None, progress: bool = False) -> tuple[Path, list[VideoReport]]:
    """Choose ``budget`` frames to label (:mod:`auspread.labelling.suggest`) and write the manifest ``out``."""
    from auspread.progress import progress_bar

    if budget < 1:
        raise ConfigError(f"--budget must be at least 1, got {budget}")
    if per_second <= 0 or min_gap < 0:
        raise ConfigError("--per-second must be positive and --min-gap non-negative")
    out = output_path(out)
    base, entries = resolve_inputs(inputs, out, aus)
    if detector is None:
        from auspread.faces.detect import FaceDetector

        detector = FaceDetector()
    scanned: list[Candidates] = []
    scores: list[np.ndarray | None] = []
    for e in entries:
        reader = FrameReader(e.path, default_fps=frame_fps)
        stride = max(1, round(reader.fps / per_second))
        bar = progress_bar(desc=f"scan {e.path.name}", unit="frame", disable=not progress, leave=False, every=0)
        try:
            c = scan_video(reader, stride, detector, extra=sorted(e.listed), progress=bar.update)
        finally:
            bar.close()
        bad = [f for f in e.listed if f >= c.num_frames]
        if bad:
            raise DataError(e.path, f"has {c.num_frames} frames; the manifest lists frame {min(bad)}")
        scanned.append(c)
        if scorer is not None:
            probs = scorer.probabilities(e.path)
            s = np.full(len(c.frames), np.nan)
            inside = c.frames < len(probs)
            s[inside] = uncertainty(probs[c.frames[inside]], scorer.thresholds)
            scores.append(s)
        else:
            scores.append(None)
    picks = _spend(entries, scanned, scores, budget, seed, min_gap)
    reports = []
    for e, c, chosen in zip(entries, scanned, picks):
        for p in sorted(chosen, key=lambda p: p.frame):
            base.append({"source": e.source, "subject": e.subject, "task": e.task, "frame": str(p.frame),
                         **{au_column(a): "" for a in base.aus}, REASON: p.reason})
        if not chosen and not e.in_manifest:
            base.append({"source": e.source, "subject": e.subject, "task": e.task, "frame": ""})
        reports.append(VideoReport(e.source, c.num_frames, len(c.frames), int(c.face.sum()), chosen))
    base.write(out)
    return out, reports


def _spend(entries: list[VideoEntry], scanned: list[Candidates], scores: list[np.ndarray | None], budget: int,
           seed: int, min_gap: float, rounds: int = 4) -> list[list[Pick]]:
    """Split the budget by length and capacity, select per video; where a video's picks leave no room for its
    whole share (the spacing of greedy picks can leave less than the capacity), the rest is split again over the
    videos that still have room, the picks so far counting as listed frames."""
    picks: list[list[Pick]] = [[] for _ in entries]
    left = budget
    for _ in range(rounds):
        capacity = []
        for e, c, s, p in zip(entries, scanned, scores, picks):
            taken = e.listed | {x.frame for x in p}
            ok = c.face & ~np.isin(c.frames, list(taken))
            if s is not None:
                ok &= np.isfinite(s)
            blocked = np.array(sorted(taken), np.float64) / c.fps
            capacity.append(spaced_capacity(c.times[ok], min_gap, blocked))
        shares = allocate([c.num_frames for c in scanned], left, capacity)
        if not any(shares):
            break
        for i, (e, c, s, k) in enumerate(zip(entries, scanned, scores, shares)):
            if k:
                taken = sorted(e.listed | {x.frame for x in picks[i]})
                picks[i] += select(c, k, labelled=taken, seed=video_seed(seed, e), min_gap=min_gap, scores=s)
        left = budget - sum(len(p) for p in picks)
        if left <= 0:
            break
    return picks
