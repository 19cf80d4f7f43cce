"""Test helpers: synthetic faces (auspread.data.synth) composited onto larger frames, written as small videos."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

FACE = 112  # synthetic face crop side
BG_HW = (180, 320)  # composited frame size
FACE_XY = (150, 30)  # top-left of the face in the composited frame


def synth_tree(root: Path, frames: int = 12, size: int = FACE, subjects: int = 2, seed: int = 0) -> Path:
    from auspread.data.synth.generator import generate

    return generate(root, preset="tiny", subjects=subjects, tasks=1, frames=frames, size=size, seed=seed,
                    progress=False)


def synth_faces(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first synthetic video's frames ``(T, S, S, 3)`` uint8 and 68 landmarks ``(T, 68, 2)``."""
    from auspread.data.readers import read_dataset

    v = read_dataset("bp4d", root).videos[0]
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in v.source.paths])
    return frames, v.landmarks


def composite(faces: np.ndarray, present: list[bool] | np.ndarray, bg_hw=BG_HW, xy=FACE_XY,
              second: np.ndarray | None = None, second_xy=(20, 40)) -> np.ndarray:
    """Frames ``(T, H, W, 3)``: a grey-gradient background with the face pasted at ``xy`` where ``present``."""
    t = len(present)
    h, w = bg_hw
    bg = np.broadcast_to(np.linspace(70, 130, w, dtype=np.float32)[None, :, None], (h, w, 3)).astype(np.uint8)
    out = np.repeat(bg[None], t, 0).copy()
    s = faces.shape[1]
    for i in range(t):
        if present[i]:
            out[i, xy[1] : xy[1] + s, xy[0] : xy[0] + s] = faces[i % len(faces)]
            if second is not None:
                out[i, second_xy[1] : second_xy[1] + s, second_xy[0] : second_xy[0] + s] = second[i % len(second)]
    return out


def write_video(path: Path, frames: np.ndarray, fps: int = 25, faststart: bool = True) -> Path:
    import av

    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as out:
        s = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "12"} if "libx264" in av.codecs_available else {}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
