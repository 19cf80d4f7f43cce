"""AU timeline PNG: one strip per AU, probability over time, occurrence (``AUxx_c = 1``) shaded, frames without a
face hatched grey. With several faces, the face with the most rows is drawn (``face_id`` picks another)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from auspread.evaluation.thresholds import per_au

from auspread.io import atomic_path


def plot_timeline(df: pd.DataFrame, path: str | Path, title: str = "", face_id: int | None = None,
                  threshold: float | Sequence[float] = 0.5) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if "face_id" in df.columns:
        ids = df["face_id"].dropna()
        if face_id is None and len(ids):
            face_id = int(ids.value_counts().idxmax())
        keep = df["face_id"].isna() | (df["face_id"] == face_id)
        df = df[keep].drop_duplicates("frame")
    codes = [c[:-2] for c in df.columns if c.endswith("_p")]
    thr = per_au(threshold, len(codes))
    t = df["timestamp"].to_numpy(float)
    no_face = df["success"].fillna(0).to_numpy(int) == 0
    fig, axes = plt.subplots(len(codes), 1, figsize=(10, 0.7 * len(codes) + 1.2), sharex=True, squeeze=False)
    for ax, code, th in zip(axes[:, 0], codes, thr):
        p = df[f"{code}_p"].to_numpy(float)
        occ = df[f"{code}_c"].fillna(0).to_numpy(int) == 1
        ax.fill_between(t, 0, 1, where=occ, step="mid", color="tab:orange", alpha=0.35, linewidth=0)
        ax.fill_between(t, 0, 1, where=no_face, step="mid", color="0.6", alpha=0.4, hatch="//", linewidth=0)
        ax.plot(t, p, color="tab:blue", linewidth=1)
        ax.axhline(th, color="0.3", linewidth=0.5, linestyle=":")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(code, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title or "AU probabilities (orange: occurrence, grey: no face)", fontsize=9)
    fig.tight_layout(h_pad=0.1)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    from auspread.io import publish

    return publish(path)
