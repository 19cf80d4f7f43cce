"""decode → detect (every K-th frame, the face tracked in between; or every frame) → align (identical to
``auspread prepare``) → test transform → ``Method.predict_video`` → one row per decoded frame.

Defaults (chosen by measurement, docs/BENCHMARKS.md): full MTCNN detection every ``DEFAULT_DETECT_EVERY`` frames,
batched per block, the main face followed in between by :class:`~auspread.faces.track.FaceTracker` (O-net on the
previous box; early re-detection when the face is lost, jumps or the scene cuts); the AU model in bf16 autocast and
channels-last where the device computes bf16 natively (:func:`auto_precision`), else fp32. The three stages run
concurrently: a decoding thread, a detection/alignment thread and the AU model in the caller's thread, joined by
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

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from auspread.engine.precision import cpu_has_native_bf16, resolve_amp, resolve_channels_last
from auspread.errors import DataError
from auspread.evaluation.thresholds import AUThresholds
from auspread.faces.align import DEFAULT_MARGIN, DEFAULT_SIZE, alignment_matrices, centre_square_matrix, warp
from auspread.faces.detect import Detections, DetectorOptions, FaceDetector
from auspread.faces.track import FaceTracker, IoUTracker, TrackOptions
from auspread.media import Frame, Source
from auspread.predict.compiled import compile_status, compile_trunks, wants_compile
from auspread.predict.quantized import quantize_status, quantize_trunks, wants_quantize
from auspread.predict.threads import ModelThreadTuner, SlowestStage, StageClock

DEFAULT_DETECT_EVERY = 10  # docs/BENCHMARKS.md, "auspread predict with its default options (issue 21)"


def auto_precision(device: torch.device) -> Literal["off", "bf16"]:
    """``bf16`` where ``device`` computes bf16 natively (a CUDA GPU with bf16, a CPU with oneDNN bf16: AVX-512 BF16
    or AMX), else ``off`` (fp32): the rule of ``optim.amp=auto`` without its fp16 branch."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "off"


class PredictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # full MTCNN on every K-th frame; in between the face is tracked (track=True), or interpolated between key frames
    # (track=False; main face) / held (all faces). 1 = exhaustive detection.
    detect_every: int = Field(DEFAULT_DETECT_EVERY, ge=1)
    track: bool = True
    tracking: TrackOptions = TrackOptions()
    all_faces: bool = False
    no_detect: bool = False  # inputs are already aligned face crops: resize only
    batch_size: int = Field(32, ge=1)
    # AUxx_c = AUxx_p >= threshold: one for every AU, or one per AU (the model's validation thresholds)
    threshold: float | list[float] = 0.5
    align_size: int = Field(DEFAULT_SIZE, ge=32)  # same as `auspread prepare --size`
    margin: float = Field(DEFAULT_MARGIN, ge=0, lt=0.5)
    prefetch: bool = True  # decoding and detection/alignment each in a background thread, concurrent with the model
    # torch intra-op threads while the stages overlap (prefetch): the detection thread's (None: 1) and the AU
    # model's (None: measured on the running video, auspread.predict.threads: the caller's setting minus the
    # detection thread's, raised to all of them when the model is the bottleneck and the cores are free). Two
    # OpenMP teams of the caller's size on busy cores wait on each other: up to 1.5x slower on 2 cores, while a
    # heavy model on one thread of an idle 2-core CPU leaves a core idle (docs/BENCHMARKS.md, issue 21).
    detect_threads: int | None = Field(None, ge=1)
    model_threads: int | None = Field(None, ge=1)
    amp: Literal["auto", "off", "bf16"] = "auto"  # bf16 autocast for the AU model; auto: where bf16 is native
    channels_last: bool | None = None  # None: with bf16 (engine.precision.resolve_channels_last)
    # torch.compile the model's ResNet trunks (auspread.predict.compiled): ~1.4x faster end to end on CPU after a
    # one-off compile of 20-60 s, so auto compiles only videos of at least compiled.AUTO_MIN_FRAMES (5,000) frames
    compile: Literal["auto", "off", "on"] = "auto"
    # int8 trunks (auspread.predict.quantized: static PTQ calibrated on the video's first chunks, then compiled):
    # ~2x faster than the compiled fp32 trunks on an AVX2 CPU. auto: on a CPU without native bf16 (where bf16 is
    # native, bf16 autocast is used instead) for videos long enough to compile (compiled.AUTO_MIN_FRAMES)
    quantize: Literal["auto", "off", "int8"] = "auto"
    detector: DetectorOptions = DetectorOptions()

    @field_validator("threshold")
    @classmethod
    def _threshold_in_unit_interval(cls, v):
        for t in (v if isinstance(v, list) else [v]):
            if not 0 <= t <= 1:
                raise ValueError(f"thresholds must lie in [0, 1], got {t}")
        return v


@dataclass
class ModelBundle:
    """A trained method ready for inference plus what the pipeline needs to feed it."""

    method: torch.nn.Module
    aus: tuple[int, ...]
    image_size: int  # network input side
    store_size: int  # frame-store side the method was trained from (test transform: resize store → image)
    description: dict = field(default_factory=dict)  # recorded in the output's sidecar JSON
    thresholds: AUThresholds | None = None  # per-AU thresholds chosen on the run's validation subjects, if any

    @property
    def device(self) -> torch.device:
        p = next(iter(self.method.parameters()), None)
        return p.device if p is not None else torch.device("cpu")


@dataclass
class PredictionTable:
    """Rows for one source. Arrays have one entry per row; ``frame`` is the 0-based decode index."""

    frame: np.ndarray
    timestamp: np.ndarray
    face_id: np.ndarray  # -1 = no face
    success: np.ndarray  # bool
    confidence: np.ndarray  # NaN when no face
    box: np.ndarray  # (N, 4) x, y, w, h; NaN when no face
    probs: np.ndarray  # (N, U); NaN when no face
    aus: tuple[int, ...]
    num_frames: int  # decoded frames
    fps: float
    held: np.ndarray  # bool: the face is tracked/interpolated/held, not from a full detection on this frame
    error: str | None = None  # decode error after ``num_frames`` frames (rows still cover every decoded frame)
    face_search: dict = field(default_factory=dict)  # frames per outcome: key, tracked, lost, jump, cut, idle


@dataclass
class _FaceFrame:
    index: int
    timestamp: float
    dets: Detections
    held: bool


def _chosen_matrix(det: Detections, k: int, size: int, margin: float) -> np.ndarray:
    return alignment_matrices(det.landmarks[k : k + 1].astype(np.float64), size, margin)[0]


class Predictor:
    """Runs a :class:`ModelBundle` over :class:`~auspread.media.Source` objects."""

    def __init__(self, model: ModelBundle, options: PredictOptions | None = None,
                 detector: FaceDetector | None = None):
        from auspread.data.transforms import ClipTransform

        self.model = model
        self.options = options or PredictOptions()
        self.detector = None
        if not self.options.no_detect:
            self.detector = detector or FaceDetector(self.options.detector, device=model.device)
        self.transform = ClipTransform(model.image_size, train=False)
        model.method.eval()
        o = self.options
        self.amp: Literal["off", "bf16"] = auto_precision(model.device) if o.amp == "auto" else o.amp
        self.channels_last: bool = resolve_channels_last("auto", self.amp) if o.channels_last is None \
            else o.channels_last
        if self.channels_last:
            model.method.to(memory_format=torch.channels_last)
        if o.amp == "bf16":
            resolve_amp("bf16", model.device)  # one warning where the CPU would emulate bf16
        self.compiled = False  # set once the trunks are compiled (the first long enough video; kept afterwards)
        self.quantized = False  # set once the trunks are swapped for int8 ones (kept afterwards)
        self._thread_note = ""
        self._tuner: ModelThreadTuner | None = None

    @property
    def thread_decision(self) -> str:
        """The AU model's intra-op threads on the last video, and why (the output's sidecar JSON)."""
        return self._tuner.decision if self._tuner is not None else self._thread_note

    @property
    def quantize_status(self) -> str:
        """``off``, ``int8``, ``calibrating`` or ``failed: <reason>`` (int8 trunks that fell back to fp32)."""
        return quantize_status(self.model.method)

    @property
    def compile_status(self) -> str:
        """``off``, ``on`` or ``failed: <reason>`` (compiled trunks that fell back to eager)."""
        return compile_status(self.model.method)

    # --- pixels → network input ------------------------------------------------------------------------------
    def _to_input(self, crops: np.ndarray) -> torch.Tensor:
        """Aligned uint8 crops ``(k, A, A, 3)`` → normalised ``(k, 3, H, H)`` on the model's device, via the frame
        store's size (A → store size, antialiased), then the evaluation transform (store → H)."""
        t = torch.from_numpy(np.ascontiguousarray(crops))
        s = self.model.store_size
        if t.shape[1] != s:
            x = t.permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            t = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        x, _ = self.transform(t.contiguous())
        x = x.to(self.model.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _crops_no_detect(self, frames: list[Frame]) -> np.ndarray:
        """Already-aligned inputs: the whole frame resized to the alignment size (as the frame store does)."""
        a = self.options.align_size
        out = np.empty((len(frames), a, a, 3), np.uint8)
        for i, f in enumerate(frames):
            if f.image is None:
                out[i] = 0
                continue
            t = torch.from_numpy(np.ascontiguousarray(f.image)).permute(2, 0, 1)[None].float()
            if t.shape[-2:] != (a, a):
                t = F.interpolate(t, size=(a, a), mode="bilinear", antialias=True, align_corners=False)
            out[i] = t.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        return out

    def thread_split(self) -> tuple[int | None, int | None]:
        """Intra-op threads of (the detection thread, the AU model) while the stages overlap; ``(None, None)``
        (leave torch's setting alone) without ``prefetch``."""
        o = self.options
        if not o.prefetch:
            return None, None
        det = o.detect_threads or 1
        return det, o.model_threads or max(1, torch.get_num_threads() - det)

    def _model_stream(self, chunks: Callable[[], Iterator], align: Callable[[Iterator], Iterator[torch.Tensor]]
                      | None = None) -> tuple[Iterator[torch.Tensor], int | None]:
        """The chunk stream the AU model consumes and its intra-op threads: with ``prefetch``, ``chunks()``
        (detection) and ``align`` (alignment, if given) each run in a background thread of their own and, unless
        ``model_threads`` is given, a :class:`ModelThreadTuner` (recorded in :attr:`thread_decision`) chooses the
        model's threads on the running video, against the slower of the two stages."""
        o = self.options
        self._tuner = None
        if not o.prefetch:
            self._thread_note = "torch's setting (no overlap)"
            return (align(chunks()) if align else chunks()), None
        det_threads, model_threads = self.thread_split()
        clocks = [StageClock()]
        stream = prefetch(chunks(), threads=det_threads, clock=clocks[0])
        if align is not None:  # one intra-op thread: the stages share the cores with the model
            clocks.append(StageClock())
            stream = prefetch(align(stream), threads=1, clock=clocks[1])
        full = torch.get_num_threads()
        if o.model_threads is not None or full <= model_threads:
            self._thread_note = f"{model_threads} (fixed)" if o.model_threads is not None else f"{model_threads}"
            return stream, model_threads
        tuner = self._tuner = ModelThreadTuner(model_threads, full, SlowestStage(clocks))
        return tuner.wrap(stream), model_threads

    def _run_model(self, chunks: Iterator[torch.Tensor], num_frames: int, threads: int | None = None) -> np.ndarray:
        if not self.quantized and wants_quantize(self.options.quantize, num_frames, self.model.device, self.amp):
            self.quantized = quantize_trunks(self.model.method, self.options.batch_size) > 0
        if not self.compiled and wants_compile(self.options.compile, num_frames, self.model.device):
            self.compiled = compile_trunks(self.model.method, self.options.batch_size) > 0
        # traced trunks run Python (fake tensors) inside autocast's cast cache, which holds a process-wide mutex while
        # doing so: no cache for them (faces.detect.fp32_guard tells the deadlock this avoids)
        ctx = (torch.autocast(self.model.device.type, dtype=torch.bfloat16,
                              cache_enabled=not (self.compiled or self.quantized))
               if self.amp == "bf16" else contextlib.nullcontext())
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode(), ctx:
                probs = self.model.method.predict_video(chunks, num_frames)
        finally:
            if threads is not None:
                torch.set_num_threads(before)
        return probs.float().cpu().numpy()

    # --- detection stream ------------------------------------------------------------------------------------
    def _blocks(self, source: Source, state: dict) -> Iterator[list[Frame]]:
        """Frames in blocks of batch_size; a decode error is stored in ``state['error']`` and ends the stream;
        unreadable images of a sequence are listed in ``state['bad']`` (their rows stay, without a face)."""
        block: list[Frame] = []
        try:
            for f in source.frames():
                if f.image is None:
                    state.setdefault("bad", []).append(f.error or f"frame {f.index}: unreadable")
                block.append(f)
                if len(block) == self.options.batch_size:
                    yield block
                    block = []
        except DataError as e:
            state["error"] = str(e)
        if block:
            yield block

    def _detect_block(self, block: list[Frame], last: dict) -> list[_FaceFrame]:
        """``--all-faces``, ``track=False``: detect on frames with index % K == 0; other frames hold the last
        detected faces."""
        dets = self._key_detections(block)
        out = []
        for f in block:
            if f.image is None:  # unreadable image: no face
                out.append(_FaceFrame(f.index, f.timestamp, Detections(), False))
            elif f.index in dets:
                last["dets"] = dets[f.index]
                out.append(_FaceFrame(f.index, f.timestamp, dets[f.index], False))
            else:
                d = last.get("dets") or Detections()
                out.append(_FaceFrame(f.index, f.timestamp, d, len(d) > 0))
        return out

    def _tracked_block(self, block: list[Frame], tracker: FaceTracker) -> list[_FaceFrame]:
        """Full detection on the block's key frames, :class:`FaceTracker` in between."""
        dets = self._key_detections(block)
        out = []
        for f in block:
            if f.image is None:  # unreadable image: no face, and the sequence is broken
                tracker.reset()
                out.append(_FaceFrame(f.index, f.timestamp, Detections(), False))
                continue
            d, held = tracker.step(f.image, dets.get(f.index))
            out.append(_FaceFrame(f.index, f.timestamp, d, held))
        return out

    def _key_detections(self, block: list[Frame]) -> dict[int, Detections]:
        """Full MTCNN, batched, on the block's key frames ``index % K == 0`` (readable ones): frame index → faces."""
        k = self.options.detect_every
        run = [f for f in block if f.index % k == 0 and f.image is not None]
        if not run:
            return {}
        return dict(zip((f.index for f in run), self.detector.detect([f.image for f in run])))

    def _tracked_stream(self, blocks: Iterator[list[Frame]], state: dict) -> Iterator[list[tuple[Frame, _FaceFrame]]]:
        """The main face per frame: full detection on key frames, :class:`FaceTracker` in between (no waiting for
        the next key frame: each block is ready as soon as it is processed)."""
        tracker = FaceTracker(self.detector, self.options.tracking)
        state["face_search"] = tracker.counts
        for block in blocks:
            yield list(zip(block, self._tracked_block(block, tracker)))

    def _main_face_stream(self, blocks: Iterator[list[Frame]], state: dict) -> Iterator[list[tuple[Frame, _FaceFrame]]]:
        """The largest face per frame, in groups of frames ready to align (``track=False``: interpolation).

        MTCNN runs (batched per block) on key frames ``index % K == 0``. A frame between key frames a < t < b gets
        the landmarks and box interpolated linearly, ``(1 − w)·x_a + w·x_b`` with ``w = (t − a)/(b − a)``, when both
        key frames have a face and it is plausibly the same face (box centres less than one mean box width apart);
        otherwise it holds key frame a's face (or none). Frames after the last key frame hold it. At most K − 1
        frames wait for their next key frame.
        """
        pending: list[Frame] = []
        key: tuple[Frame, Detections] | None = None

        def resolve(nxt: Detections | None, nxt_index: int | None) -> list[tuple[Frame, _FaceFrame]]:
            out = []
            a = key[1] if key is not None else Detections()
            for f in pending:
                if f.image is None or not len(a):
                    out.append((f, _FaceFrame(f.index, f.timestamp, Detections(), False)))
                    continue
                d = a.take(0)
                if nxt is not None and len(nxt) and _same_face(a.boxes[0], nxt.boxes[0]):
                    w = (f.index - key[0].index) / (nxt_index - key[0].index)
                    b = nxt.take(0)
                    d = Detections(((1 - w) * d.boxes + w * b.boxes).astype(np.float32), d.scores.copy(),
                                   ((1 - w) * d.landmarks + w * b.landmarks).astype(np.float32))
                out.append((f, _FaceFrame(f.index, f.timestamp, d, True)))
            return out

        for block in blocks:
            dets = self._key_detections(block)
            group: list[tuple[Frame, _FaceFrame]] = []
            for f in block:
                d = dets.get(f.index)
                if d is None:
                    pending.append(f)
                    continue
                group.extend(resolve(d, f.index))
                group.append((f, _FaceFrame(f.index, f.timestamp, d, False)))
                key, pending = (f, d), []
            if group:
                yield group
        if pending:
            yield resolve(None, None)

    # --- one source ------------------------------------------------------------------------------------------
    def predict(self, source: Source, progress: Callable[[int], None] | None = None) -> PredictionTable:
        if self.options.all_faces and not self.options.no_detect:
            return self._predict_all_faces(source, progress)
        return self._predict_main_face(source, progress)

    def _num_frames_bound(self, source: Source) -> int:
        """An upper bound on the frame count for ``predict_video`` (the container's declared count, else packets)."""
        hint = source.num_frames_hint()
        if hint:
            return int(hint)
        if source.kind == "video":
            import av

            with contextlib.suppress(Exception), av.open(source.path) as c:
                return max(1, sum(1 for p in c.demux(c.streams.video[0]) if p.size))
        return 1 << 30

    def _predict_main_face(self, source: Source, progress) -> PredictionTable:
        o = self.options
        state: dict = {"error": None}
        rows: dict[str, list] = {k: [] for k in ("frame", "timestamp", "success", "confidence", "box", "held")}
        prev_m: list[np.ndarray | None] = [None]

        def groups() -> Iterator[list[tuple[Frame, _FaceFrame]]]:
            blocks = self._blocks(source, state)
            if o.prefetch:  # decoding in a thread of its own
                blocks = prefetch(blocks)
            if o.no_detect:
                for block in blocks:
                    yield [(f, _FaceFrame(f.index, f.timestamp, Detections(), False)) for f in block]
            elif o.track:
                yield from self._tracked_stream(blocks, state)
            else:
                yield from self._main_face_stream(blocks, state)

        def chunks() -> Iterator[tuple[list, np.ndarray | None, np.ndarray | None]]:
            """Per block: the rows, then (images, frame→crop matrices, None) for the alignment stage, or (None,
            None, crops) for inputs that are already crops."""
            for group in groups():
                block = [f for f, _ in group]
                if o.no_detect:
                    crops = self._crops_no_detect(block)
                    for f in block:
                        ok = f.image is not None
                        h, w = f.image.shape[:2] if ok else (np.nan, np.nan)
                        rows["frame"].append(f.index); rows["timestamp"].append(f.timestamp)
                        rows["success"].append(ok); rows["confidence"].append(np.nan)
                        rows["box"].append((0.0, 0.0, float(w), float(h))); rows["held"].append(False)
                else:
                    mats = np.empty((len(block), 2, 3))
                    for i, (f, d) in enumerate(group):
                        ok = len(d.dets) > 0
                        if ok:
                            prev_m[0] = mats[i] = _chosen_matrix(d.dets, 0, o.align_size, o.margin)
                            x1, y1, x2, y2 = d.dets.boxes[0].tolist()
                            box, conf = (x1, y1, x2 - x1, y2 - y1), float(d.dets.scores[0])
                        else:
                            h, w = f.image.shape[:2] if f.image is not None else (o.align_size, o.align_size)
                            mats[i] = prev_m[0] if prev_m[0] is not None else centre_square_matrix(h, w, o.align_size)
                            box, conf = (np.nan,) * 4, np.nan
                        rows["frame"].append(f.index); rows["timestamp"].append(f.timestamp)
                        rows["success"].append(ok); rows["confidence"].append(conf)
                        rows["box"].append(box); rows["held"].append(d.held)
                    yield [f.image for f in block], mats, None
                    continue
                yield None, None, crops

        def align(jobs: Iterator[tuple]) -> Iterator[torch.Tensor]:
            """The alignment stage (warp + the model's input transform): a thread of its own with ``prefetch``."""
            for images, mats, crops in jobs:
                if crops is None:
                    crops = _warp_frames(images, mats, o.align_size)
                if progress:
                    progress(len(crops))
                yield self._to_input(crops)

        bound = self._num_frames_bound(source)
        stream, model_threads = self._model_stream(chunks, align)
        probs = self._run_model(stream, bound, model_threads)
        n = len(rows["frame"])
        if n == 0:
            raise DataError(source.path, state["error"] or "no frame could be decoded")
        probs = _fit_rows(probs, n, len(self.model.aus))
        success = np.asarray(rows["success"], bool)
        probs[~success] = np.nan
        return PredictionTable(
            frame=np.asarray(rows["frame"], np.int64), timestamp=np.asarray(rows["timestamp"], np.float64),
            face_id=np.where(success, 0, -1).astype(np.int64), success=success,
            confidence=np.asarray(rows["confidence"], np.float64), box=np.asarray(rows["box"], np.float64).reshape(n, 4),
            probs=probs, aus=self.model.aus, num_frames=n, fps=source.fps, held=np.asarray(rows["held"], bool),
            error=_error_text(state), face_search=dict(state.get("face_search") or {}),
        )

    def _predict_all_faces(self, source: Source, progress) -> PredictionTable:
        o = self.options
        state: dict = {"error": None}
        last: dict = {}
        per_frame: list[tuple[Frame, Detections, np.ndarray, bool]] = []  # (frame meta, dets, ids, held)
        # track=True: faces followed on every frame, ids from IoU between consecutive frames (a missed round is a
        # frame); track=False: ids from IoU between detection rounds, faces held in between
        tracker = IoUTracker(max_missed=max(10, 2 * o.detect_every))
        follow = FaceTracker(self.detector, o.tracking, all_faces=True)
        state["face_search"] = follow.counts if o.track else {}
        for block in self._blocks(source, state):
            faces = self._tracked_block(block, follow) if o.track else self._detect_block(block, last)
            for f, d in zip(block, faces):
                if o.track or not d.held:
                    ids = last["ids"] = tracker.update(d.dets)
                else:
                    ids = last["ids"]
                per_frame.append((Frame(f.index, f.timestamp, np.empty(0, np.uint8)), d.dets, ids, d.held))
            if progress:
                progress(len(block))
        if not per_frame:
            raise DataError(source.path, state["error"] or "no frame could be decoded")
        decoded = len(per_frame)
        tracks: dict[int, list[tuple[int, int]]] = {}  # id -> [(frame position, face index)]
        for pos, (_, d, ids, _) in enumerate(per_frame):
            for k, tid in enumerate(ids):
                tracks.setdefault(int(tid), []).append((pos, k))
        results: dict[tuple[int, int], np.ndarray] = {}  # (pos, track id) -> probs
        for tid, members in sorted(tracks.items()):
            member_pos = {p: k for p, k in members}
            last_pos = members[-1][0]

            def chunks() -> Iterator[torch.Tensor]:
                imgs, mats = [], []
                try:
                    for f in source.frames():
                        if f.index > last_pos:  # this track has ended: stop decoding
                            break
                        k = member_pos.get(f.index)
                        if k is None:
                            continue
                        imgs.append(f.image)
                        mats.append(_chosen_matrix(per_frame[f.index][1], k, o.align_size, o.margin))
                        if len(imgs) == o.batch_size:
                            yield self._to_input(_warp_frames(imgs, np.stack(mats), o.align_size))
                            imgs, mats = [], []
                except DataError:
                    pass  # already recorded by the detection pass
                if imgs:
                    yield self._to_input(_warp_frames(imgs, np.stack(mats), o.align_size))

            stream, model_threads = self._model_stream(chunks)
            probs = _fit_rows(self._run_model(stream, len(members), model_threads), len(members),
                              len(self.model.aus))
            for (pos, _), p in zip(members, probs):
                results[(pos, tid)] = p
        cols: dict[str, list] = {k: [] for k in ("frame", "timestamp", "face_id", "success", "confidence", "box",
                                                 "probs", "held")}
        nan_p = np.full(len(self.model.aus), np.nan)
        for pos, (f, d, ids, held) in enumerate(per_frame):
            faces = sorted(range(len(ids)), key=lambda k: ids[k])
            if not faces:
                cols["frame"].append(f.index); cols["timestamp"].append(f.timestamp); cols["face_id"].append(-1)
                cols["success"].append(False); cols["confidence"].append(np.nan); cols["box"].append((np.nan,) * 4)
                cols["probs"].append(nan_p); cols["held"].append(False)
            for k in faces:
                x1, y1, x2, y2 = d.boxes[k].tolist()
                cols["frame"].append(f.index); cols["timestamp"].append(f.timestamp)
                cols["face_id"].append(int(ids[k])); cols["success"].append(True)
                cols["confidence"].append(float(d.scores[k])); cols["box"].append((x1, y1, x2 - x1, y2 - y1))
                cols["probs"].append(results.get((pos, int(ids[k])), nan_p)); cols["held"].append(held)
        n = len(cols["frame"])
        return PredictionTable(
            frame=np.asarray(cols["frame"], np.int64), timestamp=np.asarray(cols["timestamp"], np.float64),
            face_id=np.asarray(cols["face_id"], np.int64), success=np.asarray(cols["success"], bool),
            confidence=np.asarray(cols["confidence"], np.float64), box=np.asarray(cols["box"], np.float64).reshape(n, 4),
            probs=np.asarray(cols["probs"], np.float64).reshape(n, -1), aus=self.model.aus, num_frames=decoded,
            fps=source.fps, held=np.asarray(cols["held"], bool), error=_error_text(state),
            face_search=dict(state.get("face_search") or {}),
        )


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Boxes (x1, y1, x2, y2) whose centres are less than one mean box width apart."""
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    width = ((a[2] - a[0]) + (b[2] - b[0])) / 2
    return bool(np.linalg.norm(ca - cb) < width)


def prefetch(gen: Iterator, depth: int = 2, threads: int | None = None, clock: StageClock | None = None) -> Iterator:
    """Run ``gen`` in a background thread, ``depth`` items ahead (decoding, MTCNN and warping release the GIL, so
    they overlap with the AU model on another core). ``threads``: torch intra-op threads of that thread (OpenMP's
    setting is per thread). Exceptions are re-raised in the consumer; the producer stops when the consumer stops
    early. ``clock``: receives the thread's CPU seconds per item produced."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            it = iter(gen)
            while True:
                c0 = time.thread_time()
                try:
                    item = next(it)
                except StopIteration:
                    break
                if clock is not None:
                    clock.add(time.thread_time() - c0)
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", end))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=produce, name="auspread-prefetch", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)
        close = getattr(gen, "close", None)
        if close is not None:
            close()


def _warp_frames(images: list[np.ndarray | None], mats: np.ndarray, size: int) -> np.ndarray:
    """Warp a block; unreadable frames (None) give black crops."""
    ok = [i for i, im in enumerate(images) if im is not None]
    if len(ok) == len(images) and len({im.shape for im in images}) == 1:
        return warp(np.stack(images), mats, size)
    from auspread.faces.align import warp_many

    out = np.zeros((len(images), size, size, 3), np.uint8)
    if ok:
        out[ok] = warp_many([images[i] for i in ok], mats[ok], size)
    return out


def _error_text(state: dict) -> str | None:
    """The decode error and/or a summary of unreadable images."""
    parts = []
    bad = state.get("bad") or []
    if bad:
        parts.append(f"{len(bad)} unreadable image(s), first: {bad[0]}")
    if state.get("error"):
        parts.append(state["error"])
    return "; ".join(parts) or None


def _fit_rows(probs: np.ndarray, n: int, u: int) -> np.ndarray:
    """``predict_video`` output as exactly ``n`` rows (a method that returned fewer rows leaves NaN)."""
    probs = np.asarray(probs, np.float64).reshape(-1, u)
    if len(probs) >= n:
        return probs[:n].copy()
    out = np.full((n, u), np.nan)
    out[: len(probs)] = probs
    return out
