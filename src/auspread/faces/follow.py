"""Which face each frame of a video holds, between full detections (``auspread predict``).

Full MTCNN runs, batched per block of frames, on the key frames ``index % K == 0`` (K = ``detect_every``); the
frames in between get their face in one of three ways:

* tracked (:meth:`FaceFollower.tracked`): :class:`~auspread.faces.track.FaceTracker` follows the face from frame to
  frame (O-net on the previous box), with an early full detection when the face is lost, jumps or the scene cuts;
* interpolated (:meth:`FaceFollower.interpolated`, the main face without tracking): landmarks and box linearly
  between the two key frames around the frame, when both hold plausibly the same face;
* held (:meth:`FaceFollower.held`, every face without tracking): the last key frame's faces.

An unreadable image (``Frame.image is None``) has no face.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from auspread.faces.detect import Detections, FaceDetector
from auspread.faces.track import FaceTracker, TrackOptions
from auspread.media import Frame


@dataclass
class FaceFrame:
    """The faces found on one frame; ``held``: tracked, interpolated or held, not from a full detection on it."""

    index: int
    timestamp: float
    dets: Detections
    held: bool

    @classmethod
    def none(cls, f: Frame) -> FaceFrame:
        return cls(f.index, f.timestamp, Detections(), False)


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Boxes (x1, y1, x2, y2) whose centres are less than one mean box width apart."""
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    width = ((a[2] - a[0]) + (b[2] - b[0])) / 2
    return bool(np.linalg.norm(ca - cb) < width)


class FaceFollower:
    """Full detection every ``detect_every`` frames with ``detector``, the faces followed in between. One follower
    per sequence: it carries the tracker's and the held faces' state from block to block. ``all_faces``: follow
    every face, else the main (largest) one."""

    def __init__(self, detector: FaceDetector, detect_every: int, tracking: TrackOptions | None = None,
                 all_faces: bool = False):
        self.detector = detector
        self.detect_every = detect_every
        self.tracker = FaceTracker(detector, tracking or TrackOptions(), all_faces=all_faces)
        self._last_key = Detections()  # the last key frame's faces (held)

    @property
    def counts(self):
        """Frames per tracking outcome (:attr:`FaceTracker.counts`): key, tracked, lost, jump, cut, change, idle."""
        return self.tracker.counts

    def key_detections(self, block: list[Frame]) -> dict[int, Detections]:
        """Full MTCNN, batched, on the block's key frames ``index % K == 0`` (readable ones): frame index → faces."""
        k = self.detect_every
        run = [f for f in block if f.index % k == 0 and f.image is not None]
        if not run:
            return {}
        return dict(zip((f.index for f in run), self.detector.detect([f.image for f in run])))

    def held(self, block: list[Frame]) -> list[FaceFrame]:
        """Detection on the key frames; other frames hold the last detected faces (across blocks)."""
        dets = self.key_detections(block)
        out = []
        for f in block:
            if f.image is None:  # unreadable image: no face
                out.append(FaceFrame.none(f))
            elif f.index in dets:
                self._last_key = dets[f.index]
                out.append(FaceFrame(f.index, f.timestamp, dets[f.index], False))
            else:
                d = self._last_key
                out.append(FaceFrame(f.index, f.timestamp, d, len(d) > 0))
        return out

    def tracked_block(self, block: list[Frame]) -> list[FaceFrame]:
        """Full detection on the block's key frames, the tracker in between."""
        dets = self.key_detections(block)
        out = []
        for f in block:
            if f.image is None:  # unreadable image: no face, and the sequence is broken
                self.tracker.reset()
                out.append(FaceFrame.none(f))
                continue
            d, held = self.tracker.step(f.image, dets.get(f.index))
            out.append(FaceFrame(f.index, f.timestamp, d, held))
        return out

    def tracked(self, blocks: Iterator[list[Frame]]) -> Iterator[list[tuple[Frame, FaceFrame]]]:
        """The faces per frame, tracked between key frames (no waiting for the next key frame: each block is ready
        as soon as it is processed)."""
        for block in blocks:
            yield list(zip(block, self.tracked_block(block)))

    def interpolated(self, blocks: Iterator[list[Frame]]) -> Iterator[list[tuple[Frame, FaceFrame]]]:
        """The largest face per frame, in groups of frames ready to align.

        A frame between key frames a < t < b gets the landmarks and box interpolated linearly,
        ``(1 − w)·x_a + w·x_b`` with ``w = (t − a)/(b − a)``, when both key frames have a face and it is plausibly
        the same face (:func:`same_face`); otherwise it holds key frame a's face (or none). Frames after the last
        key frame hold it. At most K − 1 frames wait for their next key frame.
        """
        pending: list[Frame] = []
        key: tuple[Frame, Detections] | None = None

        def resolve(nxt: Detections | None, nxt_index: int | None) -> list[tuple[Frame, FaceFrame]]:
            out = []
            a = key[1] if key is not None else Detections()
            for f in pending:
                if f.image is None or not len(a):
                    out.append((f, FaceFrame.none(f)))
                    continue
                d = a.take(0)
                if nxt is not None and len(nxt) and same_face(a.boxes[0], nxt.boxes[0]):
                    w = (f.index - key[0].index) / (nxt_index - key[0].index)
                    b = nxt.take(0)
                    d = Detections(((1 - w) * d.boxes + w * b.boxes).astype(np.float32), d.scores.copy(),
                                   ((1 - w) * d.landmarks + w * b.landmarks).astype(np.float32))
                out.append((f, FaceFrame(f.index, f.timestamp, d, True)))
            return out

        for block in blocks:
            dets = self.key_detections(block)
            group: list[tuple[Frame, FaceFrame]] = []
            for f in block:
                d = dets.get(f.index)
                if d is None:
                    pending.append(f)
                    continue
                group.extend(resolve(d, f.index))
                group.append((f, FaceFrame(f.index, f.timestamp, d, False)))
                key, pending = (f, d), []
            if group:
                yield group
        if pending:
            yield resolve(None, None)
