"""The generator: plan subjects and videos, simulate AU dynamics, render, write in the BP4D or DISFA layout.

``generate(out_dir, preset, fmt, seed, ...)`` writes atomically (a temporary sibling folder renamed at the end;
``manifest.json`` is written last). ``default_dataset(preset, fmt)`` generates once into a cache folder.
Labels depend only on (config, seed, subject, task): never on the frame size, worker count or pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from auspread.aus import dataset_aus
from auspread.data.synth.config import GENERATOR_VERSION, SynthConfig, resolve_config
from auspread.data.synth.dynamics import (
    BP4D_TASKS, DISFA_MIX, add_label_noise, integer_intensity, simulate_intensities,
)
from auspread.data.synth.effects import GENERATED_AUS, SubjectAssets, build_assets
from auspread.data.synth.face import NeutralFace, Subject, render_neutral, sample_subject
from auspread.data.synth.nuisance import sample_nuisance
from auspread.data.synth.render import render_frames
from auspread.data.synth.writers import (
    BP4D_INT_AUS, DISFA_AUS, AviWriter, JpegSequenceWriter, bp4d_csv_text, bp4d_frame_dir, bp4d_pad, pairs_text,
    video_key, write_landmarks,
)
from auspread.errors import DataError
from auspread.io import atomic_dir

CHUNK = 64
#: occurrence thresholds on the integer intensity (FACS A-level for BP4D; the DISFA benchmark's ≥ 2)
OCC_THRESHOLD = {"bp4d": 1, "disfa": 2}


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    subject: str
    task: str
    n_frames: int  # frames on disk
    first_frame: int  # frame number of the first frame on disk
    coded_lo: int  # coded segment = on-disk positions [coded_lo, coded_hi)
    coded_hi: int


def _h(s: str) -> int:
    return zlib.crc32(s.encode())


@lru_cache(maxsize=1)
def _folds() -> dict:
    return json.loads(resources.files("auspread.resources").joinpath("folds.json").read_text())


def pick_subjects(fmt: str, n: int) -> list[str]:
    """``n`` real subject ids, round-robin over the three fold parts (so every fold has test subjects)."""
    d = _folds()["BP4D" if fmt == "bp4d" else "DISFA"]
    parts = [list(d[p]) for p in ("part1", "part2", "part3")]
    out: list[str] = []
    i = 0
    while len(out) < n:
        part = parts[i % 3]
        if part:
            out.append(part.pop(0))
        i += 1
        if not any(parts):
            break
    return out


def plan_videos(cfg: SynthConfig) -> list[VideoPlan]:
    rng = np.random.default_rng([cfg.seed, 0])
    plans = []
    tasks = cfg.task_order[: cfg.tasks] if cfg.format == "bp4d" else [""]
    for subj in pick_subjects(cfg.format, cfg.subjects):
        for task in tasks:
            n = int(round(cfg.frames * (1 + rng.uniform(-cfg.frames_jitter, cfg.frames_jitter))))
            n = max(n, 8)
            if cfg.format == "bp4d":
                vid = f"{subj}/{task}"
                first = int(rng.choice([rng.integers(1, 100), rng.integers(100, 1000), rng.integers(1000, 3000)]))
                m = cfg.uncoded_margin
                lo = int(rng.integers(0, m + 1)) if m else 0
                hi = n - (int(rng.integers(0, m + 1)) if m else 0)
                if hi - lo < 4:
                    lo, hi = 0, n
            else:
                if subj == "SN010":  # as in the real data, SN010's labels (and our video) are one frame shorter
                    n -= 1
                vid, first, lo, hi = subj, 1, 0, n
            plans.append(VideoPlan(vid, subj, task, n, first, lo, hi))
    return plans


def make_subject(cfg: SynthConfig, subject_id: str) -> Subject:
    rng = np.random.default_rng([cfg.seed, _h(subject_id), 11])
    return sample_subject(subject_id, rng, mimicry=cfg.mimicry, accessories=cfg.accessories,
                          identity_variation=cfg.identity_variation, aus=GENERATED_AUS)


def subject_assets(cfg: SynthConfig, subject: Subject, size: int | None = None) -> tuple[SubjectAssets, NeutralFace]:
    size = size or cfg.size
    nf = render_neutral(subject, size)
    return build_assets(subject, nf, size, GENERATED_AUS), nf


def au_weights(cfg: SynthConfig, subject: Subject, intensity: np.ndarray) -> np.ndarray:
    """Render weights ``(T, A)``: (intensity + resting) / 5 · effect_gain (blinks are not scaled)."""
    rest = np.array([subject.resting.get(a, 0.0) for a in GENERATED_AUS], np.float32)
    gain = np.array([1.0 if a == 45 else cfg.effect_gain for a in GENERATED_AUS], np.float32)
    return (intensity + rest[None]) / 5.0 * gain[None]


def simulate_video(cfg: SynthConfig, plan: VideoPlan) -> tuple[np.ndarray, list[dict]]:
    """Ground-truth intensities ``(n_frames, len(GENERATED_AUS))`` of one video (no pixels)."""
    rng = np.random.default_rng([cfg.seed, _h(plan.subject), _h(plan.task), 1])
    if cfg.activity_profile == "disfa":
        mix = DISFA_MIX
    elif plan.task in BP4D_TASKS:
        mix = BP4D_TASKS[plan.task]
    else:  # bp4d activity in a DISFA-format video: all tasks' episodes mixed
        mix = {}
        for m in BP4D_TASKS.values():
            for k, v in m.items():
                mix[k] = mix.get(k, 0.0) + v / len(BP4D_TASKS)
    return simulate_intensities(rng, plan.n_frames, cfg.fps, GENERATED_AUS, cfg.activity_profile, mix, cfg.activity)


def video_labels(cfg: SynthConfig, plan: VideoPlan, intensity: np.ndarray) -> dict[str, np.ndarray]:
    """Exact occurrence and the label values the writer puts on disk for one video."""
    rng = np.random.default_rng([cfg.seed, _h(plan.subject), _h(plan.task), 3])
    col = {a: j for j, a in enumerate(GENERATED_AUS)}
    ints = integer_intensity(intensity)
    occ = (ints >= OCC_THRESHOLD[cfg.format]).astype(np.int8)
    out = {"occurrence": occ, "integer_intensity": ints}
    if cfg.format == "bp4d":
        seg = slice(plan.coded_lo, plan.coded_hi)
        coded = set(dataset_aus("BP4D").coded_aus)
        codes = np.full((plan.coded_hi - plan.coded_lo, 99), 9, np.int8)
        noisy = add_label_noise(occ[seg], rng, cfg.label_noise, cfg.fps)
        for au in coded:
            codes[:, au - 1] = noisy[:, col[au]] if au in col else 0
        if rng.random() < cfg.unknown_rate:  # a run of 9 (not coded) cells, as coders leave them
            au = int(rng.choice(sorted(coded & set(col))))
            n = len(codes)
            length = int(rng.integers(min(5, n), min(20, n) + 1))
            a = int(rng.integers(0, n - length + 1))
            codes[a:a + length, au - 1] = 9
        out["written_codes"] = codes
        ints_w = np.stack([ints[seg, col[a]] for a in BP4D_INT_AUS], 1).astype(np.int8)
        ints_w[codes[:, [a - 1 for a in BP4D_INT_AUS]] == 9] = 9
        out["written_intensity"] = ints_w
    else:
        w = np.stack([ints[:, col[a]] for a in DISFA_AUS], 1)
        out["written_intensity"] = add_label_noise(w, rng, cfg.label_noise, cfg.fps)
    return out


def render_video(cfg: SynthConfig, plan: VideoPlan, subject: Subject, assets: SubjectAssets, root: Path,
                 progress=None) -> dict:
    """Render and write one video with its labels, landmarks and ground truth; returns its manifest entry."""
    intensity, episodes = simulate_video(cfg, plan)
    labels = video_labels(cfg, plan, intensity)
    nrng = np.random.default_rng([cfg.seed, _h(plan.subject), _h(plan.task), 2])
    nuis = sample_nuisance(nrng, plan.n_frames, cfg.fps, cfg.size, cfg.nuisance)
    noise_bank = nrng.standard_normal((8, cfg.size, cfg.size, 3)).astype(np.float32) if nuis.noise_sigma > 0 else None
    weights = au_weights(cfg, subject, intensity)
    frame_numbers = plan.first_frame + np.arange(plan.n_frames, dtype=np.int64)
    if cfg.format == "bp4d":
        writer = JpegSequenceWriter(bp4d_frame_dir(root, plan.subject, plan.task), bp4d_pad(plan.subject), nuis.quality)
    else:
        writer = AviWriter(root / "Videos_LeftCamera" / f"LeftVideo{plan.subject}_comp.avi", cfg.size, cfg.fps, nuis.quality)
    points = np.zeros((plan.n_frames, 68, 2), np.float32)
    try:
        for s in range(0, plan.n_frames, CHUNK):
            e = min(plan.n_frames, s + CHUNK)
            frames, lm = render_frames(assets, weights[s:e], nuis, s, noise_bank, subject.background)
            writer.write(frame_numbers[s:e], frames)
            points[s:e] = lm
            if progress is not None:
                progress(e - s)
    finally:
        writer.close()
    _write_labels(cfg, plan, labels, frame_numbers, root)
    write_landmarks(root, plan.video_id, frame_numbers, points)
    coded = np.zeros(plan.n_frames, bool)
    coded[plan.coded_lo:plan.coded_hi] = True
    gt = root / "ground_truth" / f"{video_key(plan.video_id)}.npz"
    gt.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(gt, frame_numbers=frame_numbers, aus=np.array(GENERATED_AUS), intensity=intensity,
                        occurrence=labels["occurrence"], coded=coded,
                        written_intensity=labels["written_intensity"],
                        **({"written_codes": labels["written_codes"]} if "written_codes" in labels else {}),
                        episodes=np.array(json.dumps(episodes)))
    counts: dict[str, int] = {}
    for ep in episodes:
        counts[ep["name"]] = counts.get(ep["name"], 0) + 1
    entry = {**asdict(plan), "frames_on_disk": [int(frame_numbers[0]), int(frame_numbers[-1])],
             "coded_frames": [int(frame_numbers[plan.coded_lo]), int(frame_numbers[plan.coded_hi - 1])],
             "episodes": counts, "jpeg_quality" if cfg.format == "bp4d" else "video_quality": nuis.quality,
             "noise_sigma": round(nuis.noise_sigma, 3), "occluded_frames": int((nuis.occluder[:, 0] > 0).sum()),
             "blurred_frames": int((nuis.blur > 0).sum())}
    if cfg.format == "bp4d":
        entry["image_name_digits"] = bp4d_pad(plan.subject)
    return entry


def _write_labels(cfg: SynthConfig, plan: VideoPlan, labels: dict, frame_numbers: np.ndarray, root: Path) -> None:
    if cfg.format == "bp4d":
        fn = frame_numbers[plan.coded_lo:plan.coded_hi]
        occ_dir = root / "AUCoding" / "AU_OCC"
        occ_dir.mkdir(parents=True, exist_ok=True)
        (occ_dir / f"{plan.subject}_{plan.task}.csv").write_text(bp4d_csv_text(fn, labels["written_codes"]))
        if cfg.intensity_files:
            for j, au in enumerate(BP4D_INT_AUS):
                d = root / "AUCoding" / "AU_INT" / f"AU{au:02d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{plan.subject}_{plan.task}_AU{au:02d}.csv").write_text(pairs_text(fn, labels["written_intensity"][:, j]))
    else:
        d = root / "ActionUnit_Labels" / plan.subject
        d.mkdir(parents=True, exist_ok=True)
        for j, au in enumerate(DISFA_AUS):
            (d / f"{plan.subject}_au{au}.txt").write_text(pairs_text(frame_numbers, labels["written_intensity"][:, j]))


def _subject_job(cfg_json: str, subject_id: str, plans: list[VideoPlan], root: str) -> list[dict]:
    cfg = SynthConfig.model_validate_json(cfg_json)
    subject = make_subject(cfg, subject_id)
    assets, _ = subject_assets(cfg, subject)
    return [render_video(cfg, p, subject, assets, Path(root)) for p in plans]


def _subject_entry(s: Subject) -> dict:
    return {"glasses": s.glasses, "beard": s.beard, "fringe": s.fringe,
            "resting": {str(k): round(v, 3) for k, v in s.resting.items()},
            "gain": {str(k): round(v, 3) for k, v in s.gain.items()}}


def generate_into(root: Path, cfg: SynthConfig, progress: bool = True, workers: int = 0) -> None:
    """Write the whole dataset into the (empty, temporary) folder ``root``; ``manifest.json`` last."""
    from auspread.progress import progress_bar

    plans = plan_videos(cfg)
    by_subject: dict[str, list[VideoPlan]] = {}
    for p in plans:
        by_subject.setdefault(p.subject, []).append(p)
    total = sum(p.n_frames for p in plans)
    if workers <= 0:
        workers = min(os.cpu_count() or 1, len(by_subject)) if total > 3000 else 1
    entries: dict[str, list[dict]] = {}
    bar = progress_bar(total=total, unit="frame", desc=f"synth {cfg.preset} ({cfg.format})", disable=not progress,
                       every=max(1, total // 10))
    try:
        if workers == 1:
            for sid, ps in by_subject.items():
                subject = make_subject(cfg, sid)
                assets, _ = subject_assets(cfg, subject)
                entries[sid] = [render_video(cfg, p, subject, assets, root, progress=bar.update) for p in ps]
        else:
            import multiprocessing as mp

            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            os.environ.update({k: "1" for k in saved})
            try:
                with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
                    futs = {ex.submit(_subject_job, cfg.model_dump_json(), sid, ps, str(root)): sid
                            for sid, ps in by_subject.items()}
                    try:
                        for f in as_completed(futs):
                            entries[futs[f]] = f.result()
                            bar.update(sum(p.n_frames for p in by_subject[futs[f]]))
                    except BaseException:
                        ex.shutdown(wait=True, cancel_futures=True)  # do not start the remaining subjects
                        raise
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    finally:
        bar.close()
    manifest = {
        "generator": "auspread.data.synth", "generator_version": GENERATOR_VERSION, "seed": cfg.seed,
        "format": cfg.format, "dataset": "BP4D" if cfg.format == "bp4d" else "DISFA", "fps": cfg.fps,
        "parameters": cfg.model_dump(), "generated_aus": list(GENERATED_AUS),
        "occurrence_rule": ("BP4D codes: 1 if floor(intensity) >= 1 (FACS A-level), 0 otherwise, 9 = not coded"
                            if cfg.format == "bp4d" else
                            "DISFA files hold integer intensity floor(I) in 0-5; the benchmark's occurrence is >= 2"),
        "subjects": {sid: _subject_entry(make_subject(cfg, sid)) for sid in by_subject},
        "videos": [e for sid in by_subject for e in entries[sid]],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))


def generate(out_dir: str | Path, preset: str = "tiny", fmt: str | None = None, seed: int = 0, force: bool = False,
             progress: bool = True, workers: int = 0, **overrides) -> Path:
    """Generate a synthetic dataset into ``out_dir`` atomically and return its path.

    ``overrides`` are :class:`SynthConfig` fields (``subjects``, ``tasks``, ``frames``, ``size``, ``label_noise``,
    difficulty knobs ...). A non-empty ``out_dir`` is refused unless ``force``.
    """
    cfg = resolve_config(preset, fmt, seed=seed, **overrides)
    out = Path(out_dir)
    with atomic_dir(out, force=force) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a dataset folder is ordinary data
        generate_into(Path(tmp), cfg, progress=progress, workers=workers)
    return out


def cache_root() -> Path:
    return Path(os.environ.get("AUSPREAD_CACHE") or Path.home() / ".cache" / "auspread")


def default_dataset(preset: str = "small", fmt: str = "bp4d", seed: int = 0, progress: bool = True) -> Path:
    """The cached synthetic dataset ``<cache>/synth/<preset>-<fmt>-v<version>-s<seed>``, generated on first use.

    Safe when processes race: each generates into its own temporary folder and renames it; a loser uses the
    winner's folder.
    """
    target = cache_root() / "synth" / f"{preset}-{fmt}-v{GENERATOR_VERSION}-s{seed}"
    if (target / "manifest.json").is_file():
        return target
    if target.exists() and any(target.iterdir()):
        raise DataError(target, "cached synthetic dataset has no manifest.json (incomplete?); delete the folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(preset, fmt, seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        generate_into(tmp, cfg, progress=progress)
        try:
            if target.exists():
                target.rmdir()  # empty leftover folder
            os.rename(tmp, target)
        except OSError:
            if not (target / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
