"""``auspread prepare``: raw BP4D / BP4D+ / DISFA / generic data → a tree of aligned face crops plus its index.

Output folder ``OUT``::

    img/<video_id>/<frame number>.jpg     one aligned crop (size × size, JPEG q95) per indexed frame; <video_id> is
                                          e.g. F001/T1 (so BP4D's layout is ME-GraphAU's img/F001/T1/2440.jpg)
    AUCoding/AU_OCC/<S>_<T>.csv           BP4D/BP4D+ only: the label files, copied, so the bp4d/bp4d+ readers read
                                          OUT directly (their "img" crop-tree layout)
    Landmarks_5/<video_key>.npz           frame_numbers (T,), points (T, 5, 2) MTCNN points in crop pixels (NaN: no face)
    Landmarks_68/<video_key>.npz          68/66-point landmarks in crop pixels (NaN: none): the input's own, moved
                                          into the crop (``landmarks="dataset"``), or MediaPipe's face landmarker run
                                          on each crop (``landmarks="mediapipe"``, :mod:`auspread.faces.landmarks68`)
    videos/<video_key>.json               per-video record of the work (the "done" marker, written last)
    auspread_index.json                   the exact VideoIndex (dataset, AUs, frame numbers, labels, intensities),
                                          image paths relative to OUT; load it with :func:`read_prepared`
    prepare_report.json                   per video: frames, frames without a face (listed), fallback used

Per video: pass 1 decodes the frames and runs MTCNN (batched); the face kept is the largest, or, when several are
found, the one overlapping the previous frame's face most (IoU ≥ 0.3). Pass 2 decodes again and writes the aligned
crops (:mod:`auspread.faces.align`). **Frames without a face are kept**, aligned with the transform of the nearest
earlier frame with a face (the first later one for leading frames; the centre square of the frame if the video
has no face at all) and listed in the report and ``record.meta["no_face_frames"]``: never silently dropped.

Already-aligned inputs (the synthetic benchmark, whose ``manifest.json`` names ``auspread.data.synth``; or
``aligned=True``) skip detection: each frame is resized to ``size`` and landmarks are scaled.

Resumable: a video whose ``videos/<key>.json`` exists is skipped; each video's crops are written into a temporary
folder renamed into place when complete, then the marker is written. Videos run in parallel worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from auspread.data.index import ImageFiles, VideoFile, VideoIndex, VideoRecord, index_from_json, index_to_json
from auspread.data.readers import read_dataset
from auspread.data.readers._common import is_synthetic_tree
from auspread.data.readers.prepared import INDEX_NAME, read_prepared  # noqa: F401 (re-exported)
from auspread.errors import DataError
from auspread.faces.align import (DEFAULT_MARGIN, alignment_matrices, centre_square_matrix, transform_points, warp,
                                  warp_many)
from auspread.faces.detect import Detections, DetectorOptions, FaceDetector
from auspread.faces.track import iou
from auspread.io import atomic_write_text, publish
from auspread.media import VideoSource, load_image
from auspread.progress import progress_bar

REPORT_NAME = "prepare_report.json"


class PrepareOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(256, ge=32, le=1024)
    margin: float = Field(DEFAULT_MARGIN, ge=0, lt=0.5)
    aligned: bool | None = None  # None: auto (synthetic benchmark trees are aligned)
    workers: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=1)
    jpeg_quality: int = Field(95, ge=50, le=100)
    detector: DetectorOptions = DetectorOptions()
    # Landmarks_68 source: "dataset" = the input's own 68/66 points (if any); "mediapipe" = 68 points from
    # MediaPipe's face landmarker on every crop (pip install "auspread[landmarks]"; auspread.faces.landmarks68)
    landmarks: Literal["dataset", "mediapipe"] = "dataset"
    landmark_model: Path | None = None  # face_landmarker.task; None: the verified cache file, fetched if absent


def video_key(video_id: str) -> str:
    return video_id.replace("/", "_")


# --- decoding a record's frames ---------------------------------------------------------------------------------
def record_frames(rec: VideoRecord) -> Iterator[np.ndarray]:
    """The record's frames in order as ``(H, W, 3)`` uint8 RGB (lazily)."""
    src = rec.source
    if isinstance(src, ImageFiles):
        for p in src.paths:
            yield load_image(p)
        return
    assert isinstance(src, VideoFile)
    want = list(src.indices)
    pos = 0
    got = 0
    vs = VideoSource(src.path)
    try:
        for f in vs.frames():
            while pos < len(want) and want[pos] < f.index:
                pos += 1
            while pos < len(want) and want[pos] == f.index:  # an index may repeat
                yield f.image
                got += 1
                pos += 1
            if pos >= len(want):
                return
    except DataError:
        if got < len(want):
            raise
    if got < len(want):
        raise DataError(src.path, f"has only {got} of the {len(want)} frames the index needs")


def _batched(it: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    buf: list[np.ndarray] = []
    for x in it:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


# --- one video --------------------------------------------------------------------------------------------------
def choose_faces(dets: list[Detections]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the kept face's landmarks ``(T, 5, 2)`` (NaN = none), box ``(T, 4)``, score ``(T,)``.

    The largest face, or with several faces the one with the highest IoU (≥ 0.3) with the previous kept face.
    """
    t = len(dets)
    lms = np.full((t, 5, 2), np.nan)
    boxes = np.full((t, 4), np.nan)
    scores = np.full(t, np.nan)
    prev = None
    for i, d in enumerate(dets):
        if not len(d):
            continue
        k = 0
        if prev is not None and len(d) > 1:
            ov = iou(prev[None], d.boxes)[0]
            if ov.max() >= 0.3:
                k = int(ov.argmax())
        lms[i], boxes[i], scores[i] = d.landmarks[k], d.boxes[k], d.scores[k]
        prev = d.boxes[k]
    return lms, boxes, scores


def fill_matrices(lms: np.ndarray, frame_hw: tuple[int, int], size: int, margin: float) -> tuple[np.ndarray, str]:
    """Alignment matrices for every frame: frames without a face take the nearest earlier face's transform (the
    first later one before any face; the frame's centre square when the video has no face). Returns the
    matrices and the fallback used (``"none"``, ``"previous face"`` or ``"centre square"``)."""
    t = len(lms)
    ok = ~np.isnan(lms).any(axis=(1, 2))
    mats = np.empty((t, 2, 3))
    if not ok.any():
        mats[:] = centre_square_matrix(*frame_hw, size)
        return mats, ("centre square" if t else "none")
    mats[ok] = alignment_matrices(lms[ok], size, margin)
    idx = np.where(ok, np.arange(t), -1)
    idx = np.maximum.accumulate(idx)  # nearest earlier success
    first = int(np.argmax(ok))
    idx[idx < 0] = first
    mats = mats[idx]
    return mats, ("none" if ok.all() else "previous face")


def prepare_video(rec: VideoRecord, out: Path, opts: PrepareOptions, aligned: bool,
                  detector: FaceDetector | None = None, image_number_offset: int = 0) -> dict:
    """Write one video's crops (atomically) and return its report entry (also written as the done marker)."""
    key = video_key(rec.video_id)
    final = out / "img" / rec.video_id
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    s = opts.size
    try:
        # pass 1: detection (or nothing for aligned inputs)
        frame_hw: tuple[int, int] | None = None
        if aligned:
            lms = np.full((len(rec), 5, 2), np.nan)
            boxes = np.full((len(rec), 4), np.nan)
            scores = np.full(len(rec), np.nan)
        else:
            detector = detector or FaceDetector(opts.detector)
            dets: list[Detections] = []
            for batch in _batched(record_frames(rec), opts.batch_size):
                frame_hw = frame_hw or batch[0].shape[:2]
                dets.extend(detector.detect(batch))
            lms, boxes, scores = choose_faces(dets)
        # pass 2: warp and write
        landmarker = _landmarker(opts)
        mp68: list[np.ndarray] = []
        mats = None
        fallback = "none"
        names = []
        sizes: list[tuple[int, int]] = []
        i = 0
        for batch in _batched(record_frames(rec), opts.batch_size):
            if aligned:
                crops = np.stack([_resize(f, s) for f in batch])
                sizes.extend(f.shape[:2] for f in batch)
            else:
                if mats is None:
                    mats, fallback = fill_matrices(lms, frame_hw or batch[0].shape[:2], s, opts.margin)
                m = mats[i : i + len(batch)]
                crops = (warp(np.stack(batch), m, s) if len({f.shape for f in batch}) == 1
                         else warp_many(batch, m, s))
            if landmarker is not None:
                mp68.append(landmarker(list(crops)))
            for j, c in enumerate(crops):
                fn = int(rec.frame_numbers[i + j]) + image_number_offset
                name = f"{fn}.jpg"
                Image.fromarray(c).save(tmp / name, quality=opts.jpeg_quality)
                names.append(name)
            i += len(batch)
        if i != len(rec):
            raise DataError(rec.video_id, f"decoded {i} frames but the index has {len(rec)}")
        ok = ~np.isnan(lms).any(axis=(1, 2))
        crop_lm5 = np.full_like(lms, np.nan, dtype=np.float32)
        if not aligned and ok.any():
            crop_lm5[ok] = transform_points(mats[ok], lms[ok]).astype(np.float32)
        lm68 = None
        if landmarker is not None:
            landmarker.close()
            lm68 = np.concatenate(mp68) if mp68 else np.zeros((0, 68, 2), np.float32)
        elif rec.landmarks is not None:
            if aligned:
                scale = np.array([[s / w, s / h] for h, w in sizes], np.float32)[:, None, :]
                lm68 = ((rec.landmarks + 0.5) * scale - 0.5).astype(np.float32)
            else:
                lm68 = transform_points(mats, rec.landmarks.astype(np.float64)).astype(np.float32)
        # commit: crops folder, landmark files, then the marker
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _save_npz(out / "Landmarks_5" / f"{key}.npz", rec.frame_numbers, crop_lm5)
        if lm68 is not None:
            _save_npz(out / "Landmarks_68" / f"{key}.npz", rec.frame_numbers, lm68)
        entry = {
            "video_id": rec.video_id, "frames": len(rec), "aligned_input": aligned,
            "frames_with_face": int(ok.sum()) if not aligned else len(rec),
            "no_face_frames": [] if aligned else [int(f) for f in rec.frame_numbers[~ok]],
            "fallback": "none" if aligned else fallback,
            "mean_score": None if aligned or not ok.any() else round(float(np.nanmean(scores)), 4),
            "images": [f"img/{rec.video_id}/{n}" for n in names],
            "landmarks": opts.landmarks,
            "frames_with_landmarks": None if lm68 is None else int((~np.isnan(lm68).any(axis=(1, 2))).sum()),
        }
        atomic_write_text(out / "videos" / f"{key}.json", json.dumps(entry))
        return entry
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _landmarker(opts: PrepareOptions):
    if opts.landmarks != "mediapipe":
        return None
    from auspread.faces.landmarks68 import Landmarker68

    return Landmarker68(opts.landmark_model, video=True)


def _resize(f: np.ndarray, s: int) -> np.ndarray:
    if f.shape[:2] == (s, s):
        return f
    return np.asarray(Image.fromarray(f).resize((s, s), Image.BILINEAR))


def _save_npz(path: Path, frame_numbers: np.ndarray, points: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, frame_numbers=np.asarray(frame_numbers, np.int64), points=points)
    from auspread.io import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
    publish(path)


# --- worker processes -------------------------------------------------------------------------------------------
_WORKER: dict = {}  # per worker process: its detector (built once by the initializer)


def _init_worker(opts_json: str) -> None:
    torch.set_num_threads(1)
    opts = PrepareOptions.model_validate_json(opts_json)
    _WORKER["detector"] = FaceDetector(opts.detector)


def _work(rec_json: str, out: str, opts_json: str, aligned: bool, offset: int) -> dict:
    rec = index_from_json(rec_json).videos[0]
    opts = PrepareOptions.model_validate_json(opts_json)
    return prepare_video(rec, Path(out), opts, aligned, _WORKER.get("detector"), offset)


# --- the whole dataset ------------------------------------------------------------------------------------------
def prepare_dataset(raw: str | Path, out: str | Path, dataset: str, options: PrepareOptions | None = None,
                    progress: bool = True, reader_options: dict | None = None) -> dict:
    """Run the pipeline (see the module docstring); returns the report (also written to ``prepare_report.json``)."""
    opts = options or PrepareOptions()
    raw, out = Path(raw), Path(out)
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise DataError(out, f"output must not be inside the input folder {raw}")
    index = read_dataset(dataset, raw, **(reader_options or {}))
    aligned = opts.aligned if opts.aligned is not None else is_synthetic_tree(raw)
    if opts.landmarks == "mediapipe":  # fail early, fetch the model once (not in every worker)
        from auspread.faces.landmarks68 import import_mediapipe, resolve_model

        import_mediapipe()
        opts = opts.model_copy(update={"landmark_model": resolve_model(opts.landmark_model)})
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    todo: list[VideoRecord] = []
    for rec in index.videos:
        marker = out / "videos" / f"{video_key(rec.video_id)}.json"
        prev = json.loads(marker.read_text()) if marker.is_file() and (out / "img" / rec.video_id).is_dir() else None
        if prev is not None and prev.get("landmarks", "dataset") == opts.landmarks:  # else redo: other landmarks
            entries[rec.video_id] = prev
        else:
            todo.append(rec)
    offsets = {v.video_id: int(v.meta.get("image_offset", 0)) if index.dataset == "BP4D+" else 0 for v in index.videos}
    bar = progress_bar(total=len(index.videos), initial=len(entries), desc="prepare", unit="video", disable=not progress)
    errors: dict[str, str] = {}
    try:
        if opts.workers <= 1 or len(todo) <= 1:
            det = None if aligned else FaceDetector(opts.detector)
            for rec in todo:
                try:
                    entries[rec.video_id] = prepare_video(rec, out, opts, aligned, det, offsets[rec.video_id])
                except DataError as e:
                    errors[rec.video_id] = str(e)
                bar.update(1)
        else:
            oj = opts.model_dump_json()
            with ProcessPoolExecutor(opts.workers, initializer=_init_worker, initargs=(oj,)) as ex:
                futs = {}
                for rec in todo:
                    one = dataclasses.replace(index, videos=[rec])
                    futs[ex.submit(_work, index_to_json(one), str(out), oj, aligned, offsets[rec.video_id])] = rec
                for fut in as_completed(futs):
                    rec = futs[fut]
                    try:
                        entries[rec.video_id] = fut.result()
                    except DataError as e:
                        errors[rec.video_id] = str(e)
                    bar.update(1)
    finally:
        bar.close()
    _copy_label_files(index, out)
    done = [v for v in index.videos if v.video_id in entries]
    _write_index(index, done, entries, out, opts, aligned)
    report = {
        "input": str(raw), "dataset": index.dataset, "size": opts.size, "margin": opts.margin,
        "aligned_input": aligned, "videos": len(index.videos), "videos_done": len(done),
        "frames": int(sum(e["frames"] for e in entries.values())),
        "frames_without_face": int(sum(len(e["no_face_frames"]) for e in entries.values())),
        "errors": errors,
        "per_video": {vid: {k: v for k, v in e.items() if k != "images"} for vid, e in entries.items()},
    }
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=1))
    publish(out / REPORT_NAME)
    if errors:
        first = next(iter(errors.values()))
        raise DataError(out, f"{len(errors)} of {len(index.videos)} videos failed (first: {first}); the others are "
                             f"done and a rerun retries only the failed ones; see {out / REPORT_NAME}")
    return report


def _copy_label_files(index: VideoIndex, out: Path) -> None:
    if index.dataset not in ("BP4D", "BP4D+"):
        return
    dest = out / "AUCoding" / "AU_OCC"
    dest.mkdir(parents=True, exist_ok=True)
    for v in index.videos:
        lf = v.meta.get("label_file")
        if lf and Path(lf).is_file() and not (dest / Path(lf).name).is_file():
            shutil.copy2(lf, dest / Path(lf).name)


def _write_index(index: VideoIndex, done: list[VideoRecord], entries: dict, out: Path, opts: PrepareOptions,
                 aligned: bool) -> None:
    videos = []
    for v in done:
        e = entries[v.video_id]
        lm = None
        p68 = out / "Landmarks_68" / f"{video_key(v.video_id)}.npz"
        if p68.is_file():
            with np.load(p68) as z:
                lm = z["points"]
        meta = {**v.meta, "no_face_frames": e["no_face_frames"], "prepared_from": dataclasses.asdict(v.source)}
        videos.append(dataclasses.replace(v, source=ImageFiles(tuple(e["images"])), landmarks=lm, meta=meta))
    prepared = VideoIndex(index.dataset, index.aus, videos, index.fps, root=".")
    atomic_write_text(out / INDEX_NAME, index_to_json(prepared))
    publish(out / INDEX_NAME)
