"""Test helpers: synthetic face videos (tests/faces/faces_fakes.py) and a fake face detector that finds the pasted
face exactly where ``composite`` put it (no MTCNN: fast and certain)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces"))

from faces_fakes import FACE, FACE_XY, composite, synth_faces, synth_tree, write_video  # noqa: E402,F401

from auspread.faces.detect import Detections  # noqa: E402

# the ArcFace 5 points of a 112 crop, roughly where the synthetic face's eyes, nose and mouth are
_POINTS = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32)


class FakeDetector:
    """A face wherever the pasted face's square differs from the plain background of ``composite``."""

    def __init__(self, xy=FACE_XY, size=FACE):
        self.xy, self.size = xy, size
        self.calls = 0

    def detect(self, frames):
        out = []
        x, y = self.xy
        for f in frames:
            self.calls += 1
            patch = np.asarray(f)[y : y + self.size, x : x + self.size].astype(np.float32)
            if patch.size and patch.std(axis=(0, 1)).max() > 12:  # a face, not the smooth grey gradient
                box = np.array([[x, y, x + self.size, y + self.size]], np.float32)
                lm = (_POINTS * self.size / 112 + np.array([x, y], np.float32))[None]
                out.append(Detections(box, np.array([0.99], np.float32), lm))
            else:
                out.append(Detections())
        return out


def face_video(path: Path, faces: np.ndarray, present, fps: int = 25) -> Path:
    """A small mp4 of the synthetic faces on a background, the face shown where ``present``."""
    return write_video(path, composite(faces, list(present)), fps=fps)
