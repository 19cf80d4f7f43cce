"""DISFA reader.

Layout (names matched case-insensitively)::

    <root>/ActionUnit_Labels/SN001/SN001_au1.txt … SN001_au26.txt     one "frame,intensity" line per frame
    <root>/Videos_LeftCamera/LeftVideoSN001_comp.avi                   (or Video_LeftCamera/, …_Comp.avi)
    <root>/Videos_RightCamera/RightVideoSN001_comp.avi                 (camera="right")

Label semantics (ME-GraphAU, JAA-Net, MDHR): **line order is the frame index** (line i ↔ decoded video frame i,
0-based); the file's own frame number (1-based in the real data) is kept in ``frame_numbers``. An AU is present
when its intensity is ≥ ``threshold`` (default 2, the benchmark rule; OpenGraphAU uses 1). Intensities are kept in
``VideoRecord.intensities``. Every subject's video frame count is checked against its label line count (SN010 has
4,844 lines, the others 4,845); a mismatch is a :class:`DataError` naming both files and both counts.
The videos are full 1024×768 camera frames (``VideoIndex.face_crops`` is False) unless the tree is the synthetic
benchmark's (face crops) or ``face_crops=True`` says otherwise.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from auspread.aus import dataset_aus
from auspread.data.index import VideoFile, VideoIndex, VideoRecord
from auspread.data.readers._common import (
    VIDEO_SUFFIXES,
    ReaderOptions,
    attach_landmarks,
    children,
    count_video_frames,
    find_child,
    is_synthetic_tree,
    parse_options,
    require_dir,
    select_aus,
)
from auspread.errors import DataError

_SUBJECT = re.compile(r"^sn\d+$", re.IGNORECASE)


class DISFAOptions(ReaderOptions):
    aus: list[int] | None = None  # default: the 8 benchmark AUs; any of the 12 coded AUs may be chosen
    threshold: float = float(dataset_aus("DISFA").occurrence.get("threshold", 2))  # present ⇔ intensity ≥ threshold
    camera: Literal["left", "right"] = "left"
    labels: Path | None = None  # the ActionUnit_Labels folder; default <root>/ActionUnit_Labels
    videos: Path | None = None  # the camera's video folder; default <root>/Video(s)_<Camera>Camera
    subjects: list[str] | None = None
    check_frame_count: bool = True
    frame_count: Literal["metadata", "packets", "decode"] = "metadata"  # how to count video frames
    landmarks: bool = True  # attach <root>/Landmarks_68/SN001.npz when present
    progress: bool = True


def read_label_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(frame_numbers (T,) int64, intensities (T,) float32)`` from one ``SNxxx_auN.txt``."""
    try:  # fast path for well-formed files; anything unusual is re-read line by line for a precise message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        if arr.shape[0] > 0 and arr.shape[1] == 2 and (arr[:, 0] == np.round(arr[:, 0])).all() \
                and ((arr[:, 1] >= 0) & (arr[:, 1] <= 5)).all():
            return arr[:, 0].astype(np.int64), arr[:, 1].astype(np.float32)
    except (ValueError, OSError):
        pass
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot be read ({e})") from None
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [c for c in re.split(r"[,\s]+", line.strip()) if c]
        if len(cells) != 2:
            raise DataError(path, f"line {i} is {line.strip()!r}; expected 'frame,intensity'")
        try:
            frame, value = float(cells[0]), float(cells[1])
        except ValueError:
            raise DataError(path, f"non-numeric value at line {i}: {line.strip()!r}") from None
        if frame != int(frame) or not 0 <= value <= 5:
            raise DataError(path, f"line {i} is {line.strip()!r}; expected an integer frame and an intensity 0–5")
        rows.append((int(frame), value))
    if not rows:
        raise DataError(path, "is empty (expected one 'frame,intensity' line per frame)")
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0].astype(np.int64), arr[:, 1].astype(np.float32)


def find_video(video_dir: Path, camera: str, subject: str) -> Path | None:
    """``<Camera>Video<SN001>_comp.avi`` in any capitalisation (``_Comp``, ``leftvideo``, …)."""
    want = f"{camera}video{subject}_comp".lower()
    for name, p in children(video_dir).items():
        if p.suffix.lower() in VIDEO_SUFFIXES and p.stem.lower() == want:
            return p
    return None


def read(root: str | Path, **options) -> VideoIndex:
    """Read a DISFA copy into a :class:`VideoIndex` of one :class:`VideoFile` record per subject."""
    opts = parse_options(DISFAOptions, options, "disfa")
    root = require_dir(Path(root), "DISFA root")
    aus = select_aus("DISFA", opts.aus)
    label_dir = Path(opts.labels) if opts.labels else find_child(root, ["ActionUnit_Labels"], want_dir=True)
    if label_dir is None:
        raise DataError(root, "no ActionUnit_Labels folder (expected ActionUnit_Labels/SN001/SN001_au1.txt …)")
    require_dir(label_dir, "label folder")
    subjects = [(p.name.upper(), p) for p in sorted(label_dir.iterdir()) if p.is_dir() and _SUBJECT.match(p.name)]
    if opts.subjects is not None:
        keep = {s.upper() for s in opts.subjects}
        subjects = [s for s in subjects if s[0] in keep]
    if not subjects:
        raise DataError(label_dir, "contains no subject folders SNxxx")
    cam = opts.camera.capitalize()
    if opts.videos is not None:
        video_dir = require_dir(Path(opts.videos), "video folder")
    else:
        video_dir = find_child(root, [f"Videos_{cam}Camera", f"Video_{cam}Camera"], want_dir=True)
        if video_dir is None:
            raise DataError(root, f"no Videos_{cam}Camera or Video_{cam}Camera folder for the {opts.camera} camera")

    videos: list[VideoRecord] = []
    for subj, sdir in tqdm(subjects, desc="reading DISFA", unit="video", disable=None if opts.progress else True, leave=False):
        files = children(sdir)
        columns, first_file, frame_numbers = [], None, None
        for a in aus:
            f = files.get(f"{subj}_au{a}.txt".lower())
            if f is None:
                raise DataError(sdir / f"{subj}_au{a}.txt", f"missing label file for AU{a} of {subj}")
            fn, inten = read_label_file(f)
            if frame_numbers is None:
                first_file, frame_numbers = f, fn
            elif len(fn) != len(frame_numbers):
                raise DataError(f, f"has {len(fn)} label lines but {first_file.name} has {len(frame_numbers)}")
            elif not np.array_equal(fn, frame_numbers):
                i = int(np.flatnonzero(fn != frame_numbers)[0])
                raise DataError(f, f"line {i + 1} is frame {fn[i]} but {first_file.name} line {i + 1} is frame {frame_numbers[i]}")
            columns.append(inten)
        intensities = np.stack(columns, axis=1)
        t = len(frame_numbers)
        video = find_video(video_dir, opts.camera, subj)
        if video is None:
            raise DataError(video_dir / f"{cam}Video{subj}_comp.avi", f"missing {opts.camera}-camera video of {subj}")
        if opts.check_frame_count:
            n = count_video_frames(video, opts.frame_count)
            if n != t:
                raise DataError(video, f"has {n} frames but {first_file} has {t} label lines (line order is the frame index)")
        labels = (intensities >= opts.threshold).astype(np.int8)
        lm, note = attach_landmarks(root, subj, frame_numbers) if opts.landmarks else (None, None)
        meta = {"label_dir": str(sdir), "video": str(video), "camera": opts.camera, "threshold": opts.threshold,
                "first_frame_number": int(frame_numbers[0])}
        if note:
            meta["landmarks_note"] = note
        videos.append(
            VideoRecord(video_id=subj, subject=subj, task="", frame_numbers=frame_numbers, labels=labels,
                        source=VideoFile(str(video), tuple(range(t))), landmarks=lm, intensities=intensities, meta=meta)
        )
    crops = opts.face_crops if opts.face_crops is not None else is_synthetic_tree(root)
    return VideoIndex(dataset="DISFA", aus=aus, videos=videos, fps=dataset_aus("DISFA").fps, root=str(root),
                      face_crops=crops)
