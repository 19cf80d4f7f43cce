"""Writers for the two real on-disk layouts (see ``shared/reference/datasets_and_tools.md`` §1–2).

BP4D::

    Sequences(2D+3D)/<Subj>/<Task>/<frame>.jpg           frame numbers from a random offset; 4-digit zero padding
                                                        (F001–F023, M001–M008) or 3-digit (M009–M018)
    AUCoding/AU_OCC/<Subj>_<Task>.csv                    header 0..99, column 0 = frame, column N = AU N, codes 0/1/9,
                                                        coded segment only
    AUCoding/AU_INT/AU06/<Subj>_<Task>_AU06.csv          no header: frame,intensity (AU 6, 10, 12, 14, 17)

DISFA::

    Videos_LeftCamera/LeftVideoSN001_comp.avi           MPEG-4 Part 2 in AVI, 20 fps
    ActionUnit_Labels/SN001/SN001_au1.txt               lines 'frame,intensity', 1-based frames, integers 0–5

Both: ``Landmarks_68/<video_id with '/'→'_'>.npz`` (``frame_numbers``, ``points``) and
``ground_truth/<same>.npz`` (exact intensities, occurrence and the values written).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

BP4D_SEQ_DIR = "Sequences(2D+3D)"
BP4D_INT_AUS = (6, 10, 12, 14, 17)
DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


def bp4d_pad(subject: str) -> int:
    """Image-name zero padding of the real tarballs: 3 digits for M009–M018, 4 for everyone else."""
    return 3 if subject.startswith("M") and 9 <= int(subject[1:]) <= 18 else 4


def bp4d_frame_dir(root: Path, subject: str, task: str) -> Path:
    return root / BP4D_SEQ_DIR / subject / task


def bp4d_csv_text(frame_numbers: np.ndarray, codes: np.ndarray) -> str:
    """AU_OCC CSV: ``codes`` is ``(T, 99)`` int (columns AU1..AU99)."""
    header = ",".join(str(i) for i in range(100))
    body = np.concatenate([frame_numbers[:, None].astype(np.int64), codes.astype(np.int64)], 1)
    lines = [",".join(map(str, row)) for row in body.tolist()]
    return header + "\n" + "\n".join(lines) + "\n"


def pairs_text(frame_numbers: np.ndarray, values: np.ndarray) -> str:
    """``frame,value`` lines (BP4D AU_INT and DISFA label files)."""
    return "".join(f"{int(f)},{int(v)}\n" for f, v in zip(frame_numbers, values))


def video_key(video_id: str) -> str:
    return video_id.replace("/", "_")


def write_landmarks(root: Path, video_id: str, frame_numbers: np.ndarray, points: np.ndarray) -> Path:
    path = root / "Landmarks_68" / f"{video_key(video_id)}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, frame_numbers=np.asarray(frame_numbers, np.int64), points=np.asarray(points, np.float32))
    return path


class JpegSequenceWriter:
    """BP4D frames: one JPEG per frame named by its (zero-padded) frame number."""

    def __init__(self, folder: Path, pad: int, quality: int):
        self.folder = folder
        self.pad = pad
        self.quality = quality
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame_numbers: np.ndarray, frames: np.ndarray) -> None:
        for f, img in zip(frame_numbers, frames):
            Image.fromarray(img).save(self.folder / f"{str(int(f)).zfill(self.pad)}.jpg", quality=self.quality)

    def close(self) -> None:
        pass


class AviWriter:
    """DISFA video: MPEG-4 Part 2 in AVI via PyAV (decodes back to exactly the frames written)."""

    def __init__(self, path: Path, size: int, fps: float, quality: int):
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream("mpeg4", rate=int(fps))
        self.stream.width = size
        self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        # quality 75–95 → ~0.6–2.4 bits per pixel per second scale
        self.stream.bit_rate = int(size * size * fps * (0.5 + (quality - 70) / 12.0))
        self._av = av

    def write(self, frame_numbers: np.ndarray, frames: np.ndarray) -> None:
        for img in frames:
            fr = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for p in self.stream.encode(fr):
                self.container.mux(p)

    def close(self) -> None:
        for p in self.stream.encode():
            self.container.mux(p)
        self.container.close()
