"""What a frozen trunk's features tell about AUs, threshold-free (issue 18 diagnosis of the linear probe).

`auspread pretrain --probe` reports the mean F1 at threshold 0.5 of a linear head on frozen features. A low F1 can
come from features without AU information or from a head whose probabilities sit on the wrong side of 0.5. For each
trunk given (``random`` = a randomly initialised ResNet-18, else a trunk.pt), this fits the same probe as
``linear_probe`` (standardised features, weighted BCE of Eq. 3, full-batch Adam) on the fold's labelled training
frames and prints, on every ``--stride``-th frame of the validation subjects: mean F1 at 0.5, mean ROC-AUC over AUs,
the oracle F1 (best threshold per AU chosen on those frames: a bound, never a score), the mean probability and the
base rate; and the ROC-AUC on the training frames themselves (how well the head fits).

    python benchmarks/diag_probe.py random ~/.cache/auspread/pretrain/<name>/trunk.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from auspread.data.labels import sparsify
from auspread.engine.data import dataset_info, eval_transform, open_store, read_index, split_index
from auspread.evaluation.ranking import best_threshold_f1, roc_auc
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.pretrain.byol import make_trunk
from auspread.pretrain.config import load_pretrain_config
from auspread.pretrain.run import _key_frame_features


def features(trunk: nn.Module, store, index, frames: np.ndarray, tf) -> tuple[torch.Tensor, np.ndarray]:
    """Trunk features and labels of ``frames`` (rows of (video, t)): the probe's own feature extraction."""
    x, y = _key_frame_features(trunk, store, index, frames, tf, torch.device("cpu"))
    return x, y.numpy().astype(np.int64)


def scores(p: np.ndarray, y: np.ndarray) -> dict:
    f1, auc, oracle = [], [], []
    for k in range(y.shape[1]):
        m = y[:, k] >= 0
        pk, yk = p[m, k], y[m, k]
        tp, fp, fn = ((pk >= 0.5) & (yk == 1)).sum(), ((pk >= 0.5) & (yk == 0)).sum(), ((pk < 0.5) & (yk == 1)).sum()
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
        auc.append(roc_auc(pk, yk))
        oracle.append(best_threshold_f1(pk, yk))
    return {"f1": 100 * float(np.mean(f1)), "auc": float(np.nanmean(auc)), "oracle": 100 * float(np.nanmean(oracle)),
            "prob": float(p.mean()), "base": float((y == 1).sum() / max((y >= 0).sum(), 1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trunks", nargs="+", help="'random' or trunk.pt files")
    ap.add_argument("--stride", type=int, default=4, help="every stride-th validation frame")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pretrain config overrides")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_pretrain_config(None, ["data.synth_preset=bp4d-like", "data.fold=1", "data.image_size=64", "data.labels=5%"] + a.set)
    index = read_index(cfg.data, progress=False)
    splits = split_index(index, cfg.data, cfg.seed)
    sparse = sparsify(splits.train, cfg.data.labels, cfg.data.label_seed)
    tf = eval_transform(cfg.data)
    train_store, val_store = open_store(splits.train, cfg.data, False), open_store(splits.val, cfg.data, False)
    val_frames = np.array([(v, t) for v, rec in enumerate(splits.val.videos) for t in range(0, len(rec), a.stride)])
    w = dataset_info(sparse.index, cfg.data).class_weights
    print("| trunk | train AUC | val F1 @0.5 | val ROC-AUC | val oracle F1 (bound) | val mean prob | base rate | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec in a.trunks:
        t0 = time.time()
        torch.manual_seed(cfg.seed)
        net = make_trunk(cfg.recipe.arch, None if spec == "random" else spec).eval()
        x, y = features(net, train_store, splits.train, sparse.key_frames, tf)
        xv, yv = features(net, val_store, splits.val, val_frames, tf)
        mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
        head = nn.Linear(x.shape[1], y.shape[1])
        opt = torch.optim.Adam(head.parameters(), lr=cfg.probe.lr, weight_decay=cfg.probe.weight_decay)
        yt = torch.from_numpy(y.astype(np.float32))
        for _ in range(cfg.probe.steps):
            opt.zero_grad(set_to_none=True)
            weighted_bce_with_logits(head((x - mean) / std), yt, w).backward()
            opt.step()
        with torch.no_grad():
            ptr = torch.sigmoid(head((x - mean) / std)).numpy()
            pv = torch.sigmoid(head((xv - mean) / std)).numpy()
        tr, va = scores(ptr, y), scores(pv, yv)
        name = "random" if spec == "random" else spec.split("/")[-2][-12:] + "/" + spec.split("/")[-1]
        print(f"| {name} | {tr['auc']:.3f} | {va['f1']:.1f} | {va['auc']:.3f} | {va['oracle']:.1f} | {va['prob']:.3f} | "
              f"{va['base']:.3f} | {time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
