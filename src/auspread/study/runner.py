"""Running a study: one cell with the engine, the grid with its per-cell locks (several processes may share one
study folder), results appended as cells finish."""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from auspread.engine.config import SAVED_RUN_DEFAULTS, build_config, read_yaml_mapping, saved_run_config
from auspread.errors import ConfigError, RunError
from auspread.io import atomic_write_text
from auspread.progress import progress_bar
from auspread.study.report import write_report
from auspread.study.results import RESULTS, STUDY, append_result, load_results
from auspread.study.spec import Cell, StudySpec, cell_config_dict, label_percent


# --- running one cell ------------------------------------------------------------------------------------------
def run_cell(cfg_dict: dict, run_dir: str) -> dict:
    """Train and test one cell with the engine (resuming a killed run from its ``last.pt``). Module-level so that
    worker processes can pickle it. Returns the numbers the report needs."""
    from auspread.engine.run import run_training

    run_dir_p = Path(run_dir)
    cfg = build_config(cfg_dict)
    if (run_dir_p / "config.yaml").is_file():
        changed = changed_defaults(read_yaml_mapping(run_dir_p / "config.yaml"), cfg_dict)
        if changed:
            raise ConfigError(f"{run_dir_p}: started with another configuration than its cell ({'; '.join(changed)}); "
                              f"remove the folder to train the cell again, or use a new --out")
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
            "test_f1_all_positive": d.get("test_f1_all_positive"), "precision": d.get("precision"),
            "cpu": d.get("cpu"), "test_f1_val_thresholds": d.get("test_f1_val_thresholds"),
            "val_labels": (d.get("labels") or {}).get("val_labels", SAVED_RUN_DEFAULTS["data.val_labels"])}


Runner = Callable[[dict, str], dict]


def _finished_only(cfg_dict: dict, run_dir: str) -> dict:
    """The runner of ``run_study(train=False)``: a finished run folder's numbers, never training."""
    return _summary_record(json.loads((Path(run_dir) / "results" / "summary.json").read_text()), 0.0)


# --- adopting runs trained outside the study -------------------------------------------------------------------
# where and how fast a run ran, not what it learned (the memory format and the fused optimiser kernel change float
# rounding only, like the thread count)
ADOPT_IGNORED = ("name", "out_dir", "threads", "optim.channels_last", "optim.fused")


def _resolved_pretrained(cfg_dict: dict) -> dict:
    """``cfg_dict`` with ``pretrained=pretrain:<spec>`` replaced by the trunk file it resolves to (not trained)."""
    p = cfg_dict.get("pretrained")
    if not (isinstance(p, str) and p.startswith("pretrain:")):
        return cfg_dict
    from auspread.pretrain.config import cache_dir, cache_name
    from auspread.pretrain.run import TRUNK, pretrain_config_for_run

    pc = pretrain_config_for_run(build_config(cfg_dict), p[len("pretrain:"):])
    return {**cfg_dict, "pretrained": str(cache_dir() / cache_name(pc) / TRUNK)}


def _flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def changed_defaults(saved: dict, want: dict) -> list[str]:
    """Where a saved run config (as written, older runs lack newer keys) and the configuration ``want`` differ on an
    option whose default changed (:data:`~auspread.engine.config.SAVED_RUN_DEFAULTS`): such a run is never reused
    silently for a cell of today's defaults."""
    have, w = _flat(saved_run_config(saved)), _flat(want)
    return [f"{k}: run {have.get(k)!r} vs study {w.get(k)!r}" for k in SAVED_RUN_DEFAULTS if have.get(k) != w.get(k)]


def adopt_run(spec: StudySpec, cell: Cell, run_dir: str | Path, out_dir: str | Path) -> Path:
    """Use a finished run trained outside the study (e.g. by ``benchmarks/bench_ks_table.py``) as ``cell``: its folder
    is linked as ``runs/<key>``, so the next start records it instead of training it again. Refused (ConfigError)
    unless the run finished (``results/summary.json``) and its saved ``config.yaml`` equals the cell's configuration
    apart from :data:`ADOPT_IGNORED` (``pretrained=pretrain:...`` compared as the trunk file it resolves to)."""
    from auspread.engine.config import config_to_dict

    src = Path(run_dir).resolve()
    if not (src / "results" / "summary.json").is_file():
        raise ConfigError(f"{src}: not a finished run (no results/summary.json)")
    have = _flat(config_to_dict(build_config(saved_run_config(read_yaml_mapping(src / "config.yaml")))))
    want = _flat(_resolved_pretrained(cell_config_dict(spec, cell, Path(out_dir) / "runs")))
    diff = sorted(k for k in set(have) | set(want) if k not in ADOPT_IGNORED and have.get(k) != want.get(k))
    if diff:
        detail = "; ".join(f"{k}: run {have.get(k)!r} vs study {want.get(k)!r}" for k in diff)
        raise ConfigError(f"{src}: trained with another configuration than cell {cell.key} ({detail[:600]})")
    link = Path(out_dir) / "runs" / cell.key
    if link.is_symlink() or link.exists():
        if link.resolve() == src:
            return link
        raise ConfigError(f"{link}: the cell already has a run folder; remove it to adopt {src}")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(src, target_is_directory=True)
    return link


def _warn_changed_defaults(spec: StudySpec, records: list[dict]) -> None:
    """Warn when finished cells were trained with another validation labelling than the study's cells now get
    (e.g. recorded before ``data.val_labels`` existed, when validation subjects kept every label)."""
    cells = {c.key: c for c in spec.cells()}
    old = []
    for r in records:
        want = cell_config_dict(spec, cells[r["key"]], Path("runs"))["data"]["val_labels"]
        have = r.get("val_labels", SAVED_RUN_DEFAULTS["data.val_labels"])
        if have != want:
            old.append(f"{r['key']} ({have}, now {want})")
    if old:
        print(f"warning: {len(old)} finished cell(s) were trained with other validation labels (data.val_labels) than "
              f"the study's configuration now gives: {', '.join(old[:5])}{' …' if len(old) > 5 else ''}; their numbers "
              f"are kept as they are: use a new --out to train every cell the same way", file=sys.stderr)


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
              progress: bool = True, report: bool = True, train: bool = True) -> list[dict]:
    """Run every cell of ``spec`` not yet in ``out_dir/results.jsonl``; returns all records. Failed cells are
    reported at the end (``RunError``) and run again on the next start; finished ones never are. ``train=False``:
    record the cells whose run folder has finished (e.g. adopted ones) and report, training nothing."""
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
    _warn_changed_defaults(spec, [r for r in load_results(results_path) if r["key"] in {c.key for c in cells}])
    todo = [c for c in cells if c.key not in done]
    runs_dir = out / "runs"
    if not train:
        runner = _finished_only
        todo = [c for c in todo if (runs_dir / c.key / "results" / "summary.json").is_file()]
    configs = {c.key: cell_config_dict(spec, c, runs_dir) for c in todo}  # fail fast on a bad configuration
    failures: list[tuple[Cell, str]] = []
    bar = progress_bar(total=len(cells), initial=sum(c.key in done for c in cells), desc="study", unit="cell", disable=not progress)

    def record(cell: Cell, res: dict) -> None:
        rec = {"key": cell.key, "method": cell.method, "labels": cell.labels, "ratio": label_percent(cell.labels),
               "fold": cell.fold, "seed": cell.seed, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **res}
        append_result(results_path, rec)
        bar.set_postfix_str(f"{cell.method} {cell.labels} f{cell.fold}: F1 {100 * rec['test_f1']:.1f}")
        bar.update(1)

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
