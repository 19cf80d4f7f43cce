"""Aligned face-crop trees described by ME-GraphAU / MDHR list files.

For people who already ran the ME-GraphAU/MDHR preprocessing::

    <root>/img/F001/T1/2440.jpg                       (BP4D; MDHR's DISFA tree is img_o/SN002/SN002_0.png)
    <root>/img/SN001/0.png                            (DISFA, ME-GraphAU)
    <root>/[list/]BP4D_test_img_path_fold1.txt        one relative image path per line
    <root>/[list/]BP4D_test_label_fold1.txt           one line of 0/1 per frame, same order (12 or 8 ints)
    <root>/[list/]DISFA_train_path_fold2.txt          (MDHR's name for the path list)

All path/label list pairs found are read and merged (the three test lists together cover the whole dataset;
train lists repeat frames, which are de-duplicated; the same image with two different label rows is an error).
``split=`` and ``fold=`` restrict which lists are read. Frames are grouped into videos by their folder
(``F001/T1``, ``SN001``) and ordered by the number at the end of the file name. Label values 0/1; −1 and 9 are read
as unknown. The AU order is the dataset's benchmark order (BP4D 12, DISFA 8), taken from the list-file prefix.
The images are aligned face crops (``VideoIndex.face_crops``) unless ``face_crops=False`` says otherwise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np

from auspread.aus import canonical_dataset_name, dataset_aus
from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.readers._common import (
    ReaderOptions,
    attach_landmarks,
    find_child,
    log,
    numbered_images,
    parse_options,
    require_dir,
)
from auspread.errors import DataError

PATH_LIST = re.compile(r"^(?P<ds>[A-Za-z0-9+]+)_(?P<split>train|test)_(?:img_)?path_fold(?P<fold>\d+)\.txt$", re.I)
LABEL_LIST = re.compile(r"^(?P<ds>[A-Za-z0-9+]+)_(?P<split>train|test)_label_fold(?P<fold>\d+)\.txt$", re.I)
_NUM = re.compile(r"(\d+)$")


class ListsOptions(ReaderOptions):
    dataset: str = "auto"  # BP4D / DISFA / BP4D+; auto: from the list-file prefix
    images: Path | None = None  # the crop tree the paths are relative to; default <root>/img or <root>/img_o
    lists: Path | None = None  # folder of list files; default <root>, <root>/list, <root>/lists, <root>/data/list
    split: Literal["all", "train", "test"] = "all"
    fold: int | None = None
    check_images: bool = True
    missing_frames: Literal["error", "skip"] = "error"
    landmarks: bool = True


def find_list_files(folder: Path) -> dict[tuple[str, str, int], tuple[Path, Path | None]]:
    """``{(dataset prefix, split, fold): (path list, label list or None)}`` in ``folder``."""
    paths, labels = {}, {}
    if not folder.is_dir():
        return {}
    for p in sorted(folder.iterdir()):
        m = PATH_LIST.match(p.name)
        if m:
            paths[(m["ds"].upper(), m["split"].lower(), int(m["fold"]))] = p
        m = LABEL_LIST.match(p.name)
        if m:
            labels[(m["ds"].upper(), m["split"].lower(), int(m["fold"]))] = p
    return {k: (p, labels.get(k)) for k, p in paths.items()}


def list_folder(root: Path) -> Path | None:
    for c in (root, root / "list", root / "lists", root / "data" / "list"):
        if find_list_files(c):
            return c
    return None


def _read_labels(path: Path, n_aus: int) -> np.ndarray:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split()
        try:
            vals = [int(float(c)) for c in cells]
        except ValueError:
            raise DataError(path, f"non-numeric value at line {i}: {line.strip()!r}") from None
        if len(vals) != n_aus:
            raise DataError(path, f"line {i} has {len(vals)} values; expected {n_aus} (one per AU)")
        rows.append(vals)
    y = np.array(rows, dtype=np.int64).reshape(-1, n_aus)
    bad = ~np.isin(y, (0, 1, -1, 9))
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise DataError(path, f"line {i + 1} has a value other than 0, 1, -1 or 9")
    return np.where((y == 9) | (y == -1), -1, y).astype(np.int8)


def read(root: str | Path, **options) -> VideoIndex:
    """Read an aligned-crop tree with ME-GraphAU/MDHR list files into a :class:`VideoIndex`."""
    opts = parse_options(ListsOptions, options, "lists")
    root = require_dir(Path(root), "crop-tree root")
    folder = Path(opts.lists) if opts.lists else list_folder(root)
    if folder is None or not find_list_files(folder):
        raise DataError(root, "no list files such as BP4D_test_img_path_fold1.txt / DISFA_test_path_fold1.txt")
    found = find_list_files(folder)
    prefixes = sorted({k[0] for k in found})
    if opts.dataset == "auto":
        if len(prefixes) != 1:
            raise DataError(folder, f"list files of several datasets ({', '.join(prefixes)}); pass dataset=")
        prefix = prefixes[0]
    else:
        prefix = opts.dataset.upper()
    try:
        dataset = canonical_dataset_name(prefix)
    except KeyError:
        raise DataError(folder, f"list-file prefix {prefix!r} is not a known dataset (BP4D, BP4D+, DISFA)") from None
    aus = dataset_aus(dataset).aus
    pairs = {k: v for k, v in found.items() if k[0].replace("_", "") == prefix.upper().replace("_", "")
             and (opts.split == "all" or k[1] == opts.split) and (opts.fold is None or k[2] == opts.fold)}
    if not pairs:
        raise DataError(folder, f"no {prefix} list files for split={opts.split} fold={opts.fold}")

    frames: dict[str, np.ndarray] = {}
    origin: dict[str, Path] = {}
    for key in sorted(pairs):
        path_list, label_list = pairs[key]
        if label_list is None:
            raise DataError(path_list, f"has no label list {path_list.name.split('_')[0]}_{key[1]}_label_fold{key[2]}.txt next to it")
        rel = [ln.strip() for ln in path_list.read_text().splitlines() if ln.strip()]
        y = _read_labels(label_list, len(aus))
        if len(rel) != len(y):
            raise DataError(label_list, f"has {len(y)} label lines but {path_list.name} has {len(rel)} paths")
        for r, row in zip(rel, y):
            r = r.replace("\\", "/").removeprefix("./")
            if r.startswith("/") or r.startswith("../"):
                raise DataError(path_list, f"path {r!r} must be relative to the crop tree (like F001/T1/2440.jpg)")
            if r in frames and not np.array_equal(frames[r], row):
                raise DataError(label_list, f"labels of {r} differ from those in {origin[r].name}")
            frames.setdefault(r, row)
            origin.setdefault(r, label_list)

    img_root = Path(opts.images) if opts.images else (find_child(root, ["img", "img_o", "images"], want_dir=True) or root)
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in frames:
        parent, _, name = r.rpartition("/")
        m = _NUM.search(Path(name).stem)
        if not parent or m is None:
            raise DataError(origin[r], f"path {r!r} is not <video folder>/<frame number>.<ext>")
        groups[parent].append((int(m.group(1)), r))

    videos = []
    for vid in sorted(groups):
        items = sorted(groups[vid])
        nums = [n for n, _ in items]
        if len(set(nums)) != len(nums):
            raise DataError(img_root / vid, "two list entries have the same frame number")
        keep = np.ones(len(items), dtype=bool)
        if opts.check_images:
            folder_v = img_root / vid
            have = numbered_images(folder_v) if folder_v.is_dir() else {}
            existing = {p.name for p in have.values()}
            keep = np.array([Path(r).name in existing for _, r in items], dtype=bool)
            if not keep.all():
                first = items[int(np.flatnonzero(~keep)[0])][1]
                if opts.missing_frames == "error":
                    raise DataError(img_root / first, f"listed in {origin[first].name} but missing ({int((~keep).sum())} missing in {vid})")
                log.warning("%s: %d listed images missing, skipped", img_root / vid, int((~keep).sum()))
        items = [it for it, k in zip(items, keep) if k]
        if not items:
            continue
        parts = vid.split("/")
        fn = np.array([n for n, _ in items], dtype=np.int64)
        lm, note = attach_landmarks(root, vid, fn) if opts.landmarks else (None, None)
        meta = {"lists": str(folder), "skipped_frames": int((~keep).sum())}
        if note:
            meta["landmarks_note"] = note
        videos.append(VideoRecord(
            video_id=vid, subject=parts[0], task=parts[1] if len(parts) > 1 else "", frame_numbers=fn,
            labels=np.stack([frames[r] for _, r in items]), source=ImageFiles(tuple(str(img_root / r) for _, r in items)),
            landmarks=lm, meta=meta,
        ))
    if not videos:
        raise DataError(img_root, "none of the listed images exists")
    return VideoIndex(dataset=dataset, aus=aus, videos=videos, fps=dataset_aus(dataset).fps, root=str(root),
                      face_crops=opts.face_crops is not False)
