"""Is the guided choice of frames to label worth it? Three strategies at equal label budgets on the synthetic
`bp4d-like` benchmark, fold 1, whose ground truth stands in for the coder (docs/label.md, docs/BENCHMARKS.md).

Strategies (each picks the same number N of training frames to label; N = the uniform policy's key frames at the
ratio, about 1% or 0.5% of the labelable training frames):

* ``uniform``: the paper's every-k key frames (``auspread.data.labels.sparsify``, k = 100 / ratio), the label
  policy every other benchmark uses;
* ``suggest``: ``auspread suggest-labels`` without a model (k-center key frames over time and appearance);
* ``two-round``: ``suggest-labels`` without a model for N/2 frames, the coder labels them, the method trains on
  them, then ``suggest-labels --model`` with that run picks the other N − N/2, and the method trains again on all N.

The coder: every chosen frame of the manifest gets its ground-truth labels (``LabelManifest.answer``). The labels
reach training through a copy of the dataset (AUCoding CSVs rewritten, frames and landmarks linked, never copied) in
which every labelable frame that was not chosen is ``9`` (not coded → unknown); the cells train with
``data.dataset=bp4d data.labels=100%``. Validation subjects (the engine's ``validation_split`` of the training
subjects, same seed) and test subjects keep every label, so model selection and the test are those of the
label-ratio benchmarks; only the training labels differ between strategies. The frames are the generator's aligned
crops, so ``suggest-labels`` runs with ``--no-detect`` (``WholeFrame``) and the guided round predicts with
``no_detect``.

Each cell (ratio × strategy × method × seed) is one ``run_training`` with the shared budget of the label-ratio
benchmarks (``_budget.py``, ``--start``); a finished cell (``results/summary.json``) is read back, so the script
resumes where it stopped. Prints test mean F1 (0.5 threshold) and mean ROC-AUC per cell and their seed means.

Measurement (hours on 2 CPU cores; not run yet):
    OMP_NUM_THREADS=1 python benchmarks/bench_guided_labels.py --out /work/runs/guided --ratios 1,0.5 \
        --methods supervised,ks --seeds 0,1
Smoke check (a few minutes: tiny preset, 32 px, 2 epochs x 2 steps, one ratio, supervised, seed 0):
    OMP_NUM_THREADS=1 python benchmarks/bench_guided_labels.py --quick
Only the manifests and label masks (no training; the two-round strategy needs its first run, so it is skipped):
    python benchmarks/bench_guided_labels.py --out /work/runs/guided --masks-only
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _budget import STARTS, budget_for, per_method

from auspread.data.folds import fold_subjects, validation_split
from auspread.data.index import VideoIndex
from auspread.data.labels import sparsify
from auspread.data.readers import read_dataset
from auspread.engine.config import load_config
from auspread.engine.run import run_training
from auspread.evaluation.ranking import roc_auc
from auspread.labelling.manifest import LabelManifest
from auspread.labelling.plan import suggest_labels
from auspread.labelling.suggest import ModelScorer, WholeFrame

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = ("uniform", "suggest", "two-round")
CONFIGS = {"supervised": "supervised_synthetic.yaml", "ks": "ks_synthetic.yaml"}
QUICK = ["data.image_size=32", "optim.batch_size=4", "optim.epochs=2", "optim.steps_per_epoch=2", "eval_every=1",
         "data.eval_video_stride=1"]
QUICK_KS = ["method.ramp_epochs=1", "method.unlabelled_from_epoch=1"]


# --- the dataset and its labelable part -----------------------------------------------------------------------
def dataset(preset: str) -> Path:
    from auspread.data.synth import default_dataset

    return Path(default_dataset(preset, "bp4d", progress=True))


def labelable(index: VideoIndex, fold: int, val_fraction: float, seed: int) -> tuple[VideoIndex, list[str]]:
    """The training subjects whose labels the strategies choose (the engine's split: fold, then validation), and
    the validation subjects (their labels stay whole)."""
    train_s, _ = fold_subjects(index.dataset, fold, index.subjects())
    train_s, val_s = validation_split(train_s, val_fraction, seed)
    return index.select_subjects(train_s), list(val_s)


def frame_views(index: VideoIndex, dest: Path) -> dict[str, str]:
    """Per video, a folder of symlinks ``000000.jpg …`` to exactly its coded frames in order, so that a manifest's
    frame position is the record's frame position (the generator's folders may hold uncoded frames too).
    Returns ``{video_id: folder}``."""
    out = {}
    for rec in index.videos:
        folder = dest / rec.video_id.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(rec.source.paths):
            link = folder / f"{i:06d}{Path(p).suffix}"
            if not link.exists():
                os.symlink(Path(p).resolve(), link)
        out[rec.video_id] = str(folder)
    return out


# --- strategies -----------------------------------------------------------------------------------------------
def declaring_manifest(index: VideoIndex, path: Path, views: dict[str, str]) -> Path:
    """A manifest that lists the labelable videos (their subject and task), with no frame yet."""
    m = LabelManifest.new(path, list(index.aus))
    for rec in index.videos:
        m.append({"source": views[rec.video_id], "subject": rec.subject, "task": rec.task, "frame": ""})
    m.write()
    return path


def code_frames(manifest: Path, index: VideoIndex, views: dict[str, str]) -> None:
    """The coder: every open frame of the manifest gets its ground-truth labels (unknown stays empty)."""
    by_folder = {views[r.video_id]: r for r in index.videos}
    m = LabelManifest.read(manifest)
    for i in m.frame_rows():
        if m.is_answered(i):
            continue
        rec = by_folder[m.get(m.rows[i], "source")]
        row = rec.labels[int(m.get(m.rows[i], "frame"))]
        m.answer(i, {a: (None if v < 0 else int(v)) for a, v in zip(index.aus, row)}, answered_at="coder")


def chosen_from_manifest(manifest: Path, views: dict[str, str]) -> dict[str, set[int]]:
    by_folder = {folder: vid for vid, folder in views.items()}
    m = LabelManifest.read(manifest)
    out: dict[str, set[int]] = {}
    for i in m.frame_rows():
        out.setdefault(by_folder[m.get(m.rows[i], "source")], set()).add(int(m.get(m.rows[i], "frame")))
    return out


def uniform_frames(index: VideoIndex, ratio: float, seed: int) -> dict[str, set[int]]:
    sp = sparsify(index, max(1, round(100 / ratio)), seed)
    out: dict[str, set[int]] = {}
    for v, t in sp.key_frames:
        out.setdefault(index.videos[int(v)].video_id, set()).add(int(t))
    return out


def suggest(index: VideoIndex, views: dict[str, str], manifest: Path, total: int, seed: int, min_gap: float,
            run: Path | None = None) -> dict[str, set[int]]:
    """``suggest-labels`` into ``manifest`` (created if needed) until it lists ``total`` frames, then the coder
    fills them in. A manifest that already lists them (a resumed run) is only read."""
    if not manifest.is_file():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        declaring_manifest(index, manifest, views)
    missing = total - len(LabelManifest.read(manifest).frame_rows())
    if missing > 0:
        scorer = None
        if run is not None:
            from auspread.predict.model import load_model
            from auspread.predict.options import PredictOptions

            scorer = ModelScorer(load_model(run), PredictOptions(no_detect=True, prefetch=False, compile="off",
                                                                 quantize="off"))
        suggest_labels([str(manifest)], missing, manifest, scorer=scorer, seed=seed, frame_fps=index.fps,
                       min_gap=min_gap, detector=WholeFrame())
    code_frames(manifest, index, views)
    return chosen_from_manifest(manifest, views)


# --- the masked copy ------------------------------------------------------------------------------------------
def masked_copy(root: Path, dest: Path, labelable_index: VideoIndex, chosen: dict[str, set[int]]) -> Path:
    """``dest``: the dataset with every labelable frame that was not chosen set to 9 (unknown) in its AU_OCC CSV.
    Other subjects' CSVs are copied unchanged; frame and landmark folders are symlinks."""
    if (dest / "done.json").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        if child.name != "AUCoding" and not (dest / child.name).exists():
            os.symlink(child.resolve(), dest / child.name)
    occ_src = next(p for p in (root / "AUCoding").rglob("*.csv") if p.parent.name.upper() == "AU_OCC").parent
    occ = dest / "AUCoding" / "AU_OCC"
    occ.mkdir(parents=True, exist_ok=True)
    masked = {rec.video_id.replace("/", "_"): chosen.get(rec.video_id, set()) for rec in labelable_index.videos}
    for f in sorted(occ_src.glob("*.csv")):
        rows = list(csv.reader(f.open(newline="")))
        if f.stem in masked:
            keep = masked[f.stem]
            rows = [rows[0]] + [r if i in keep else [r[0]] + ["9"] * (len(r) - 1) for i, r in enumerate(rows[1:])]
        with (occ / f.name).open("w", newline="") as out:
            csv.writer(out, lineterminator="\n").writerows(rows)
    n = sum(len(v) for v in chosen.values())
    (dest / "done.json").write_text(json.dumps({"labelled_frames": n}))
    return dest


# --- cells ----------------------------------------------------------------------------------------------------
def train_cell(name: str, root: Path, method: str, seed: int, args) -> dict:
    out = args.out / "runs"
    summary = out / name / "results" / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    if args.quick:
        over = QUICK + (QUICK_KS if method == "ks" else [])
    else:
        over = budget_for(args.start) + (per_method(args.start)["ks"] if method == "ks" else [])
    over = over + args.set + ["data.dataset=bp4d", f"data.root={root}", "data.labels=100%", f"seed={seed}",
                              f"threads={args.threads}", f"out_dir={out}", f"name={name}"]
    resume = out / name if (out / name / "checkpoints" / "last.pt").is_file() else None
    t0 = time.time()
    s = run_training(load_config(REPO / "configs" / CONFIGS[method], over), progress=not args.quick,
                     resume=resume).to_dict()
    s["seconds"] = time.time() - t0
    s["test_auc"] = test_auc(out / name)
    summary.write_text(json.dumps(s, indent=2))
    return s


def test_auc(run: Path) -> float:
    """Mean over AUs of the test ROC-AUC, from the run's per-frame test predictions."""
    d = np.load(run / "results" / "test_predictions.npz")
    aucs = [roc_auc(d["probs"][:, j], d["labels"][:, j]) for j in range(d["probs"].shape[1])]
    return float(np.nanmean(aucs)) if not all(math.isnan(a) for a in aucs) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="folder of manifests, masked copies and runs")
    ap.add_argument("--ratios", default="1,0.5", help="label budgets in %% of the labelable training frames")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--methods", default="supervised,ks")
    ap.add_argument("--seeds", default="0,1", help="seeds of the selection and of training (the decisive cells)")
    ap.add_argument("--start", default="pretrained", choices=sorted(STARTS), help="as the label-ratio benchmarks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every cell")
    ap.add_argument("--min-gap", type=float, default=None,
                    help="suggest-labels --min-gap in seconds (default 1; 0.1 with --quick, whose videos last 2 s)")
    ap.add_argument("--masks-only", action="store_true", help="write manifests and masked copies, train nothing")
    ap.add_argument("--quick", action="store_true",
                    help="tiny preset, 32 px, 2 x 2 steps, ratio 10, supervised, seed 0")
    a = ap.parse_args()
    a.out = a.out or Path(tempfile.mkdtemp(prefix="guided-labels-"))
    if a.min_gap is None:
        a.min_gap = 0.1 if a.quick else 1.0
    preset = "tiny" if a.quick else "bp4d-like"
    ratios = [10.0] if a.quick else [float(r) for r in a.ratios.split(",")]
    methods = ["supervised"] if a.quick else [m.strip() for m in a.methods.split(",")]
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    strategies = [s.strip() for s in a.strategies.split(",")]
    root = dataset(preset)
    index = read_dataset("bp4d", root)
    views = frame_views(index, a.out / "views")
    results = []
    for ratio in ratios:
        for seed in seeds:
            lab, val_s = labelable(index, 1, 0.2, seed)
            uni = uniform_frames(lab, ratio, seed)
            n = sum(len(v) for v in uni.values())
            print(f"ratio {ratio:g}%, seed {seed}: {n} labelled frames of {lab.num_frames} labelable "
                  f"({len(lab.subjects())} subjects; validation subjects {val_s} keep their labels)", flush=True)
            tag = f"r{ratio:g}-s{seed}"
            for strategy in strategies:
                for method in methods:
                    if strategy == "uniform":
                        chosen = uni
                    elif strategy == "suggest":
                        chosen = suggest(lab, views, a.out / "manifests" / f"suggest-{tag}.csv", n, seed, a.min_gap)
                    else:
                        first_m = a.out / "manifests" / f"two-round-{method}-{tag}.csv"
                        round1_m = first_m.with_name(first_m.stem + "-round1.csv")
                        half = suggest(lab, views, round1_m, n // 2, seed, a.min_gap)
                        if a.masks_only:
                            masked_copy(root, a.out / "data" / f"two-round-{method}-{tag}-round1", lab, half)
                            print(f"  {strategy}/{method}: round 1 mask written; round 2 needs its run", flush=True)
                            continue
                        r1_root = masked_copy(root, a.out / "data" / f"two-round-{method}-{tag}-round1", lab, half)
                        r1 = f"two-round-round1-{method}-{tag}"
                        train_cell(r1, r1_root, method, seed, a)
                        if not first_m.is_file():
                            first_m.write_text(round1_m.read_text())
                        chosen = suggest(lab, views, first_m, n, seed, a.min_gap, run=a.out / "runs" / r1)
                    got = sum(len(v) for v in chosen.values())
                    if got != n:
                        print(f"  WARNING: {strategy} labelled {got} frames, not {n}: the budgets are not equal "
                              "(lower --min-gap?)", flush=True)
                    who = method if strategy == "two-round" else "all"  # uniform/suggest masks serve both methods
                    data = masked_copy(root, a.out / "data" / f"{strategy}-{who}-{tag}", lab, chosen)
                    if a.masks_only:
                        print(f"  {strategy}: {got} frames → {data}", flush=True)
                        continue
                    s = train_cell(f"{strategy}-{method}-{tag}", data, method, seed, a)
                    results.append({"ratio": ratio, "seed": seed, "strategy": strategy, "method": method,
                                    "labelled": got, "test_f1": s["test_f1"], "test_auc": s.get("test_auc"),
                                    "minutes": s.get("seconds", 0) / 60, "precision": s.get("precision"),
                                    "cpu": s.get("cpu")})
                    print(f"  {strategy:9s} {method:10s} {got:5d} frames: test F1 {100 * s['test_f1']:.1f}, "
                          f"ROC-AUC {100 * (s.get('test_auc') or float('nan')):.1f} "
                          f"({s.get('seconds', 0) / 60:.1f} min, {s.get('precision')})", flush=True)
    if results:
        (a.out / "results.json").write_text(json.dumps(results, indent=2))
        print("\n| ratio | method | strategy | labelled frames | test F1 | test ROC-AUC | seeds |")
        print("|---:|---|---|---:|---:|---:|---:|")
        keys = sorted({(r["ratio"], r["method"], r["strategy"]) for r in results}, key=lambda k: (-k[0], k[1], k[2]))
        for ratio, method, strategy in keys:
            rs = [r for r in results if (r["ratio"], r["method"], r["strategy"]) == (ratio, method, strategy)]
            f1 = np.mean([r["test_f1"] for r in rs])
            auc = np.nanmean([r["test_auc"] if r["test_auc"] is not None else np.nan for r in rs])
            print(f"| {ratio:g}% | {method} | {strategy} | {rs[0]['labelled']} | {100 * f1:.1f} | {100 * auc:.1f} "
                  f"| {len(rs)} |")
    print(f"\nout: {a.out}")


if __name__ == "__main__":
    main()
