"""decode → detect (every K-th frame, the face tracked in between; or every frame) → align (identical to
``auspread prepare``) → test transform → ``Method.predict_video`` → one row per decoded frame.

Defaults (chosen by measurement, docs/BENCHMARKS.md): full MTCNN detection every ``DEFAULT_DETECT_EVERY`` frames,
batched per block, the main face followed in between by :class:`~auspread.faces.track.FaceTracker` (O-net on the
previous box; early re-detection when the face is lost, jumps or the scene cuts); the AU model in bf16 autocast and
channels-last where the device computes bf16 natively (:func:`~auspread.predict.runner.auto_precision`), else
fp32. The three stages run concurrently: a decoding thread, a detection/alignment thread and the AU model in the caller's thread, joined by
bounded queues (two blocks each), so memory stays flat on long videos.

The aligned crops are streamed to ``predict_video`` in chunks of ``batch_size`` frames, so a temporal method sees the
whole video once, in order (it computes per-frame features once and reuses them across overlapping clips), while
memory stays bounded by one chunk of frames plus the method's per-frame features.

Frames without a face still go through the model (temporal methods need a contiguous sequence): they are aligned
with the most recent successful face's transform (the centre square of the frame before the first face), and their
rows get ``success = 0`` with empty AU values.

``--all-faces``: a first pass detects and tracks every face (IoU tracking, :mod:`auspread.faces.track`); then each
track is a sequence of its own (the frames where it is present, in order) and is streamed through the model in a
second decoding pass. Rows are one per (frame, face); frames with no face get one ``success = 0`` row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from auspread.errors import DataError
from auspread.faces.align import centre_square_matrix
from auspread.faces.detect import FaceDetector
from auspread.faces.follow import FaceFollower
from auspread.faces.track import IoUTracker
from auspread.media import Frame, Source
from auspread.predict.align import CropChunk, FrameChunk, chosen_matrix, resized_crops
from auspread.predict.frames import DecodeLog, frame_blocks, num_frames_bound
from auspread.predict.options import ModelBundle, PredictionTable, PredictOptions
from auspread.predict.prefetch import prefetch
from auspread.predict.rows import RowBuilder, fit_rows
from auspread.predict.runner import ModelRunner


class Predictor:
    """Runs a :class:`ModelBundle` over :class:`~auspread.media.Source` objects."""

    def __init__(self, model: ModelBundle, options: PredictOptions | None = None,
                 detector: FaceDetector | None = None):
        self.model = model
        self.options = options or PredictOptions()
        self.detector = None
        if not self.options.no_detect:
            self.detector = detector or FaceDetector(self.options.detector, device=model.device)
        self.runner = ModelRunner(model, self.options)

    # --- the model's settings, recorded in the output's sidecar JSON ----------------------------------------------
    @property
    def amp(self) -> str:
        return self.runner.amp

    @property
    def channels_last(self) -> bool:
        return self.runner.channels_last

    @property
    def thread_decision(self) -> str:
        """The AU model's intra-op threads on the last video, and why."""
        return self.runner.thread_decision

    @property
    def quantize_status(self) -> str:
        return self.runner.quantize_status

    @property
    def compile_status(self) -> str:
        return self.runner.compile_status

    def thread_split(self) -> tuple[int | None, int | None]:
        return self.runner.thread_split()

    # --- one source ------------------------------------------------------------------------------------------------
    def predict(self, source: Source, progress: Callable[[int], None] | None = None) -> PredictionTable:
        if self.options.all_faces and not self.options.no_detect:
            return self._predict_all_faces(source, progress)
        return self._predict_main_face(source, progress)

    def _follower(self, all_faces: bool = False) -> FaceFollower:
        o = self.options
        return FaceFollower(self.detector, o.detect_every, o.tracking, all_faces=all_faces)

    def _main_face_chunks(self, source: Source, log: DecodeLog, rows: RowBuilder,
                          follower: FaceFollower | None) -> Iterator[FrameChunk | CropChunk]:
        """The detection stage, main face: per block, its rows, then the chunk for the alignment stage (the frames
        and the chosen face's matrices; the crops themselves for inputs that are crops already)."""
        o = self.options
        blocks = frame_blocks(source, o.batch_size, log)
        if o.prefetch:  # decoding in a thread of its own
            blocks = prefetch(blocks)
        if follower is None:
            for block in blocks:
                for f in block:
                    rows.whole_frame(f)
                yield CropChunk(resized_crops(block, o.align_size))
            return
        prev: np.ndarray | None = None  # the last face's matrix: frames without a face are aligned with it
        for group in (follower.tracked(blocks) if o.track else follower.interpolated(blocks)):
            mats = np.empty((len(group), 2, 3))
            for i, (f, d) in enumerate(group):
                if len(d.dets) > 0:
                    prev = mats[i] = chosen_matrix(d.dets, 0, o.align_size, o.margin)
                    rows.face(f, d.dets, 0, face_id=0, held=d.held)
                else:
                    h, w = f.image.shape[:2] if f.image is not None else (o.align_size, o.align_size)
                    mats[i] = prev if prev is not None else centre_square_matrix(h, w, o.align_size)
                    rows.no_face(f, held=d.held)
            yield FrameChunk([f.image for f, _ in group], mats)

    def _aligned(self, chunks: Iterator[FrameChunk | CropChunk], progress) -> Iterator[torch.Tensor]:
        """The alignment stage (warp + the model's input transform): a thread of its own with ``prefetch``."""
        for chunk in chunks:
            crops = chunk.crops(self.options.align_size)
            if progress:
                progress(len(crops))
            yield self.runner.to_input(crops)

    def _predict_main_face(self, source: Source, progress) -> PredictionTable:
        o = self.options
        log, rows = DecodeLog(), RowBuilder(self.model.aus)
        follower = None if o.no_detect else self._follower()
        bound = num_frames_bound(source)
        stream, model_threads = self.runner.stream(self._main_face_chunks(source, log, rows, follower),
                                                   lambda chunks: self._aligned(chunks, progress))
        probs = self.runner.run(stream, bound, model_threads)
        if len(rows) == 0:
            raise DataError(source.path, log.error or "no frame could be decoded")
        face_search = follower.counts if follower is not None and o.track else {}
        return rows.table(len(rows), source.fps, log, face_search, probs)

    def _track_chunks(self, source: Source, dets: list, members: list[tuple[int, int]]) -> Iterator[torch.Tensor]:
        """The second pass of ``--all-faces``: one track's crops (``members``: (frame, face index) in order),
        ``batch_size`` at a time, decoding stopped where the track ends."""
        o = self.options
        face_of = dict(members)
        last_frame = members[-1][0]
        imgs, mats = [], []
        try:
            for f in source.frames():
                if f.index > last_frame:  # this track has ended: stop decoding
                    break
                k = face_of.get(f.index)
                if k is None:
                    continue
                imgs.append(f.image)
                mats.append(chosen_matrix(dets[f.index], k, o.align_size, o.margin))
                if len(imgs) == o.batch_size:
                    yield self.runner.to_input(FrameChunk(imgs, np.stack(mats)).crops(o.align_size))
                    imgs, mats = [], []
        except DataError:
            pass  # already recorded by the detection pass
        if imgs:
            yield self.runner.to_input(FrameChunk(imgs, np.stack(mats)).crops(o.align_size))

    def _predict_all_faces(self, source: Source, progress) -> PredictionTable:
        o = self.options
        log = DecodeLog()
        frames: list[Frame] = []  # frame metadata (no pixels), one per decoded frame
        dets, ids_of, held_of = [], [], []  # per frame: its faces, their track ids, whether held
        # track=True: faces followed on every frame, ids from IoU between consecutive frames (a missed round is a
        # frame); track=False: ids from IoU between detection rounds, faces held in between
        ids_tracker = IoUTracker(max_missed=max(10, 2 * o.detect_every))
        follower = self._follower(all_faces=True)
        ids = None
        for block in frame_blocks(source, o.batch_size, log):
            faces = follower.tracked_block(block) if o.track else follower.held(block)
            for f, d in zip(block, faces):
                if o.track or not d.held:
                    ids = ids_tracker.update(d.dets)
                frames.append(Frame(f.index, f.timestamp, np.empty(0, np.uint8)))
                dets.append(d.dets)
                ids_of.append(ids)
                held_of.append(d.held)
            if progress:
                progress(len(block))
        if not frames:
            raise DataError(source.path, log.error or "no frame could be decoded")
        tracks: dict[int, list[tuple[int, int]]] = {}  # id -> [(frame position, face index)]
        for pos, frame_ids in enumerate(ids_of):
            for k, tid in enumerate(frame_ids):
                tracks.setdefault(int(tid), []).append((pos, k))
        results: dict[tuple[int, int], np.ndarray] = {}  # (pos, track id) -> probs
        for tid, members in sorted(tracks.items()):
            stream, model_threads = self.runner.stream(self._track_chunks(source, dets, members))
            probs = fit_rows(self.runner.run(stream, len(members), model_threads), len(members), len(self.model.aus))
            for (pos, _), p in zip(members, probs):
                results[(pos, tid)] = p
        rows = RowBuilder(self.model.aus)
        for pos, f in enumerate(frames):
            frame_ids = ids_of[pos]
            faces = sorted(range(len(frame_ids)), key=lambda k: frame_ids[k])
            if not faces:
                rows.no_face(f)
            for k in faces:
                tid = int(frame_ids[k])
                rows.face(f, dets[pos], k, face_id=tid, held=held_of[pos], probs=results.get((pos, tid)))
        return rows.table(len(frames), source.fps, log, follower.counts if o.track else {})
