"""Is `small` easier after person-specific normalisation? A linear probe on pixels (issue 18, session 17).

OpenFace-style normalisation subtracts each video's median so that identity drops out. This fits the probe of
``diag_probe.py`` (standardised inputs, weighted BCE of Eq. 3, 300 full-batch Adam steps) on the fold's labelled
training frames, once on raw pixels (area-downscaled to ``--res``) and once on pixels minus their video's median
frame, and prints the test subjects' F1 at 0.5, ROC-AUC and oracle F1 (a bound). Seconds per row on 1 thread.

    python benchmarks/diag_pixel_probe.py --preset small --res 24 --every 20   # 5% labels
    python benchmarks/diag_pixel_probe.py --preset small --res 24 --every 1    # every frame labelled
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from diag_probe import scores

from auspread.data.labels import sparsify
from auspread.engine.config import load_config
from auspread.engine.data import dataset_info, open_store, read_index, split_index
from auspread.losses.weighted_bce import weighted_bce_with_logits


def video_pixels(index, data_cfg, res: int) -> list[np.ndarray]:
    """Every frame of every video as a flat ``(T, 3·res·res)`` float array in [0, 1]."""
    store = open_store(index, data_cfg, False)
    out = []
    for v in range(len(index.videos)):
        f = torch.from_numpy(store.frames(v, np.arange(store.num_frames(v))).astype(np.float32) / 255.0)
        f = nn.functional.interpolate(f.permute(0, 3, 1, 2), size=(res, res), mode="area")
        out.append(f.reshape(len(f), -1).numpy())
    return out


def probe(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, w: torch.Tensor) -> np.ndarray:
    xt, xs = torch.from_numpy(x), torch.from_numpy(x_test)
    mean, std = xt.mean(0), xt.std(0).clamp(min=1e-6)
    xt, xs = (xt - mean) / std, (xs - mean) / std
    head = nn.Linear(xt.shape[1], y.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=0.01, weight_decay=1e-3)
    yt = torch.from_numpy(y.astype(np.float32))
    for _ in range(300):
        opt.zero_grad(set_to_none=True)
        weighted_bce_with_logits(head(xt), yt, w).backward()
        opt.step()
    with torch.no_grad():
        return torch.sigmoid(head(xs)).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--res", type=int, default=24, help="pixels per side after area downscaling")
    ap.add_argument("--every", type=int, default=20, help="one label every N frames (20 = 5%%)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = load_config("ks_synthetic", [f"data.synth_preset={a.preset}"])
    splits = split_index(read_index(cfg.data, progress=False), cfg.data, cfg.seed)
    sparse = sparsify(splits.train, a.every, cfg.data.label_seed)
    train, test = video_pixels(splits.train, cfg.data, a.res), video_pixels(splits.test, cfg.data, a.res)
    kf = sparse.key_frames
    y = np.stack([splits.train.videos[v].labels[t] for v, t in kf])
    y_test = np.concatenate([v.labels for v in splits.test.videos])
    w = dataset_info(sparse.index, cfg.data).class_weights
    print(f"| input ({a.preset}, {a.res}x{a.res} RGB, {len(kf)} labelled frames) | test F1 @0.5 | ROC-AUC | oracle F1 |")
    print("|---|---:|---:|---:|")
    for name, norm in [("raw pixels", lambda p: p), ("pixels - video median", lambda p: p - np.median(p, 0, keepdims=True))]:
        normed = [norm(p) for p in train]
        x = np.stack([normed[v][t] for v, t in kf])
        p = probe(x, y, np.concatenate([norm(p) for p in test]), w)
        s = scores(p, y_test)
        print(f"| {name} | {s['f1']:.1f} | {s['auc']:.3f} | {s['oracle']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
