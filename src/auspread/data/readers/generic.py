"""Generic manifest for your own videos or frame folders (format documented in docs/datasets.md).

CSV (one row per labelled frame; a row with an empty ``frame`` only declares a video, e.g. an unlabelled one)::

    source,subject,task,frame,AU01,AU06,AU12
    clips/anna.mp4,anna,interview,0,1,,0
    clips/anna.mp4,anna,interview,30,0,1,
    frames/bob,bob,,12,1,0,1
    clips/carl.mp4,carl,,,,,

JSON::

    {"fps": 30, "aus": [1, 6, 12],
     "videos": [{"source": "clips/anna.mp4", "subject": "anna", "task": "interview",
                 "labels": [{"frame": 0, "AU01": 1, "AU12": 0}, {"frame": 30, "AU06": 1}]},
                {"source": "frames/bob", "subject": "bob"}]}

- ``source``: a video file or a folder of frame images, relative to the manifest's folder (or absolute).
- ``frame``: the 0-based position of the frame in the video's decode order, or in the folder's images sorted
  by natural name order (``2.jpg`` before ``10.jpg``).
- AU columns/keys ``AU<n>`` (``AU1``, ``AU01``, ``au12``): ``1`` present, ``0`` absent; empty, ``-1`` or ``9``
  mean unlabelled. Every frame not listed is unlabelled (−1).
The manifest may be passed as the file itself or as a folder holding ``auspread_manifest.csv`` / ``.json``.

The sources are taken to be camera recordings (``VideoIndex.face_crops`` False: training uses them through
``auspread prepare``'s aligned face crops). A JSON manifest with ``"face_crops": true`` (or the option
``face_crops=True``) declares sources that are already aligned face crops made as ``auspread prepare`` makes them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from auspread.data.index import ImageFiles, VideoFile, VideoIndex, VideoRecord
from auspread.data.readers._common import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    ReaderOptions,
    attach_landmarks,
    count_video_frames,
    natural_key,
    parse_options,
    video_fps,
)
from auspread.errors import DataError

MANIFEST_NAMES = ("auspread_manifest.csv", "auspread_manifest.json")
_AU = re.compile(r"^au\s*0*(\d+)$", re.IGNORECASE)


class GenericOptions(ReaderOptions):
    aus: list[int] | None = None  # default: every AU column of the manifest, ascending
    fps: float | None = None  # default: the manifest's "fps", else the first video's rate, else 25
    name: str = "generic"  # VideoIndex.dataset
    frame_count: Literal["metadata", "packets", "decode"] = "metadata"  # how video frames are counted
    landmarks: bool = True


def manifest_path(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for n in MANIFEST_NAMES:
            if (path / n).is_file():
                return path / n
        raise DataError(path, f"no manifest ({' or '.join(MANIFEST_NAMES)}) in this folder")
    raise DataError(path, "does not exist")


def _cell(value, where: str, path: Path) -> int:
    """A label cell: 1/0 known, empty/-1/9 unknown (returned as -1)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return -1
    s = str(value).strip()
    if s == "":
        return -1
    try:
        f = float(s)
    except ValueError:
        raise DataError(path, f"non-numeric label {s!r} at {where}") from None
    if f in (0, 1):
        return int(f)
    if f in (-1, 9):
        return -1
    raise DataError(path, f"label {s!r} at {where} must be 1, 0 or empty")


def _rows_from_csv(path: Path) -> tuple[list[dict], list[int], float | None]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(path, "is empty (expected a header: source,subject[,task],frame,AU01,…)") from None
    except pd.errors.ParserError as e:
        raise DataError(path, f"is not a readable CSV ({e})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    for need in ("source", "subject"):
        if need not in cols:
            raise DataError(path, f"has no {need!r} column (header: {', '.join(df.columns)})")
    au_cols = {int(_AU.match(c.strip())[1]): c for c in df.columns if _AU.match(c.strip())}
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        rows.append({
            "line": i + 2,
            "source": r[cols["source"]].strip(),
            "subject": r[cols["subject"]].strip(),
            "task": r[cols["task"]].strip() if "task" in cols else "",
            "frame": r[cols["frame"]].strip() if "frame" in cols else "",
            "aus": {a: r[c] for a, c in au_cols.items()},
        })
    return rows, sorted(au_cols), None


def _rows_from_json(path: Path) -> tuple[list[dict], list[int], float | None]:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"is not valid JSON ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("videos"), list):
        raise DataError(path, 'must be an object with a "videos" list')
    rows, seen_aus = [], set()
    for vi, v in enumerate(d["videos"]):
        if not isinstance(v, dict) or "source" not in v or "subject" not in v:
            raise DataError(path, f"videos[{vi}] needs 'source' and 'subject'")
        base = {"source": str(v["source"]), "subject": str(v["subject"]), "task": str(v.get("task", "") or "")}
        rows.append({**base, "line": f"videos[{vi}]", "frame": "", "aus": {}})
        for li, lab in enumerate(v.get("labels", []) or []):
            where = f"videos[{vi}].labels[{li}]"
            if not isinstance(lab, dict) or "frame" not in lab:
                raise DataError(path, f"{where} needs a 'frame'")
            aus = {}
            for k, val in lab.items():
                m = _AU.match(str(k))
                if m:
                    aus[int(m[1])] = val
                elif k != "frame":
                    raise DataError(path, f"{where} has key {k!r}; expected 'frame' and AU keys like 'AU12'")
            seen_aus |= set(aus)
            rows.append({**base, "line": where, "frame": str(lab["frame"]), "aus": aus})
    aus = [int(a) for a in d["aus"]] if "aus" in d else sorted(seen_aus)
    return rows, aus, (float(d["fps"]) if d.get("fps") else None)


def _frames_of(source: Path, frame_count: str) -> tuple[int, ImageFiles | None]:
    if source.is_dir():
        files = sorted((p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                       key=natural_key)
        if not files:
            raise DataError(source, "frame folder contains no images (.jpg, .jpeg, .png, .bmp)")
        return len(files), ImageFiles(tuple(str(p) for p in files))
    if source.is_file():
        if source.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(source, f"is neither a frame folder nor a video ({', '.join(VIDEO_SUFFIXES)})")
        return count_video_frames(source, frame_count), None
    raise DataError(source, "listed in the manifest but does not exist")


def read(root: str | Path, **options) -> VideoIndex:
    """Read a generic manifest (CSV or JSON) into a :class:`VideoIndex`."""
    opts = parse_options(GenericOptions, options, "generic")
    path = manifest_path(Path(root))
    if path.suffix.lower() == ".json":
        rows, aus, fps = _rows_from_json(path)
    elif path.suffix.lower() == ".csv":
        rows, aus, fps = _rows_from_csv(path)
    else:
        raise DataError(path, "manifest must be a .csv or .json file")
    if opts.aus is not None:
        missing = [a for a in opts.aus if a not in aus]
        if missing:
            raise DataError(path, f"has no labels for AU{', AU'.join(map(str, missing))} (it has AUs {aus})")
        aus = [int(a) for a in opts.aus]
    if not aus:
        raise DataError(path, "names no AU (columns like AU01, AU12)")
    if not rows:
        raise DataError(path, "lists no video")

    order: list[str] = []
    videos: dict[str, dict] = {}
    for r in rows:
        if not r["source"] or not r["subject"]:
            raise DataError(path, f"{_where(r)}: 'source' and 'subject' must not be empty")
        v = videos.get(r["source"])
        if v is None:
            v = videos[r["source"]] = {"subject": r["subject"], "task": r["task"], "labels": {}}
            order.append(r["source"])
        elif (v["subject"], v["task"]) != (r["subject"], r["task"]):
            raise DataError(path, f"{_where(r)}: {r['source']} was listed with subject/task {v['subject']}/{v['task']}")
        if r["frame"] == "":
            if any(str(x).strip() not in ("", "nan", "None") for x in r["aus"].values()):
                raise DataError(path, f"{_where(r)}: labels given without a frame")
            continue
        try:
            t = int(float(r["frame"]))
        except ValueError:
            raise DataError(path, f"{_where(r)}: frame {r['frame']!r} is not a number") from None
        if t < 0:
            raise DataError(path, f"{_where(r)}: frame {t} is negative (frames are 0-based positions)")
        row = v["labels"].setdefault(t, np.full(len(aus), -1, dtype=np.int8))
        for j, a in enumerate(aus):
            val = _cell(r["aus"].get(a), f"{_where(r)}, AU{a}", path)
            if val >= 0:
                if row[j] >= 0 and row[j] != val:
                    raise DataError(path, f"{_where(r)}: frame {t} AU{a} given twice with different values")
                row[j] = val

    records, used_ids = [], set()
    for src in order:
        v = videos[src]
        spath = Path(src) if Path(src).is_absolute() else path.parent / src
        t, images = _frames_of(spath, opts.frame_count)
        labels = np.full((t, len(aus)), -1, dtype=np.int8)
        for f, row in v["labels"].items():
            if f >= t:
                raise DataError(path, f"frame {f} of {src} is beyond its {t} frames")
            labels[f] = row
        vid = f"{v['subject']}/{v['task'] or spath.stem}"
        if vid in used_ids:
            vid = f"{v['subject']}/{spath.stem}"
        if vid in used_ids:
            raise DataError(path, f"two sources map to the same video id {vid!r}; give them distinct tasks")
        used_ids.add(vid)
        fn = np.arange(t, dtype=np.int64)
        lm, note = attach_landmarks(path.parent, vid, fn) if opts.landmarks else (None, None)
        meta = {"manifest": str(path), "source": str(spath)}
        if note:
            meta["landmarks_note"] = note
        source = images if images is not None else VideoFile(str(spath), tuple(range(t)))
        records.append(VideoRecord(video_id=vid, subject=v["subject"], task=v["task"], frame_numbers=fn,
                                   labels=labels, source=source, landmarks=lm, meta=meta))
    crops = opts.face_crops if opts.face_crops is not None else _declared_face_crops(path)
    if opts.fps is not None:
        fps = opts.fps
    if fps is None:
        first_video = next((Path(r.source.path) for r in records if isinstance(r.source, VideoFile)), None)
        fps = (video_fps(first_video) if first_video else None) or 25.0
    return VideoIndex(dataset=opts.name, aus=tuple(aus), videos=records, fps=float(fps), root=str(path),
                      face_crops=crops)


def _declared_face_crops(path: Path) -> bool:
    """A JSON manifest's ``"face_crops"`` (default false); CSV manifests hold camera recordings."""
    if path.suffix.lower() != ".json":
        return False
    value = json.loads(path.read_text()).get("face_crops", False)
    if not isinstance(value, bool):
        raise DataError(path, f'"face_crops" must be true or false, got {value!r}')
    return value


def _where(r: dict) -> str:
    return f"line {r['line']}" if isinstance(r["line"], int) else str(r["line"])
