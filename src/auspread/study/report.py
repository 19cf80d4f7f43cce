"""A study's report: aggregates over folds × seeds, Markdown/HTML tables (KS supplement Tables 1 and 5), the
F1-vs-labels curve (KS Fig. 4), and the paper's numbers for reference."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
import os
from pathlib import Path

from auspread.errors import DataError
from auspread.evaluation.report import markdown_table
from auspread.io import atomic_write_bytes, atomic_write_text
from auspread.study.paper import PAPER_RATIOS, PAPER_TABLE1, paper_dataset
from auspread.study.results import RESULTS, STUDY, load_results
from auspread.study.spec import StudySpec, _data_section


# --- the report ------------------------------------------------------------------------------------------------
def _fmt_ratio(r: float) -> str:
    return f"{r:g}%"


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def summarise(records: list[dict], methods: list[str] | None = None) -> dict:
    """Aggregates over folds × seeds: ``{"methods", "ratios", "aus", "mean": {(m, r): (mean, std, n)},
    "per_au": {(m, r): {au: mean}}}``, F1 in [0, 1]."""
    seen = [r["method"] for r in records]
    order = list(dict.fromkeys((methods or []) + seen))
    order = [m for m in order if m in seen]
    ratios = sorted({float(r["ratio"]) for r in records})
    aus: list[str] = []
    for r in records:
        for a in r.get("per_au") or {}:
            if a not in aus:
                aus.append(a)
    # numeric AU order (AU1, AU2, ..., AU10): results.jsonl stores per_au with sorted keys (AU1, AU10, AU12, ...)
    aus.sort(key=lambda a: (0, int(a[2:]), "") if a[:2].upper() == "AU" and a[2:].isdigit() else (1, 0, a))
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], float(r["ratio"])), []).append(r)
    mean = {k: _mean_std([g["test_f1"] for g in v]) for k, v in groups.items()}
    per_au = {}
    for k, v in groups.items():
        per_au[k] = {}
        for a in aus:
            vals = [g["per_au"][a] for g in v if a in (g.get("per_au") or {}) and g["per_au"][a] is not None
                    and not (isinstance(g["per_au"][a], float) and math.isnan(g["per_au"][a]))]
            per_au[k][a] = sum(vals) / len(vals) if vals else float("nan")
    trivial = [float(r["test_f1_all_positive"]) for r in records if r.get("test_f1_all_positive") is not None]
    calibrated = {}  # a cell's mean only when every one of its runs has chosen validation thresholds
    for k, v in groups.items():
        vals = [_run_value(g, "test_f1_val_thresholds") for g in v]
        if vals and all(x is not None for x in vals):
            calibrated[k] = _mean_std([float(x) for x in vals])
    return {"methods": order, "ratios": ratios, "aus": aus, "mean": mean, "per_au": per_au,
            "all_positive": sum(trivial) / len(trivial) if trivial else None, "mean_val_thresholds": calibrated}


def _run_value(record: dict, key: str):
    """``record[key]``, else the cell's run folder's ``results/summary.json`` (cells recorded before the record
    carried the key, or calibrated afterwards with ``auspread calibrate``), else None."""
    if record.get(key) is not None:
        return record[key]
    try:
        return json.loads((Path(str(record.get("run_dir"))) / "results" / "summary.json").read_text()).get(key)
    except (OSError, ValueError):
        return None


def _cell_text(ms: tuple[float, float, int] | None, show_std: bool) -> str:
    if ms is None:
        return "–"
    mean, std, n = ms
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if show_std and n > 1 else f"{100 * mean:.1f}"


def _table(header: list[str], rows: list[list[str]], bold: set[tuple[int, int]], fmt: str) -> str:
    if fmt == "md":
        return markdown_table(header, rows, bold)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        tds = "".join((f"<td><b>{html.escape(c)}</b></td>" if (i, j) in bold else f"<td>{html.escape(c)}</td>")
                      for j, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def mean_f1_table(summary: dict, fmt: str = "md", key: str = "mean") -> str:
    """Methods × label ratios, mean F1 (×100) over folds and seeds; the best of each column in bold (Table 1).
    ``key="mean_val_thresholds"``: the F1 at per-AU thresholds chosen on the validation subjects instead."""
    methods, ratios, mean = summary["methods"], summary["ratios"], summary[key]
    show_std = any(v[2] > 1 for v in mean.values())
    rows, bold = [], set()
    for j, r in enumerate(ratios):
        vals = [(mean[(m, r)][0], i) for i, m in enumerate(methods) if (m, r) in mean]
        if vals:
            best = max(v for v, _ in vals)
            bold |= {(i, j + 1) for v, i in vals if v == best}
    for m in methods:
        rows.append([m] + [_cell_text(mean.get((m, r)), show_std) for r in ratios])
    return _table(["method"] + [_fmt_ratio(r) for r in ratios], rows, bold, fmt)


def per_au_table(summary: dict, ratio: float, fmt: str = "md") -> str:
    """Methods × AUs at one label ratio, F1 (×100), plus the mean; best of each column in bold (Table 5)."""
    methods = [m for m in summary["methods"] if (m, ratio) in summary["mean"]]
    aus = summary["aus"]
    grid = [[summary["per_au"][(m, ratio)].get(a, float("nan")) for a in aus] + [summary["mean"][(m, ratio)][0]]
            for m in methods]
    bold = set()
    for j in range(len(aus) + 1):
        col = [row[j] for row in grid if not math.isnan(row[j])]
        if col:
            best = max(col)
            bold |= {(i, j + 1) for i, row in enumerate(grid) if row[j] == best}
    rows = [[m] + ["–" if math.isnan(v) else f"{100 * v:.1f}" for v in grid[i]] for i, m in enumerate(methods)]
    return _table(["method"] + aus + ["avg"], rows, bold, fmt)


def plot_curves(summary: dict, path: Path, title: str) -> None:
    """Mean F1 (×100) against the label ratio (log axis), one line per method, ±1 std bars over folds×seeds (Fig. 4);
    where cells chose validation thresholds, a second panel shows the F1 at them (same axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mean", "threshold 0.5 (the papers' protocol)")]
    if summary.get("mean_val_thresholds"):
        panels.append(("mean_val_thresholds", "per-AU thresholds chosen on validation subjects"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), dpi=120, sharey=True, squeeze=False)
    markers = "osD^vP*Xh<>"
    for ax, (key, subtitle) in zip(axes[0], panels):
        for i, m in enumerate(summary["methods"]):
            pts = [(r, *summary[key][(m, r)]) for r in summary["ratios"] if (m, r) in summary[key]]
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ys = [100 * p[1] for p in pts]
            es = [100 * p[2] for p in pts]
            ax.errorbar(xs, ys, yerr=es if any(es) else None, marker=markers[i % len(markers)], capsize=3, label=m,
                        color=f"C{i}")
        if summary.get("all_positive") is not None:
            ax.axhline(100 * summary["all_positive"], color="grey", linestyle="--", linewidth=1,
                       label="all-positive predictor")
        ax.set_xscale("log")
        ax.set_xticks(summary["ratios"])
        ax.set_xticklabels([_fmt_ratio(r) for r in summary["ratios"]])
        ax.minorticks_off()
        ax.set_xlabel("labelled frames (label ratio)")
        ax.set_title(title if len(panels) == 1 else f"{title}\n{subtitle}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0, 0].set_ylabel("mean F1 over AUs (%)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _describe(spec: StudySpec | None, records: list[dict]) -> list[str]:
    lines = []
    if spec is not None:
        data = _data_section(spec)
        ds = data.get("dataset", "synthetic")
        if ds == "synthetic":
            ds += f" ({data.get('synth_preset', 'small')} preset)"
        keys = {c.key for c in spec.cells()}
        done = sum(r.get("key") in keys for r in records)
        lines.append(f"Dataset: **{ds}**; methods {', '.join(spec.methods)}; label ratios {', '.join(spec.labels)}; "
                     f"folds {', '.join(map(str, spec.folds))}; seeds {', '.join(map(str, spec.seeds))}.")
        lines.append(f"Cells finished: **{done} of {len(keys)}**" + (" (the study is incomplete: run the same "
                     "command again to finish it)" if done < len(keys) else "")
                     + (f"; the tables also show {len(records) - done} cells of earlier commands on this folder."
                        if len(records) > done else "."))
        if spec.overrides:
            lines.append("Overrides: " + ", ".join(f"`{o}`" for o in spec.overrides) + ".")
    lines.append(_machines(records))
    hours = sum(float(r.get("seconds") or 0) for r in records) / 3600
    lines.append(f"Training + testing time of the finished cells: {hours:.2f} h (sum over cells).")
    sel = sorted({str(r.get("selected_on")) for r in records})
    lines.append("F1 is the test-fold F1 at threshold 0.5 of the checkpoint selected on "
                 f"{' / '.join(sel)} (see each run's `results/`), ×100; mean ± std over folds × seeds when there "
                 "are several.")
    return lines


def _cell_machine(record: dict) -> tuple[str, str]:
    """(precision, CPU) of one cell: its record, else its run folder's ``results/summary.json`` (cells recorded
    before the record carried them), else ``"not recorded"``."""
    prec, cpu = record.get("precision"), record.get("cpu")
    if prec is None or cpu is None:
        try:
            d = json.loads((Path(str(record.get("run_dir"))) / "results" / "summary.json").read_text())
            prec, cpu = prec or d.get("precision"), cpu or d.get("cpu")
        except (OSError, ValueError):
            pass
    prec = {"off": "fp32"}.get(prec, prec) if prec else "precision not recorded"
    return prec, cpu or "CPU not recorded"


def _machines(records: list[dict]) -> str:
    """One line: the training precision and CPU of the cells, with how many cells each (results differ slightly
    between bf16 and fp32, and speeds between CPUs)."""
    counts = Counter(_cell_machine(r) for r in records)
    parts = [f"{p} on {c} ({n} cell{'s' if n > 1 else ''})" for (p, c), n in sorted(counts.items())]
    return "Training precision and CPU: " + "; ".join(parts) + "."


def _trivial_line(summary: dict) -> list[str]:
    if summary.get("all_positive") is None:
        return []
    return [f"The trivial all-positive predictor (every AU always on) scores **{100 * summary['all_positive']:.1f}** "
            "on the same test frames (mean over the cells' folds): a cell below it has not learned more than the "
            "base rates."]


def write_report(out_dir: str | Path, spec: StudySpec | None = None) -> dict[str, Path]:
    """``report.md``, ``report.html`` and ``f1_vs_labels.png`` from ``results.jsonl`` (atomic writes)."""
    out = Path(out_dir)
    results_path = out / RESULTS
    records = load_results(results_path)
    if not records:
        raise DataError(results_path, "no finished cell to report (run `auspread study` first)")
    if spec is None and (out / STUDY).is_file():
        d = json.loads((out / STUDY).read_text())
        spec = StudySpec(**d)
    summary = summarise(records, spec.methods if spec else None)
    title = "Mean F1 vs label ratio"
    if spec is not None:
        data = _data_section(spec)
        ds = data.get("dataset", "synthetic")
        title += f" ({ds}{' ' + data.get('synth_preset', 'small') if ds == 'synthetic' else ''}, "
        title += f"fold{'s' if len(spec.folds) > 1 else ''} {','.join(map(str, spec.folds))})"
    png = out / "f1_vs_labels.png"
    plot_curves(summary, png, title)
    intro = _describe(spec, records) + _trivial_line(summary)
    ref = paper_dataset(spec)
    ref_md = paper_table(summary, ref, "md") if ref else None
    ref_note = (f"For reference, the paper's numbers on real {ref} (KS supplement Table 1; the KS authors' runs, "
                f"not these; the supervised counterpart is not in that table):")
    paper_md = ["", ref_note, "", ref_md, ""] if ref_md else []
    cal_note = ("The same cells with per-AU thresholds chosen on each run's validation subjects and applied "
                "unchanged to its test subjects (`auspread calibrate`; not the papers' protocol, which keeps 0.5; "
                "– where a cell has not chosen them):")
    cal_md = (["", cal_note, "", mean_f1_table(summary, "md", "mean_val_thresholds"), ""]
              if summary["mean_val_thresholds"] else [])

    md = ["# Study report", "", *[f"- {x}" for x in intro], "",
          "## Mean F1 by method and label ratio (cf. KS supplement Table 1)", "", mean_f1_table(summary, "md"), "",
          *cal_md, *paper_md,
          "## F1 against the label ratio (cf. KS Fig. 4)", "", f"![F1 vs label ratio]({png.name})", "",
          "## F1 per AU (cf. KS supplement Table 5)", ""]
    for r in summary["ratios"]:
        md += [f"### {_fmt_ratio(r)} labels", "", per_au_table(summary, r, "md"), ""]
    md += ["## Cells", "", "Each cell's run folder (config, metrics, checkpoints, results) is under `runs/`.", ""]
    atomic_write_text(out / "report.md", "\n".join(md))

    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}img{max-width:100%}")
    intro_html = "".join(f"<li>{html.escape(x).replace('**', '')}</li>" for x in intro)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Study report</title><style>{style}</style>"
             f"</head><body><h1>Study report</h1><ul>{intro_html}</ul>",
             "<h2>Mean F1 by method and label ratio (cf. KS supplement Table 1)</h2>", mean_f1_table(summary, "html"),
             *([f"<p>{html.escape(cal_note)}</p>", mean_f1_table(summary, "html", "mean_val_thresholds")]
               if summary["mean_val_thresholds"] else []),
             *([f"<p>{html.escape(ref_note)}</p>", paper_table(summary, ref, "html")] if ref_md else []),
             "<h2>F1 against the label ratio (cf. KS Fig. 4)</h2>", f"<img src='{png.name}' alt='F1 vs label ratio'>",
             "<h2>F1 per AU (cf. KS supplement Table 5)</h2>"]
    for r in summary["ratios"]:
        parts += [f"<h3>{_fmt_ratio(r)} labels</h3>", per_au_table(summary, r, "html")]
    parts.append("</body></html>")
    atomic_write_bytes(out / "report.html", "\n".join(parts).encode())
    return {"md": out / "report.md", "html": out / "report.html", "png": png}


def paper_table(summary: dict, dataset: str, fmt: str = "md") -> str | None:
    """The paper's F1 for the study's methods and ratios (only ratios the paper reports), or None."""
    ratios = [r for r in summary["ratios"] if r in PAPER_RATIOS]
    methods = [m for m in summary["methods"] if m in PAPER_TABLE1]
    if not ratios or not methods:
        return None
    rows, bold = [], set()
    grid = [[PAPER_TABLE1[m][dataset][PAPER_RATIOS.index(r)] for r in ratios] for m in methods]
    for j in range(len(ratios)):
        best = max(row[j] for row in grid)
        bold |= {(i, j + 1) for i, row in enumerate(grid) if row[j] == best}
    rows = [[m] + [f"{v:.1f}" for v in grid[i]] for i, m in enumerate(methods)]
    return _table(["method"] + [_fmt_ratio(r) for r in ratios], rows, bold, fmt)
