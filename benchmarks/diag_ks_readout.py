"""What each Knowledge-Spreader branch has learned, read out separately (issue 5 diagnosis).

KS predicts the mean of the Spatial Teacher S_a and the Temporal Teacher T_b probabilities (§6.3). A mean F1 of
0 at threshold 0.5 can hide a branch that has learned to *rank* frames but is calibrated below 0.5, or a good S_a
whose probabilities are pulled under 0.5 by a T_b still at the base rates. For every run given (KS or any frame
method), this evaluates the best (or ``--checkpoint last``) checkpoint on the test split (every frame; the run's own data settings) and prints,
per readout:

* mean F1 at threshold 0.5 (the protocol),
* mean ROC-AUC over AUs (threshold-free: 0.5 = no ranking information),
* the mean over AUs of the *oracle* F1 at the best threshold per AU chosen on the test frames themselves (an upper
  bound that shows how much a recalibration could give; never a result to report as a score),
* the mean predicted probability and the base rate;
* with ``--val-thresholds``: the mean F1 on the test split at per-AU thresholds chosen on the *validation* subjects
  (the best-F1 cut of each readout there, applied unchanged to the test subjects): an honest recalibration, not
  the protocol's 0.5, that shows how much of a gap at 0.5 a threshold chosen on held-out people would close.

Readouts: ``ensemble`` (the prediction), ``S_a`` (branch A alone), ``T_b`` (branch B alone, dense over every key
position), ``S_b`` (branch B's Spatial Student(s) frame by frame, before the temporal transformer; not part of the
prediction); a non-KS run has ``model`` only. Computed in one pass over the test videos.

    python benchmarks/diag_ks_readout.py runs/ks-table/ks-l10 runs/ks-table/supervised-l10
    python benchmarks/diag_ks_readout.py runs/ks-table/ks-l10 --val-thresholds   # reads val, then test
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from auspread.data.sampling import video_chunks
from auspread.engine.checkpoint import load_checkpoint
from auspread.engine.config import apply_overrides, build_config
from auspread.engine.data import eval_transform, info_from_dict, open_store, read_index, split_index
from auspread.engine.loop import autocast_factory, seed_everything
from auspread.engine.run import _eval_model, build_method, check_run_dir
from auspread.evaluation.ranking import best_threshold, best_threshold_f1, f1_at, roc_auc


def readout_scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    """``(N, U)`` probabilities and labels (−1 masked) → the summary numbers of one readout."""
    f1, auc, oracle = [], [], []
    for u in range(labels.shape[1]):
        y, p = labels[:, u], probs[:, u]
        known = y >= 0
        yk, pk = y[known], p[known]
        pred = pk >= 0.5
        tp, fp, fn = int((pred & (yk == 1)).sum()), int((pred & (yk == 0)).sum()), int((~pred & (yk == 1)).sum())
        f1.append(2 * tp / max(1, 2 * tp + fp + fn))
        auc.append(roc_auc(pk, yk))
        oracle.append(best_threshold_f1(pk, yk))
    known = labels >= 0
    return {
        "f1": float(np.mean(f1)), "auc": float(np.nanmean(auc)), "oracle_f1": float(np.nanmean(oracle)),
        "mean_prob": float(probs[known].mean()), "base_rate": float(labels[known].mean()),
        "per_au_f1": [round(x, 4) for x in f1], "per_au_auc": [round(x, 4) for x in auc],
    }


@torch.no_grad()
def video_readouts(method, chunks, num_frames: int) -> dict[str, torch.Tensor]:
    """Per-frame probabilities ``(T, U)`` of each readout of one video."""
    if getattr(method, "name", "") != "ks":
        return {"model": method.predict_video(chunks, num_frames).float()}
    net = method.net
    sa, fb = [], []
    for x in chunks:
        sa.append(torch.sigmoid(net.spatial_head(net.features_a(x)).float()))
        fb.append(net.features_b(x))
    sa_p = torch.cat(sa)[:num_frames]
    fb_all = torch.cat(fb)[:num_frames]
    tb_p = method.dense_temporal_probs(fb_all).float()
    # S_b: the Spatial Student(s) on backbone B's features, frame by frame (mean over the per-position students):
    # where T_b is weaker than S_a, this says whether backbone B or the temporal transformer loses the evidence
    students = range(1 if net.shared_students else net.clip_len)
    sb_p = torch.stack([torch.sigmoid(net.student(j)(fb_all)[1].float()) for j in students]).mean(0)
    return {"ensemble": 0.5 * (sa_p + tb_p), "S_a": sa_p, "T_b": tb_p, "S_b": sb_p}


def val_threshold_f1(val_probs: np.ndarray, val_labels: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict:
    """Per-AU best-F1 thresholds chosen on the validation frames, applied to other frames: mean F1 and thresholds.

    An AU without validation positives keeps 0.5."""
    th, f1 = [], []
    for u in range(labels.shape[1]):
        t = best_threshold(val_probs[:, u], val_labels[:, u])[0]
        t = 0.5 if np.isnan(t) else t
        th.append(t)
        f1.append(f1_at(probs[:, u], labels[:, u], t))
    return {"f1_val_thresholds": float(np.mean(f1)), "val_thresholds": [round(x, 4) for x in th],
            "per_au_f1_val_thresholds": [round(x, 4) for x in f1]}


def diagnose(run_dir: Path, split: str, threads: int, checkpoint: str = "best", keep_probs: bool = False) -> dict:
    run_dir = check_run_dir(run_dir, need=f"{checkpoint}.pt")
    state = load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt")
    cfg = build_config(apply_overrides(copy.deepcopy(state["config"]), []))
    torch.set_num_threads(threads)
    info = info_from_dict(state["dataset_info"])
    splits = split_index(read_index(cfg.data, progress=False), cfg.data, cfg.seed)
    target = {"test": splits.test, "val": splits.val}[split]
    if target is None or not target.videos:
        raise SystemExit(f"{run_dir}: this run has no {split} subjects (data.val_fraction=0 or select_on=test); "
                         f"--split val and --val-thresholds need validation subjects")
    seed_everything(cfg.seed)
    model = _eval_model(build_method(cfg, info, None), state).eval()
    store = open_store(target, cfg.data, progress=False)
    tf = eval_transform(cfg.data)
    amp = autocast_factory(cfg.optim.amp, torch.device("cpu"))
    out: dict[str, list[np.ndarray]] = {}
    labels = []
    for vi, rec in enumerate(target.videos):
        with (amp() if amp else torch.autocast("cpu", enabled=False)):
            r = video_readouts(model, video_chunks(store, vi, tf, 64, "cpu"), len(rec))
        for k, v in r.items():
            out.setdefault(k, []).append(v.numpy())
        labels.append(rec.labels.astype(np.int64))
    y = np.concatenate(labels)
    res = {k: readout_scores(np.concatenate(v), y) for k, v in out.items()}
    if keep_probs:
        res["_probs"] = {k: np.concatenate(v) for k, v in out.items()}
        res["_labels"] = y
    res["_run"] = str(run_dir)
    res["_best_epoch"] = state["epoch"]
    res["_aus"] = list(info.aus)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", default="best", choices=["best", "last"],
                    help="best (selected on validation, what the protocol tests) or last (the final epoch)")
    ap.add_argument("--json", type=Path, default=None, help="also write every number (per AU too) to this file")
    ap.add_argument("--val-thresholds", action="store_true",
                    help="also score --split at per-AU thresholds chosen on the validation subjects")
    a = ap.parse_args()
    if a.val_thresholds and a.split == "val":
        ap.error("--val-thresholds chooses thresholds on val: score them on --split test")
    everything = []
    extra = " F1 @val thresholds |" if a.val_thresholds else ""
    print(f"| run | readout | F1 @0.5 | ROC-AUC | oracle F1 (best threshold on {a.split}: a bound) | mean prob | base rate |{extra}")
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|" if extra else ""))
    for run in a.runs:
        res = diagnose(run, a.split, a.threads, a.checkpoint, keep_probs=a.val_thresholds)
        if a.val_thresholds:
            val = diagnose(run, "val", a.threads, a.checkpoint, keep_probs=True)
            for k in res["_probs"]:
                res[k].update(val_threshold_f1(val["_probs"][k], val["_labels"], res["_probs"][k], res["_labels"]))
            res.pop("_probs"), res.pop("_labels")
        everything.append(res)
        for k, r in res.items():
            if k.startswith("_"):
                continue
            tail = f" {100 * r['f1_val_thresholds']:.1f} |" if a.val_thresholds else ""
            print(f"| {run.name} | {k} | {100 * r['f1']:.1f} | {r['auc']:.3f} | {100 * r['oracle_f1']:.1f} | "
                  f"{r['mean_prob']:.3f} | {r['base_rate']:.3f} |{tail}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    sys.exit(main())
