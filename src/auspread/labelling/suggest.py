"""Which frames to label: ``auspread suggest-labels``.

The budget of ``N`` frames is spread across videos in proportion to their length (largest-remainder rounding,
capped by what a video can give; the rest moves to the others). Within a video only *candidate* frames are
considered: every ``stride``-th frame (about ``per_second`` a second) on which a face is detected. Two chosen frames
are never less than ``min_gap`` seconds (1 s) apart, nor that close to a frame the manifest already lists: labels a
few frames apart repeat each other.

Cheap face-crop features: the largest face is aligned with the 5-point similarity of ``auspread prepare``
(:mod:`auspread.faces.align`) to a 64-pixel crop; its central grey 24×24 pixels, zero-mean and unit-norm, are the
appearance vector. The appearance vectors are scaled so that their median pairwise distance is 1, and the frame's
time (as a fraction of the video's length) is appended as one more coordinate: a distance counts a difference in
expression or pose and a distance in time alike.

**Without a model** (key frames): greedy k-center (farthest-point) selection (Gonzalez 1985) in that space. The
frames already in the manifest are the initial centres; without them the first pick is drawn with ``seed``. Each
next pick is the candidate farthest from every centre, so the picks cover the video's appearance and time.

**With a trained model** (guided): each candidate's uncertainty is the mean over AUs of
``u = 1 − |p − θ| / (θ if p < θ else 1 − θ)`` with the model's per-AU validation threshold ``θ`` (0.5 without
one): 1 at the threshold, 0 at a certain 0 or 1. Each pick maximises ``u · d / max d``, ``d`` the distance to the
nearest labelled or already chosen frame of the video (uncertainty alone before the first centre): the frames the
model is least sure of that also differ most from what is labelled. A labelled frame is never chosen again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from auspread.errors import DataError
from auspread.labelling.frames import FrameReader

FEATURE_CROP = 64  # aligned crop side for the appearance features
FEATURE_SIDE = 24  # grey pixels kept per side (the crop's centre)


# --- candidates: detection and features -------------------------------------------------------------------
@dataclass
class Candidates:
    """The scanned frames of one video. ``frames`` are 0-based positions, ``times`` seconds, ``features``
    ``(n, D)`` appearance vectors (rows of frames without a face are NaN), ``face`` whether a face was found."""

    frames: np.ndarray
    times: np.ndarray
    features: np.ndarray
    face: np.ndarray
    num_frames: int
    fps: float


class WholeFrame:
    """A stand-in detector for inputs that are already aligned face crops (``--no-detect``): every frame is one
    face whose 5 points are the alignment template on the frame, so "aligning" it resizes the whole frame."""

    def detect(self, frames) -> list:
        from auspread.faces.align import template
        from auspread.faces.detect import Detections

        out = []
        for f in frames:
            h, w = np.asarray(f).shape[:2]
            lm = (template(1.0) * np.array([w, h])).astype(np.float32)[None]
            out.append(Detections(np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32), lm))
        return out


def face_features(images: list[np.ndarray], detector) -> tuple[np.ndarray, np.ndarray]:
    """Appearance vectors ``(n, FEATURE_SIDE²)`` and a face mask ``(n,)`` for frames (largest face of each)."""
    from auspread.faces.align import alignment_matrices, warp_many

    dets = detector.detect(images)
    face = np.array([len(d) > 0 for d in dets], bool)
    feats = np.full((len(images), FEATURE_SIDE * FEATURE_SIDE), np.nan, np.float32)
    idx = np.flatnonzero(face)
    if len(idx):
        lms = np.stack([dets[i].landmarks[0] for i in idx]).astype(np.float64)
        crops = warp_many([images[i] for i in idx], alignment_matrices(lms, FEATURE_CROP), FEATURE_CROP)
        grey = crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        o = (FEATURE_CROP - FEATURE_SIDE * 2) // 2  # centre 48 px, pooled 2×2 to 24
        c = grey[:, o : o + 2 * FEATURE_SIDE, o : o + 2 * FEATURE_SIDE]
        c = c.reshape(len(idx), FEATURE_SIDE, 2, FEATURE_SIDE, 2).mean((2, 4)).reshape(len(idx), -1)
        c -= c.mean(1, keepdims=True)
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6)
        feats[idx] = c
    return feats, face


def scan_video(reader: FrameReader, stride: int, detector, extra: Sequence[int] = (), batch: int = 16,
               progress: Callable[[int], None] | None = None) -> Candidates:
    """Detect faces and compute features on every ``stride``-th frame and on the frames in ``extra``."""
    extra_set = {int(e) for e in extra}
    frames, feats, faces, buf = [], [], [], []

    def flush():
        f, m = face_features([im for _, im in buf], detector)
        frames.extend(i for i, _ in buf)
        feats.append(f)
        faces.append(m)
        if progress:
            progress(len(buf))
        buf.clear()

    for i, im in reader.scan(lambda i: i % stride == 0 or i in extra_set):
        buf.append((i, im))
        if len(buf) == batch:
            flush()
    if buf:
        flush()
    n = reader.num_frames or 0
    if n == 0:
        raise DataError(reader.path, "no frame could be decoded")
    fr = np.asarray(frames, np.int64)
    return Candidates(fr, fr / reader.fps,
                      np.concatenate(feats) if feats else np.zeros((0, FEATURE_SIDE ** 2), np.float32),
                      np.concatenate(faces) if faces else np.zeros(0, bool), n, reader.fps)


# --- budget ---------------------------------------------------------------------------------------------------
def allocate(lengths: Sequence[int], budget: int, capacity: Sequence[int]) -> list[int]:
    """Split ``budget`` in proportion to ``lengths`` (largest remainder), each share at most its ``capacity``;
    what a capped video cannot take goes to the others, again by length. Deterministic (ties: input order)."""
    n = len(lengths)
    share = [0] * n
    left = min(int(budget), int(sum(capacity)))
    open_ = [i for i in range(n) if capacity[i] > 0 and lengths[i] > 0]
    while left > 0 and open_:
        total = sum(lengths[i] for i in open_)
        exact = {i: left * lengths[i] / total for i in open_}
        add = {i: math.floor(exact[i]) for i in open_}
        rest = left - sum(add.values())
        for i in sorted(open_, key=lambda i: (-(exact[i] - add[i]), i))[:rest]:
            add[i] += 1
        for i in open_:
            take = min(add[i], capacity[i] - share[i])
            share[i] += take
            left -= take
        open_ = [i for i in open_ if share[i] < capacity[i]]
    return share


def spaced_capacity(times: np.ndarray, min_gap: float, blocked: np.ndarray) -> int:
    """How many of ``times`` (sorted) can be chosen at least ``min_gap`` apart and ``min_gap`` from ``blocked``
    (greedy from the start, which is optimal on a line)."""
    count, last = 0, -np.inf
    for t in times:
        if t - last >= min_gap and not (len(blocked) and np.min(np.abs(blocked - t)) < min_gap):
            count += 1
            last = t
    return count


# --- selection ------------------------------------------------------------------------------------------------
@dataclass
class Pick:
    frame: int
    reason: str


def embed(features: np.ndarray, times: np.ndarray, duration: float) -> np.ndarray:
    """Appearance scaled to a median pairwise distance of 1 (among frames with a face), plus time as a fraction
    of the video. Rows without a face (NaN) become zeros; they are never candidates."""
    ok = np.isfinite(features).all(1)
    f = np.nan_to_num(features.astype(np.float64))
    if ok.sum() > 1:
        rows = np.flatnonzero(ok)
        sample = f[rows[np.linspace(0, len(rows) - 1, min(len(rows), 300)).astype(int)]]
        d = np.sqrt(((sample[:, None] - sample[None]) ** 2).sum(-1))
        med = np.median(d[np.triu_indices(len(sample), 1)])
        if med > 1e-9:
            f = f / med
    return np.concatenate([f, (times / max(duration, 1e-9))[:, None]], 1)


def uncertainty(probs: np.ndarray, thresholds: Sequence[float] | float = 0.5) -> np.ndarray:
    """``(n, U)`` probabilities → ``(n,)`` mean normalised distance-to-threshold uncertainty in [0, 1]."""
    th = np.broadcast_to(np.asarray(thresholds, np.float64), probs.shape[1:])
    p = probs.astype(np.float64)
    side = np.where(p < th, th, 1 - th)
    u = 1 - np.abs(p - th) / np.maximum(side, 1e-9)
    return np.clip(u, 0, 1).mean(1)


def select(cands: Candidates, k: int, *, labelled: Sequence[int] = (), seed: int | Sequence[int] = 0,
           min_gap: float = 1.0, scores: np.ndarray | None = None) -> list[Pick]:
    """Choose up to ``k`` frames of one video (module docstring): k-center without ``scores``, guided with the
    per-candidate uncertainty ``scores`` (NaN: not a candidate). Frames in ``labelled`` are never chosen, and
    neither are frames within ``min_gap`` seconds of them or of each other."""
    labelled = set(int(x) for x in labelled)
    z = embed(cands.features, cands.times, cands.num_frames / cands.fps)
    lab_t = np.array([t / cands.fps for t in sorted(labelled)], np.float64)
    ok = cands.face.copy()
    ok &= ~np.isin(cands.frames, list(labelled))
    if scores is not None:
        ok &= np.isfinite(scores)
    for t in lab_t:
        ok &= np.abs(cands.times - t) >= min_gap
    centres = [i for i in np.flatnonzero(cands.face) if int(cands.frames[i]) in labelled]
    dist = np.full(len(z), np.inf)
    for c in centres:
        dist = np.minimum(dist, np.linalg.norm(z - z[c], axis=1))
    picks: list[Pick] = []
    rng = np.random.default_rng(seed)
    while len(picks) < k and ok.any():
        elig = np.flatnonzero(ok)
        if scores is None:
            if np.isinf(dist[elig]).all():
                j = int(rng.choice(elig))
                why = f"key frame {len(picks) + 1}/{k}: first pick (seeded)"
            else:
                j = int(elig[np.argmax(dist[elig])])
                why = f"key frame {len(picks) + 1}/{k}: farthest from the chosen frames (distance {dist[j]:.2f})"
        else:
            if np.isinf(dist[elig]).all():
                value = scores[elig]
            else:
                d = dist[elig]
                value = scores[elig] * d / max(float(d.max()), 1e-12)
            j = int(elig[np.argmax(value)])
            near = "no labelled frame yet" if np.isinf(dist[j]) else f"distance {dist[j]:.2f} from the labelled"
            why = f"guided {len(picks) + 1}/{k}: model uncertainty {scores[j]:.2f}, {near}"
        picks.append(Pick(int(cands.frames[j]), f"{why}; t={cands.times[j]:.2f}s"))
        ok &= np.abs(cands.times - cands.times[j]) >= min_gap
        dist = np.minimum(dist, np.linalg.norm(z - z[j], axis=1))
    return picks


# --- models -----------------------------------------------------------------------------------------------------
class Scorer(Protocol):
    """Per-frame AU probabilities of a trained model for one source: ``(num_frames, U)``, NaN without a face."""

    aus: tuple[int, ...]
    thresholds: Sequence[float] | float

    def probabilities(self, path: Path) -> np.ndarray: ...


@dataclass
class ModelScorer:
    """A trained run through ``auspread predict``'s pipeline (detection, tracking, alignment, the AU model)."""

    bundle: object
    options: object = None
    aus: tuple[int, ...] = field(init=False)
    thresholds: Sequence[float] | float = field(init=False)

    def __post_init__(self):
        from auspread.predict.pipeline import Predictor

        self.aus = tuple(self.bundle.aus)
        th = self.bundle.thresholds
        self.thresholds = [float(v) for v in th.values] if th is not None else 0.5
        self._predictor = Predictor(self.bundle, self.options)

    def probabilities(self, path: Path) -> np.ndarray:
        """Frame positions as the manifest counts them: decode order of a video; for a frame folder, the image
        order of ``auspread predict`` (the same as the manifest's for .jpg/.jpeg/.png/.bmp folders)."""
        from auspread.media import expand_inputs

        table = self._predictor.predict(expand_inputs([str(path)])[0])
        out = np.full((table.num_frames, len(self.aus)), np.nan, np.float32)
        rows = table.success.astype(bool)
        out[table.frame[rows]] = table.probs[rows]
        return out
