"""``auspread study``: a grid of methods × label ratios × folds × seeds over :func:`auspread.engine.run.run_training`,
and its report (KS supplement Table 1 / Table 5 / paper Fig. 4 for your data).

A study folder holds::

    study.json      the grid and the configuration it was started with
    results.jsonl   one JSON line per finished cell (appended atomically; a restart skips the cells found here)
    runs/<cell>/    the run folder of each cell (a killed cell resumes from its checkpoints/last.pt)
    report.md, report.html, f1_vs_labels.png   written by :func:`write_report` (after every run, or on demand)

Cells are independent: ``workers > 1`` runs that many cells at once in separate processes (each with
``cpu_count // workers`` torch threads). Only the parent process appends to ``results.jsonl``.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import html
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from auspread.engine.config import LabelRegime, apply_overrides, build_config, config_to_dict
from auspread.errors import ConfigError, DataError, RunError
from auspread.evaluation.report import markdown_table
from auspread.io import atomic_write_bytes, atomic_write_text

RESULTS = "results.jsonl"
STUDY = "study.json"


# --- the grid --------------------------------------------------------------------------------------------------
def _label_text(value: str | float | int) -> str:
    """Canonical label-regime text: ``5`` / ``"5"`` / ``"5%"`` → ``"5%"``; ``"every:9"`` stays."""
    s = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        s = f"{float(s):g}%"
    LabelRegime.model_validate(s)  # raises a clear ValueError on bad input
    return s


def label_percent(text: str) -> float:
    """The label ratio of a regime text in percent (``"5%"`` → 5.0, ``"every:9"`` → 11.1)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%", text)
    if m:
        return float(m.group(1))
    return 100.0 * LabelRegime.model_validate(text).ratio


@dataclass(frozen=True)
class Cell:
    method: str
    labels: str  # "5%" or "every:9"
    fold: int
    seed: int

    @property
    def key(self) -> str:
        lab = self.labels.replace("%", "pct").replace(":", "")
        return f"{self.method}__{lab}__f{self.fold}__s{self.seed}"


@dataclass
class StudySpec:
    """What to run. ``base`` is a raw run configuration (YAML mapping) shared by every cell; ``configs_dir`` may hold
    ``<method>_<dataset>.yaml`` files whose ``method`` section gives that method's options; ``overrides`` are ``key=value`` for every cell
    or ``method:key=value`` for one method's cells."""

    methods: list[str]
    labels: list[str]
    folds: list[int]
    seeds: list[int]
    base: dict
    overrides: list[str]
    configs_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.methods or not self.labels or not self.folds or not self.seeds:
            raise ConfigError("a study needs at least one method, label ratio, fold and seed")
        try:
            self.labels = [_label_text(x) for x in self.labels]
        except ValueError as e:
            raise ConfigError(f"bad --labels value: {e}") from None
        from auspread.methods import method_names

        unknown = [m for m in self.methods if m not in method_names()]
        if unknown:
            raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(method_names())}")

    def cells(self) -> list[Cell]:
        """Seed-major order, then fold, label ratio, method: a partly finished study already compares methods."""
        return [Cell(m, lab, f, s) for s in self.seeds for f in self.folds for lab in self.labels for m in self.methods]

    def to_dict(self) -> dict:
        return {"methods": self.methods, "labels": self.labels, "folds": self.folds, "seeds": self.seeds,
                "base": self.base, "overrides": self.overrides, "configs_dir": self.configs_dir}


def _deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _load_yaml(path: Path) -> dict:
    from auspread.engine.config import read_yaml_mapping

    return read_yaml_mapping(path)


def cell_config_dict(spec: StudySpec, cell: Cell, runs_dir: Path) -> dict:
    """The validated run configuration of one cell, as plain data."""
    raw = copy.deepcopy(spec.base)
    dataset = (raw.get("data") or {}).get("dataset", "synthetic")
    method = raw.get("method")
    options: dict = {"name": cell.method}
    if spec.configs_dir:  # only the method section of configs/<method>_<dataset>.yaml: data and optim stay shared
        f = Path(spec.configs_dir) / f"{cell.method}_{dataset}.yaml"
        if f.is_file() and isinstance(_load_yaml(f).get("method"), dict):
            options = _deep_merge(_load_yaml(f)["method"], options)
    if isinstance(method, dict) and method.get("name") == cell.method:
        options = _deep_merge(options, method)  # the shared config's options for this method win
    raw["method"] = options  # options of another method in the shared config do not apply
    common = [o for o in spec.overrides if not re.match(r"^[\w-]+:", o)]
    mine = [o.split(":", 1)[1] for o in spec.overrides if o.startswith(f"{cell.method}:")]
    raw = apply_overrides(raw, common + mine)
    raw["method"]["name"] = cell.method
    raw.setdefault("data", {})
    raw["data"]["labels"] = cell.labels
    raw["data"]["fold"] = cell.fold
    raw["seed"] = cell.seed
    raw["out_dir"] = str(runs_dir)
    raw["name"] = cell.key
    return config_to_dict(build_config(raw))


# --- running one cell ------------------------------------------------------------------------------------------
def run_cell(cfg_dict: dict, run_dir: str) -> dict:
    """Train and test one cell with the engine (resuming a killed run from its ``last.pt``). Module-level so that
    worker processes can pickle it. Returns the numbers the report needs."""
    from auspread.engine.run import run_training

    run_dir_p = Path(run_dir)
    cfg = build_config(cfg_dict)
    resume = None
    if (run_dir_p / "checkpoints" / "last.pt").is_file():
        resume = run_dir_p
        summary_file = run_dir_p / "results" / "summary.json"
        if summary_file.is_file():  # finished, but killed before the study recorded it
            return _summary_record(json.loads(summary_file.read_text()), 0.0)
    elif run_dir_p.exists():
        shutil.rmtree(run_dir_p)  # a cell killed before its first checkpoint: start it again
    t0 = time.time()
    s = run_training(cfg, progress=False, resume=resume)
    return _summary_record(s.to_dict(), time.time() - t0)


def _summary_record(d: dict, seconds: float) -> dict:
    return {"test_f1": d["test_f1"], "val_f1": d.get("val_f1"), "test_accuracy": d.get("test_accuracy"),
            "per_au": d.get("test_per_au", {}), "best_epoch": d.get("best_epoch"), "epochs": d.get("epochs"),
            "steps": d.get("steps"), "selected_on": d.get("selected_on"), "train_fps": d.get("train_fps"),
            "run_dir": str(d.get("run_dir")), "seconds": seconds or d.get("seconds"),
            "test_f1_all_positive": d.get("test_f1_all_positive")}


Runner = Callable[[dict, str], dict]


# --- results file ----------------------------------------------------------------------------------------------
def append_result(path: Path, record: dict) -> None:
    """Append one JSON line with a single ``write`` on an O_APPEND descriptor, then fsync. A torn last line left by
    a kill is closed with a newline first, so it never corrupts the next record."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_results(path: Path) -> list[dict]:
    """Records of ``results.jsonl`` (a torn line from a killed write is skipped; the last record of a key wins)."""
    if not path.is_file():
        return []
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "key" in rec:
            out[rec["key"]] = rec
    return list(out.values())


# --- the grid runner -------------------------------------------------------------------------------------------
def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _lock_cell(runs_dir: Path, key: str):
    """An open file holding an exclusive, non-blocking lock on ``runs/<key>.lock``, or None when another process holds
    it (that process is running the cell). Several ``auspread study`` processes may thus share one study folder: each
    skips the cells the others are running, and none deletes another's half-written run. No-op where fcntl is absent."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return open(os.devnull, "w")
    runs_dir.mkdir(parents=True, exist_ok=True)
    f = open(runs_dir / f"{key}.lock", "w")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def run_study(spec: StudySpec, out_dir: str | Path, workers: int = 1, runner: Runner = run_cell,
              progress: bool = True, report: bool = True) -> list[dict]:
    """Run every cell of ``spec`` not yet in ``out_dir/results.jsonl``; returns all records. Failed cells are
    reported at the end (``RunError``) and run again on the next start; finished ones never are."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS
    previous = out / STUDY
    if previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("base") != spec.base or old.get("overrides") != spec.overrides:
            print(f"warning: {previous} was started with another configuration; finished cells are kept as they "
                  f"are (use a new --out for a different setup)", file=sys.stderr)
    atomic_write_text(previous, json.dumps(spec.to_dict(), indent=2, default=str))

    cells = spec.cells()
    done = {r["key"] for r in load_results(results_path)}
    todo = [c for c in cells if c.key not in done]
    runs_dir = out / "runs"
    configs = {c.key: cell_config_dict(spec, c, runs_dir) for c in todo}  # fail fast on a bad configuration
    failures: list[tuple[Cell, str]] = []
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="study", unit="cell", disable=not progress,
               dynamic_ncols=True)

    def record(cell: Cell, res: dict) -> None:
        rec = {"key": cell.key, "method": cell.method, "labels": cell.labels, "ratio": label_percent(cell.labels),
               "fold": cell.fold, "seed": cell.seed, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **res}
        append_result(results_path, rec)
        bar.update(1)
        bar.set_postfix_str(f"{cell.method} {cell.labels} f{cell.fold}: F1 {100 * rec['test_f1']:.1f}")

    def failed(cell: Cell, err: BaseException) -> None:
        failures.append((cell, f"{type(err).__name__}: {err}"))
        bar.write(f"cell {cell.key} failed: {type(err).__name__}: {err}")

    locks: dict[str, Any] = {}
    busy: list[Cell] = []

    def claim(cell: Cell) -> bool:
        """Lock the cell; False if another process runs it or has finished it meanwhile."""
        lock = _lock_cell(runs_dir, cell.key)
        if lock is None:
            busy.append(cell)
            return False
        if cell.key in {r["key"] for r in load_results(results_path)}:
            lock.close()
            bar.update(1)
            return False
        locks[cell.key] = lock
        return True

    def release(cell: Cell) -> None:
        lock = locks.pop(cell.key, None)
        if lock is not None:
            lock.close()

    try:
        if workers <= 1:
            for cell in todo:
                if not claim(cell):
                    continue
                bar.set_description(f"study [{cell.method} {cell.labels} f{cell.fold} s{cell.seed}]")
                try:
                    res = runner(configs[cell.key], str(runs_dir / cell.key))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # noqa: BLE001 - one bad cell must not lose the others
                    failed(cell, e)
                    continue
                finally:
                    release(cell)
                record(cell, res)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as ex:
                futures = {ex.submit(runner, configs[c.key], str(runs_dir / c.key)): c for c in todo if claim(c)}
                try:
                    for fut in cf.as_completed(futures):
                        cell = futures[fut]
                        release(cell)
                        try:
                            res = fut.result()
                        except Exception as e:  # noqa: BLE001
                            failed(cell, e)
                            continue
                        record(cell, res)
                except BaseException:
                    ex.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        for lock in locks.values():
            lock.close()
        bar.close()
        if busy:
            print(f"{len(busy)} cell(s) skipped: another process is running them ({', '.join(c.key for c in busy)}); "
                  "run the command again once it has finished", file=sys.stderr)
        if report:
            records = load_results(results_path)
            if records:
                write_report(out, spec=spec)
    if failures:
        lines = "\n  ".join(f"{c.key}: {m}" for c, m in failures)
        raise RunError(f"{len(failures)} of {len(todo)} cells failed (run the same command again to retry them):\n  {lines}")
    return load_results(results_path)


# --- the paper's numbers (KS supplement Table 1: mean F1 of the semi-supervised comparison) -----------------------
PAPER_RATIOS = (1, 2, 5, 10, 15, 20, 50, 60, 70, 80, 90, 100)
PAPER_TABLE1 = {  # method -> dataset -> F1 at PAPER_RATIOS (the second "80%" row of KS is read as 90%)
    "pseudo-label": {"BP4D": (54.3, 57.8, 59.7, 60.7, 61.2, 62.0, 63.6, 62.7, 63.3, 62.4, 62.3, 62.7),
                     "DISFA": (40.4, 50.8, 51.5, 56.8, 57.1, 58.5, 57.9, 56.7, 57.9, 58.3, 57.5, 58.8)},
    "fixmatch": {"BP4D": (49.9, 55.1, 59.2, 60.5, 62.1, 62.0, 62.0, 62.1, 61.9, 62.2, 61.9, 62.7),
                 "DISFA": (35.6, 46.2, 52.7, 55.0, 57.7, 58.4, 57.9, 56.0, 57.8, 56.9, 57.5, 58.8)},
    "tcl": {"BP4D": (55.6, 58.9, 60.5, 61.7, 62.3, 62.7, 63.2, 62.8, 63.0, 62.9, 62.7, 63.1),
            "DISFA": (42.3, 51.2, 53.6, 55.8, 56.7, 57.9, 59.2, 60.1, 59.6, 60.4, 58.3, 59.7)},
    "ks": {"BP4D": (59.9, 62.5, 63.9, 64.4, 64.5, 64.4, 64.5, 64.4, 64.5, 64.4, 64.6, 64.7),
           "DISFA": (49.4, 52.8, 56.9, 58.0, 58.8, 59.5, 61.6, 62.9, 61.9, 62.0, 62.2, 62.8)},
}


def paper_dataset(spec: "StudySpec | None") -> str | None:
    """The KS Table 1 column to compare with: BP4D for bp4d / bp4d+ / the bp4d-like preset, DISFA likewise."""
    if spec is None:
        return None
    data = _data_section(spec)
    ds = str(data.get("dataset", "synthetic"))
    if ds == "synthetic":
        ds = str(data.get("synth_preset", "small")).replace("-like", "")
    return {"bp4d": "BP4D", "bp4d+": "BP4D", "disfa": "DISFA"}.get(ds)


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
    return {"methods": order, "ratios": ratios, "aus": aus, "mean": mean, "per_au": per_au,
            "all_positive": sum(trivial) / len(trivial) if trivial else None}


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


def mean_f1_table(summary: dict, fmt: str = "md") -> str:
    """Methods × label ratios, mean F1 (×100) over folds and seeds; the best of each column in bold (Table 1)."""
    methods, ratios, mean = summary["methods"], summary["ratios"], summary["mean"]
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
    """Mean F1 (×100) against the label ratio (log axis), one line per method, ±1 std bars over folds×seeds (Fig. 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    markers = "osD^vP*Xh<>"
    for i, m in enumerate(summary["methods"]):
        pts = [(r, *summary["mean"][(m, r)]) for r in summary["ratios"] if (m, r) in summary["mean"]]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [100 * p[1] for p in pts]
        es = [100 * p[2] for p in pts]
        ax.errorbar(xs, ys, yerr=es if any(es) else None, marker=markers[i % len(markers)], capsize=3, label=m)
    if summary.get("all_positive") is not None:
        ax.axhline(100 * summary["all_positive"], color="grey", linestyle="--", linewidth=1,
                   label="all-positive predictor")
    ax.set_xscale("log")
    ax.set_xticks(summary["ratios"])
    ax.set_xticklabels([_fmt_ratio(r) for r in summary["ratios"]])
    ax.minorticks_off()
    ax.set_xlabel("labelled frames (label ratio)")
    ax.set_ylabel("mean F1 over AUs (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _data_section(spec: StudySpec) -> dict:
    """The ``data`` section every cell shares: the base config with the study-wide overrides applied (so a preset
    given as ``data.synth_preset=...`` is named right in the report)."""
    common = [o for o in spec.overrides if not re.match(r"^[\w-]+:", o)]
    try:
        return apply_overrides(copy.deepcopy(spec.base), common).get("data") or {}
    except Exception:  # noqa: BLE001 - a report must render even if an override no longer parses
        return spec.base.get("data") or {}


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
    hours = sum(float(r.get("seconds") or 0) for r in records) / 3600
    lines.append(f"Training + testing time of the finished cells: {hours:.2f} h (sum over cells).")
    sel = sorted({str(r.get("selected_on")) for r in records})
    lines.append("F1 is the test-fold F1 at threshold 0.5 of the checkpoint selected on "
                 f"{' / '.join(sel)} (see each run's `results/`), ×100; mean ± std over folds × seeds when there "
                 "are several.")
    return lines


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

    md = ["# Study report", "", *[f"- {x}" for x in intro], "",
          "## Mean F1 by method and label ratio (cf. KS supplement Table 1)", "", mean_f1_table(summary, "md"), "",
          *paper_md,
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
             *([f"<p>{html.escape(ref_note)}</p>", paper_table(summary, ref, "html")] if ref_md else []),
             "<h2>F1 against the label ratio (cf. KS Fig. 4)</h2>", f"<img src='{png.name}' alt='F1 vs label ratio'>",
             "<h2>F1 per AU (cf. KS supplement Table 5)</h2>"]
    for r in summary["ratios"]:
        parts += [f"<h3>{_fmt_ratio(r)} labels</h3>", per_au_table(summary, r, "html")]
    parts.append("</body></html>")
    atomic_write_bytes(out / "report.html", "\n".join(parts).encode())
    return {"md": out / "report.md", "html": out / "report.html", "png": png}


def parse_list(text: str, kind: Callable[[str], Any] = str) -> list:
    """``"a,b, c"`` → ``["a", "b", "c"]`` (converted with ``kind``)."""
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    try:
        return [kind(x) for x in items]
    except ValueError:
        raise ConfigError(f"bad list {text!r}") from None


def load_base(config: str | Path | None) -> dict:
    if config is None:
        return {}
    p = Path(config)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    return _load_yaml(p)


__all__: Iterable[str] = ["Cell", "StudySpec", "run_study", "run_cell", "write_report", "load_results", "append_result",
                          "summarise", "cell_config_dict", "parse_list", "load_base"]
