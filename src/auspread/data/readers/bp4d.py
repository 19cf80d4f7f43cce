"""BP4D-Spontaneous reader (and the AU_OCC machinery BP4D+ shares).

Layout (copies differ, so everything is probed; names are matched case-insensitively)::

    <root>/AUCoding/AU_OCC/F001_T1.csv        (or AUCoding/AUCoding/, AUCoding/, AU_OCC/)
    <root>/<frames>/F001/T1/2440.jpg          <frames> = Sequences(2D+3D) | Sequences_2D+3D | 2D+3D | BP4D-training
                                              | img (aligned crops) | nothing (subject folders directly under root)

Label CSV: a header row of integers ``0,1,…,99``; column ``0`` is the frame number and column ``N`` is AU N,
coded 0 (absent), 1 (present) or 9 (not coded → −1, unknown). The CSV rows are the coded frames; only they are
indexed. CSV frame ``f`` is image number ``f`` (ME-GraphAU, JAA-Net); image names may be unpadded, 3- or 4-digit
zero padded, per task folder. A coded frame without an image is an error unless ``missing_frames="skip"``, which
drops it and records the count in ``record.meta["skipped_frames"]``.

Face crops or camera frames (``VideoIndex.face_crops``): a frame tree named ``img``/``img_o`` (ME-GraphAU's crop
layout, and ``auspread prepare``'s output) or a synthetic-benchmark tree holds aligned face crops; any other tree
(``Sequences(2D+3D)``, ``2D+3D``, …) holds the full 1040×1392 camera frames. ``face_crops=`` overrides.

``uncoded_frames=True`` also indexes the task folder's images that have no CSV row (BP4D's ~240,000 uncoded frames
before and after the coded segments, PIAP-DF §4.1.1) with all labels unknown (−1), in frame-number order;
``record.meta["uncoded_frames"]`` lists them as inclusive ``[first, last]`` frame-number ranges so that
:func:`coded_only` can drop them again (evaluation splits).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from auspread.aus import dataset_aus
from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.readers._common import (
    ReaderOptions,
    attach_landmarks,
    children,
    find_child,
    is_synthetic_tree,
    log,
    numbered_images,
    padding_of,
    parse_options,
    require_dir,
    select_aus,
)
from auspread.errors import DataError

FRAME_TREE_NAMES = ("Sequences(2D+3D)", "Sequences_2D+3D", "2D+3D", "BP4D-training", "BP4D+", "img", "images")
CROP_TREE_NAMES = ("img", "img_o")  # trees of aligned face crops (ME-GraphAU/MDHR, auspread prepare)
_STEM = re.compile(r"^([A-Za-z]+\d+)_([A-Za-z]+\d+)$")


class BP4DOptions(ReaderOptions):
    aus: list[int] | None = None  # default: the 12 benchmark AUs; any coded AUs may be chosen
    images: Path | None = None  # frame tree (folder holding <Subj>/<Task>/); default: probed under root
    labels: Path | None = None  # folder of <Subj>_<Task>.csv; default: probed under root
    subjects: list[str] | None = None
    tasks: list[str] | None = None  # BP4D+: default its coded tasks T1, T6, T7, T8
    missing_frames: Literal["error", "skip"] = "error"
    image_offset: int | None = None  # image number = CSV frame + offset; None: the dataset default, probed
    landmarks: bool = True  # attach <root>/Landmarks_68/<Subj>_<Task>.npz when present
    uncoded_frames: bool = False  # also index images without a CSV row (labels −1): unlabelled training data
    progress: bool = True


def read(root: str | Path, **options) -> VideoIndex:
    """Read a BP4D copy into a :class:`VideoIndex` (12 benchmark AUs unless ``aus=`` says otherwise)."""
    opts = parse_options(BP4DOptions, options, "bp4d")
    return read_occ_tree(Path(root), opts, dataset="BP4D", columns="by_number", offsets=(0,))


# --------------------------------------------------------------------------------------------------------
# shared with BP4D+
# --------------------------------------------------------------------------------------------------------
def find_label_dir(root: Path) -> Path | None:
    """The folder holding ``<Subj>_<Task>.csv`` occurrence files, probed under ``root`` (and ``root/RawData``)."""
    bases = [root]
    raw = find_child(root, ["RawData"], want_dir=True)
    if raw is not None:
        bases.append(raw)
    for base in bases:
        coding = find_child(base, ["AUCoding"], want_dir=True)
        candidates = []
        if coding is not None:
            candidates += [find_child(coding, ["AU_OCC", "AUCoding"], want_dir=True), coding]
        candidates.append(find_child(base, ["AU_OCC"], want_dir=True))
        for c in candidates:
            if c is not None and any(p.suffix.lower() == ".csv" for p in c.iterdir()):
                return c
    return None


def _label_files(label_dir: Path) -> list[tuple[str, str, Path]]:
    out = []
    for p in sorted(label_dir.iterdir()):
        if p.suffix.lower() != ".csv":
            continue
        m = _STEM.match(p.stem)
        if m is None:
            log.warning("%s: ignored (not named <Subject>_<Task>.csv)", p)
            continue
        out.append((m.group(1).upper(), m.group(2).upper(), p))
    return out


def _find_frame_tree(root: Path, pairs: list[tuple[str, str]]) -> Path:
    """The folder under which most ``<Subj>/<Task>/`` folders of the label files exist."""
    bases = [root]
    raw = find_child(root, ["RawData"], want_dir=True)
    if raw is not None:
        bases.append(raw)
    candidates: list[Path] = []
    for base in bases:
        for name in FRAME_TREE_NAMES:
            c = find_child(base, [name], want_dir=True)
            if c is not None and c not in candidates:
                candidates.append(c)
        candidates.append(base)
    best, best_score = None, 0
    for c in candidates:
        subj = children(c)
        tasks_of = {s: children(subj[s.lower()]) for s in {s for s, _ in pairs} if s.lower() in subj and subj[s.lower()].is_dir()}
        score = sum(1 for s, t in pairs if s in tasks_of and t.lower() in tasks_of[s])
        if score > best_score:
            best, best_score = c, score
    if best is None:
        zips = [p for c in candidates for p in c.glob("*.zip")]
        hint = f"; found {len(zips)} zip archive(s) such as {zips[0].name}: extract them first" if zips else ""
        raise DataError(
            root,
            "no frame folders <Subject>/<Task>/ for the label files; looked in "
            + ", ".join(str(c) for c in candidates) + hint,
        )
    return best


def _with_uncoded(frames: np.ndarray, labels: np.ndarray, paths: list, images: dict[int, Path], offset: int):
    """Add the images without a CSV row (labels −1), sorted by frame number; also returns their frame-number
    ranges ``[[first, last], …]``."""
    coded = {int(f) + offset for f in frames}
    extra = np.array(sorted(n - offset for n in images if n not in coded), dtype=np.int64)
    if not len(extra):
        return frames, labels, paths, []
    all_f = np.concatenate([frames.astype(np.int64), extra])
    order = np.argsort(all_f, kind="stable")
    all_l = np.concatenate([labels, np.full((len(extra), labels.shape[1]), -1, labels.dtype)])[order]
    all_p = (list(paths) + [images[int(f) + offset] for f in extra])
    breaks = np.flatnonzero(np.diff(extra) != 1)
    ranges = [[int(a), int(b)] for a, b in zip(np.r_[extra[0], extra[breaks + 1]], np.r_[extra[breaks], extra[-1]])]
    return all_f[order], all_l, [all_p[i] for i in order], ranges


def coded_only(index: VideoIndex) -> VideoIndex:
    """The index without the frames ``uncoded_frames=True`` added (``record.meta["uncoded_frames"]``); records
    without them are returned as they are."""
    import dataclasses

    videos = []
    for v in index.videos:
        ranges = v.meta.get("uncoded_frames")
        if not ranges or not isinstance(v.source, ImageFiles):
            videos.append(v)
            continue
        f = v.frame_numbers
        keep = ~np.any([(f >= a) & (f <= b) for a, b in ranges], axis=0)
        if not keep.any():
            continue
        meta = {k: x for k, x in v.meta.items() if k != "uncoded_frames"}
        videos.append(dataclasses.replace(
            v, frame_numbers=f[keep], labels=v.labels[keep], source=ImageFiles(tuple(p for p, k in zip(v.source.paths, keep) if k)),
            landmarks=None if v.landmarks is None else v.landmarks[keep],
            intensities=None if v.intensities is None else v.intensities[keep], meta=meta))
    return dataclasses.replace(index, videos=videos)


def parse_occ_csv(path: Path, aus: tuple[int, ...], columns: str, coded_aus: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (T,) int64, labels (T, U) int8)`` from one AU_OCC CSV; codes 0/1/9 → 0/1/−1.

    ``columns="by_number"``: the header holds AU numbers (BP4D's ``0..99``); ``"positional"``: column 1+i is
    ``coded_aus[i]`` whatever the header says (BP4D+, whose header is not reliable); ``"auto"``: by number if
    the header is exactly ``0,1,…,N``, else positional. Rows are sorted by frame.
    """
    def load(**kw) -> pd.DataFrame:
        try:
            return pd.read_csv(path, header=0, skipinitialspace=True, **kw)
        except pd.errors.EmptyDataError:
            raise DataError(path, "is empty (expected a header row and one row per coded frame)") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise DataError(path, f"is not a readable CSV ({e})") from None

    header = [str(h).strip() for h in load(nrows=0).columns]
    if columns == "auto":
        columns = "by_number" if header == [str(i) for i in range(len(header))] else "positional"
    if columns == "by_number":
        nums = []
        for h in header:
            try:
                f = float(h)
            except ValueError:
                raise DataError(path, f"header cell {h!r} is not an AU number (expected a header 0,1,2,…,99)") from None
            nums.append(int(f))
        col_of = {n: j for j, n in enumerate(nums) if j > 0}
        missing = [a for a in aus if a not in col_of]
        if missing:
            raise DataError(path, f"has no column for AU{', AU'.join(map(str, missing))} (header: {','.join(header[:8])},…)")
        cols = [col_of[a] for a in aus]
    else:
        need = 1 + len(coded_aus)
        if len(header) < need:
            raise DataError(path, f"has {len(header)} columns; expected the frame column and {len(coded_aus)} AU columns")
        cols = [1 + coded_aus.index(a) for a in aus]
    used = sorted({0, *cols})
    df = load(usecols=used)  # only the frame and the chosen AU columns are converted
    if len(df) == 0:
        raise DataError(path, "has a header but no frame rows")
    at = {j: i for i, j in enumerate(used)}

    def numeric(j: int, what: str) -> np.ndarray:
        raw = df.iloc[:, at[j]]
        if pd.api.types.is_integer_dtype(raw.dtype):  # the usual case: pandas parsed the whole column as integers
            return raw.to_numpy(dtype=np.int64)
        vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(vals) | (vals != np.round(vals)))
        if len(bad):
            i = int(bad[0])
            cell = "" if pd.isna(raw.iloc[i]) else str(raw.iloc[i]).strip()  # empty or short rows read as NaN
            raise DataError(path, f"non-numeric cell {cell!r} at line {i + 2}, column {header[j]!r} ({what})")
        return vals.astype(np.int64)

    frames = numeric(0, "frame number")
    codes = np.stack([numeric(j, f"AU{a}") for j, a in zip(cols, aus)], axis=1) if aus else np.zeros((len(df), 0), np.int64)
    bad = ~np.isin(codes, (0, 1, 9))
    if bad.any():
        i, k = map(int, np.argwhere(bad)[0])
        raise DataError(path, f"unexpected code {codes[i, k]} at line {i + 2} for AU{aus[k]} (expected 0, 1 or 9)")
    uniq, counts = np.unique(frames, return_counts=True)
    if (counts > 1).any():
        raise DataError(path, f"frame {int(uniq[counts > 1][0])} appears {int(counts.max())} times")
    order = np.argsort(frames, kind="stable")
    labels = np.where(codes == 9, -1, codes).astype(np.int8)
    return frames[order], labels[order]


def read_occ_tree(root: Path, opts: BP4DOptions, dataset: str, columns: str, offsets: tuple[int, ...]) -> VideoIndex:
    """Read an ``AUCoding/AU_OCC`` + frame-tree dataset. ``offsets``: candidate image-number offsets, the
    dataset default first; the first one giving an image to every coded frame of a video is used."""
    require_dir(root, f"{dataset} root")
    info = dataset_aus(dataset)
    aus = select_aus(dataset, opts.aus)
    label_dir = Path(opts.labels) if opts.labels else find_label_dir(root)
    if label_dir is None:
        raise DataError(root, f"no {dataset} label folder found (expected AUCoding/AU_OCC/<Subject>_<Task>.csv)")
    require_dir(label_dir, "label folder")
    files = _label_files(label_dir)
    if not files:
        raise DataError(label_dir, "contains no <Subject>_<Task>.csv label files")
    tasks = opts.tasks if opts.tasks is not None else (list(info.coded_tasks) if info.coded_tasks else None)
    if tasks is not None:
        files = [f for f in files if f[1] in {t.upper() for t in tasks}]
    if opts.subjects is not None:
        files = [f for f in files if f[0] in {s.upper() for s in opts.subjects}]
    if not files:
        raise DataError(label_dir, f"no label files left after selecting subjects={opts.subjects} tasks={tasks}")
    tree = Path(opts.images) if opts.images else _find_frame_tree(root, [(s, t) for s, t, _ in files])
    require_dir(tree, "frame tree")
    tree_subjects = children(tree)
    trial = (opts.image_offset,) if opts.image_offset is not None else offsets

    videos: list[VideoRecord] = []
    for subj, task, csv_path in tqdm(files, desc=f"reading {dataset}", unit="video", disable=None if opts.progress else True, leave=False):
        frames, labels = parse_occ_csv(csv_path, aus, columns, info.coded_aus)
        sdir = tree_subjects.get(subj.lower())
        tdir = find_child(sdir, [task], want_dir=True) if sdir is not None else None
        if tdir is None:
            if opts.missing_frames == "skip":
                log.warning("%s: no frame folder %s/%s under %s; video skipped", csv_path, subj, task, tree)
                continue
            raise DataError(tree / subj / task, f"frame folder for {csv_path.name} does not exist")
        images = numbered_images(tdir)
        best_off, best_hits = trial[0], -1
        for off in trial:
            hits = int(sum((int(f) + off) in images for f in frames))
            if hits > best_hits:
                best_off, best_hits = off, hits
            if hits == len(frames):
                break
        have = np.array([(int(f) + best_off) in images for f in frames], dtype=bool)
        if not have.all():
            n_miss = int((~have).sum())
            first = int(frames[~have][0]) + best_off
            if opts.missing_frames == "error":
                raise DataError(
                    tdir,
                    f"{n_miss} of {len(frames)} coded frames of {csv_path.name} have no image (first: image number {first}, "
                    f"looked for {first}, {first:03d} and {first:04d} with .jpg/.png); pass missing_frames='skip' to drop them",
                )
            log.warning("%s: %d of %d coded frames have no image and are skipped", tdir, n_miss, len(frames))
        frames, labels = frames[have], labels[have]
        if len(frames) == 0:
            log.warning("%s: no coded frame has an image; video skipped", tdir)
            continue
        paths = [images[int(f) + best_off] for f in frames]
        uncoded: list[list[int]] = []
        if opts.uncoded_frames:
            frames, labels, paths, uncoded = _with_uncoded(frames, labels, paths, images, best_off)
        video_id = f"{subj}/{task}"
        meta = {
            "label_file": str(csv_path),
            "image_dir": str(tdir),
            "padding": padding_of(paths[:50]),
            "image_offset": int(best_off),
            "skipped_frames": int((~have).sum()),
        }
        if uncoded:
            meta["uncoded_frames"] = uncoded
        uncoded_aus = [a for a, col in zip(aus, labels.T) if (col < 0).all()]
        if uncoded_aus:
            meta["uncoded_aus"] = uncoded_aus
        lm, note = attach_landmarks(root, video_id, frames) if opts.landmarks else (None, None)
        if note:
            meta["landmarks_note"] = note
        videos.append(
            VideoRecord(video_id=video_id, subject=subj, task=task, frame_numbers=frames, labels=labels,
                        source=ImageFiles(tuple(str(p) for p in paths)), landmarks=lm, meta=meta)
        )
    if not videos:
        raise DataError(tree, "no video with frames was found")
    crops = opts.face_crops if opts.face_crops is not None else (
        tree.name.lower() in CROP_TREE_NAMES or is_synthetic_tree(root))
    return VideoIndex(dataset=dataset, aus=aus, videos=videos, fps=info.fps, root=str(root), face_crops=crops)
