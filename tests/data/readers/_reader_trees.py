"""Builders of tiny dataset trees in every on-disk layout the readers accept (test helpers, not tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from auspread.aus import dataset_aus

BP4D_AUS = dataset_aus("BP4D").aus
BP4DP_CODED = dataset_aus("BP4D+").coded_aus
DISFA_CODED = dataset_aus("DISFA").coded_aus


def write_image(path: Path, value: int = 0, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value % 256, 0, 0)).save(path)


def image_name(n: int, pad: str, ext: str = ".jpg") -> str:
    return {"none": f"{n}", "3": f"{n:03d}", "4": f"{n:04d}"}[pad] + ext


def bp4d_codes(rng: np.random.Generator, t: int) -> np.ndarray:
    """(t, 100) codes for columns 0..99: AU columns 1..27 coded 0/1 (a few 9s), all others all-9."""
    codes = np.full((t, 100), 9, dtype=np.int64)
    codes[:, 1:28] = rng.integers(0, 2, size=(t, 27))
    for uncoded in (3, 8, 21, 25, 26):
        codes[:, uncoded] = 9
    return codes


def write_bp4d_csv(path: Path, frames: np.ndarray, codes: np.ndarray) -> None:
    """BP4D AU_OCC CSV: header 0..99, column 0 = frame, column N = AU N."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(str(i) for i in range(100))]
    for f, row in zip(frames, codes):
        lines.append(",".join([str(int(f))] + [str(int(v)) for v in row[1:]]))
    path.write_text("\n".join(lines) + "\n")


def make_bp4d(root: Path, videos: dict, tree: str = "Sequences(2D+3D)", coding: str = "AU_OCC", seed: int = 0,
              extra_images: int = 2, ext: str = ".jpg") -> dict:
    """Write a BP4D copy. ``videos = {(subj, task): (first_frame, n_frames, pad)}``.

    Frame folders also hold ``extra_images`` uncoded frames before and after the coded segment.
    Returns ``{video_id: (frames, codes (T, 100))}`` with the written codes.
    """
    rng = np.random.default_rng(seed)
    out = {}
    frame_root = root / tree if tree else root
    for (subj, task), (first, t, pad) in videos.items():
        frames = np.arange(first, first + t)
        codes = bp4d_codes(rng, t)
        codes[0, 1] = 9  # a 9 cell inside a coded column
        write_bp4d_csv(root / "AUCoding" / coding / f"{subj}_{task}.csv", frames, codes)
        for n in range(first - extra_images, first + t + extra_images):
            write_image(frame_root / subj / task / image_name(n, pad, ext), n)
        out[f"{subj}/{task}"] = (frames, codes)
    return out


def expected_bp4d_labels(codes: np.ndarray, aus=BP4D_AUS) -> np.ndarray:
    c = codes[:, list(aus)]
    return np.where(c == 9, -1, c).astype(np.int8)


def write_bp4dp_csv(path: Path, frames: np.ndarray, codes34: np.ndarray, header: str = "quirky") -> None:
    """BP4D+ AU_OCC CSV: a header of AU numbers (the quirky copy starts ``1,1,2,4``), then frame + 34 AU columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if header == "quirky":
        head = ["1"] + [str(a) for a in BP4DP_CODED]
    else:
        head = ["Frame"] + [f"AU{a}" for a in BP4DP_CODED]
    lines = [",".join(head)]
    for f, row in zip(frames, codes34):
        lines.append(",".join([str(int(f))] + [str(int(v)) for v in row]))
    path.write_text("\n".join(lines) + "\n")


def make_bp4d_plus(root: Path, videos: dict, seed: int = 0, image_offset: int = -1, raw: bool = True,
                   header: str = "quirky") -> dict:
    """Write a BP4D+ copy. ``videos = {(subj, task): (first_csv_frame (1-based), n_frames, pad, n_images)}``.

    Images ``0 … n_images-1`` exist; CSV frame f shows image f + image_offset.
    Returns ``{video_id: (frames, codes34)}``.
    """
    rng = np.random.default_rng(seed)
    base = root / "RawData" if raw else root
    out = {}
    for (subj, task), (first, t, pad, n_images) in videos.items():
        frames = np.arange(first, first + t)
        codes = rng.integers(0, 2, size=(t, len(BP4DP_CODED)))
        codes[1, 3] = 9
        write_bp4dp_csv(base / "AUCoding" / "AU_OCC" / f"{subj}_{task}.csv", frames, codes, header)
        for n in range(n_images):
            write_image(base / "2D+3D" / subj / task / image_name(n, pad), n)
        out[f"{subj}/{task}"] = (frames, codes)
    return out


def write_avi(path: Path, n_frames: int, size: int = 16, codec: str = "mpeg4") -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=20)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        img = np.zeros((size, size, 3), dtype=np.uint8)
        for i in range(n_frames):
            img[:] = i % 256
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def make_disfa(root: Path, subjects: dict, seed: int = 0, video_dir: str = "Videos_LeftCamera",
               video_name: str = "LeftVideo{s}_comp.avi", labels_dir: str = "ActionUnit_Labels",
               label_name: str = "{s}_au{a}.txt", first_frame: int = 1) -> dict:
    """Write a DISFA copy. ``subjects = {"SN001": n_frames}`` (label lines = video frames).

    Returns ``{subject: intensities (T, 12)}`` in DISFA's coded-AU order.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for s, t in subjects.items():
        inten = rng.integers(0, 6, size=(t, len(DISFA_CODED)))
        for j, a in enumerate(DISFA_CODED):
            p = root / labels_dir / s / label_name.format(s=s, a=a)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("".join(f"{first_frame + i},{int(v)}\n" for i, v in enumerate(inten[:, j])))
        if video_dir:
            write_avi(root / video_dir / video_name.format(s=s), t)
        out[s] = inten
    return out


def disfa_expected(inten: np.ndarray, aus=dataset_aus("DISFA").aus, threshold: float = 2) -> np.ndarray:
    cols = [DISFA_CODED.index(a) for a in aus]
    return (inten[:, cols] >= threshold).astype(np.int8)
