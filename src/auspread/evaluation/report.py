"""Reports of an evaluation: terminal table, markdown, CSV, per-AU F1 bar chart, per-frame predictions.

All files are written atomically (``auspread.io``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from auspread.evaluation.dense import DensePredictions
from auspread.evaluation.metrics import AUScores
from auspread.io import atomic_path, atomic_write_bytes, atomic_write_text


def _pct(x: float) -> str:
    return "  n/a" if x is None or not np.isfinite(x) else f"{100 * x:5.1f}"


def _rows(s: AUScores) -> list[list[str]]:
    rows = []
    for i, a in enumerate(s.aus):
        rows.append([f"AU{a}", _pct(s.f1[i]), _pct(s.precision[i]), _pct(s.recall[i]), _pct(s.accuracy[i]),
                     str(int(s.support[i])), str(int(s.positives[i]))])
    rows.append(["mean", _pct(s.mean_f1), "", "", _pct(s.mean_accuracy), "", ""])
    return rows


_HEAD = ["AU", "F1", "precision", "recall", "accuracy", "frames", "positives"]


def format_table(scores: AUScores, title: str | None = None) -> str:
    """A fixed-width table for the terminal (percentages)."""
    rows = [_HEAD] + _rows(scores)
    widths = [max(len(r[c]) for r in rows) for c in range(len(_HEAD))]
    lines = [title] if title else []
    fmt = lambda r: "  ".join(v.rjust(w) if c else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines.append(fmt(rows[0]))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows[1:-1]:
        lines.append(fmt(r))
    lines.append("  ".join("-" * w for w in widths))
    lines.append(fmt(rows[-1]))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]], bold: set[tuple[int, int]] = frozenset()) -> str:
    """A Markdown table: first column left-aligned, the others right-aligned; ``bold`` holds ``(row, column)``
    cells to set in bold. The one table writer of reports, cross-validation and studies."""
    cells = [[f"**{c}**" if (i, j) in bold else c for j, c in enumerate(row)] for i, row in enumerate(rows)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def format_markdown(scores: AUScores, title: str | None = None, notes: list[str] | None = None) -> str:
    out = [f"# {title}", ""] if title else []
    for n in notes or []:
        out.append(f"- {n}")
    if notes:
        out.append("")
    out.append(markdown_table(_HEAD, [[v.strip() for v in r] for r in _rows(scores)]))
    out.append("")
    out.append("F1, precision, recall and accuracy in %, frame-based at threshold 0.5, unknown labels masked; "
               "mean = unweighted mean over AUs.")
    return "\n".join(out) + "\n"


def scores_csv(scores: AUScores) -> str:
    lines = ["au,f1,precision,recall,accuracy,support,positives"]
    for i, a in enumerate(scores.aus):
        vals = [scores.f1[i], scores.precision[i], scores.recall[i], scores.accuracy[i]]
        lines.append(f"AU{a}," + ",".join("" if not np.isfinite(v) else f"{v:.6f}" for v in vals)
                     + f",{int(scores.support[i])},{int(scores.positives[i])}")
    lines.append(f"mean,{scores.mean_f1:.6f},,,{scores.mean_accuracy:.6f},,")
    return "\n".join(lines) + "\n"


def plot_f1_bars(scores: AUScores, path: str | Path, title: str = "F1 per AU") -> None:
    """A bar chart of per-AU F1 with the mean as a dashed line (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    f1 = np.nan_to_num(np.asarray(scores.f1, dtype=float)) * 100
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(f1) + 1.5), 3.2), dpi=120)
    x = np.arange(len(f1))
    ax.bar(x, f1, color="#4C72B0")
    ax.axhline(100 * scores.mean_f1, color="#C44E52", ls="--", lw=1, label=f"mean {100 * scores.mean_f1:.1f}")
    ax.set_xticks(x, [f"AU{a}" for a in scores.aus], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_predictions(preds: DensePredictions, aus: tuple[int, ...], out_dir: str | Path, stem: str = "predictions") -> None:
    """Per-frame probabilities and labels: ``<stem>.csv`` (one row per frame) and ``<stem>.npz``
    (``video_ids``, ``offsets`` into the concatenated ``probs``/``labels``/``frame_numbers``)."""
    out_dir = Path(out_dir)
    cols = [f"AU{a}" for a in aus]
    lines = ["video_id,frame,frame_number," + ",".join(f"p_{c}" for c in cols) + "," + ",".join(f"y_{c}" for c in cols)]
    for vid, p, y, fn in zip(preds.video_ids, preds.probs, preds.labels, preds.frame_numbers):
        for t in range(len(p)):
            lines.append(f"{vid},{t},{int(fn[t])}," + ",".join(f"{v:.4f}" for v in p[t]) + "," + ",".join(str(int(v)) for v in y[t]))
    atomic_write_text(out_dir / f"{stem}.csv", "\n".join(lines) + "\n")
    offsets = np.cumsum([0] + [len(p) for p in preds.probs]).astype(np.int64)
    cat = lambda xs, w, dt: np.concatenate(xs).astype(dt) if xs else np.zeros((0, w), dt)  # noqa: E731
    with atomic_path(out_dir / f"{stem}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f, video_ids=np.array(preds.video_ids), offsets=offsets, aus=np.array(aus, dtype=np.int64),
                probs=cat(preds.probs, len(aus), np.float32), labels=cat(preds.labels, len(aus), np.int8),
                frame_numbers=np.concatenate(preds.frame_numbers).astype(np.int64) if preds.frame_numbers else np.zeros(0, np.int64),
            )


def write_results(out_dir: str | Path, scores: AUScores, *, split: str, title: str, notes: list[str] | None = None,
                  predictions: DensePredictions | None = None, extra: dict | None = None) -> dict[str, Path]:
    """Write ``<split>_f1.md``, ``<split>_f1.csv``, ``<split>_f1.png``, ``<split>_scores.json`` and per-frame
    predictions into ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / f"{split}_f1.md",
        "csv": out_dir / f"{split}_f1.csv",
        "plot": out_dir / f"{split}_f1.png",
        "json": out_dir / f"{split}_scores.json",
    }
    atomic_write_text(paths["markdown"], format_markdown(scores, title, notes))
    atomic_write_text(paths["csv"], scores_csv(scores))
    plot_f1_bars(scores, paths["plot"], title=title)
    atomic_write_text(paths["json"], json.dumps({**scores.to_dict(), "split": split, **(extra or {})}, indent=2))
    if predictions is not None:
        write_predictions(predictions, scores.aus, out_dir, stem=f"{split}_predictions")
        paths["predictions_csv"] = out_dir / f"{split}_predictions.csv"
        paths["predictions_npz"] = out_dir / f"{split}_predictions.npz"
    return paths
