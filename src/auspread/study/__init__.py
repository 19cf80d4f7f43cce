"""``auspread study``: a grid of methods × label ratios × folds × seeds over :func:`auspread.engine.run.run_training`,
and its report (KS supplement Table 1 / Table 5 / paper Fig. 4 for your data).

A study folder holds::

    study.json      the grid and the configuration it was started with
    results.jsonl   one JSON line per finished cell (appended atomically; a restart skips the cells found here)
    runs/<cell>/    the run folder of each cell (a killed cell resumes from its checkpoints/last.pt)
    report.md, report.html, f1_vs_labels.png   written by :func:`write_report` (after every run, or on demand)

Cells are independent: ``workers > 1`` runs that many cells at once in separate processes (each with
``cpu_count // workers`` torch threads). Only the parent process appends to ``results.jsonl``.

One job per module: ``spec`` (the grid and each cell's config), ``results`` (the study folder's files),
``runner`` (cells, locks, the grid loop), ``report`` (tables, curve, report files), ``paper`` (KS Table 1).
"""

from auspread.study.paper import PAPER_RATIOS, PAPER_TABLE1, paper_dataset
from auspread.study.report import mean_f1_table, paper_table, per_au_table, plot_curves, summarise, write_report
from auspread.study.results import RESULTS, STUDY, append_result, load_results
from auspread.study.runner import Runner, _lock_cell, adopt_run, run_cell, run_study  # noqa: F401 (_lock_cell: tests)
from auspread.study.spec import Cell, StudySpec, cell_config_dict, label_percent, load_base, parse_list

__all__ = ["Cell", "StudySpec", "run_study", "run_cell", "adopt_run", "write_report", "load_results", "append_result",
           "summarise", "cell_config_dict", "parse_list", "load_base", "mean_f1_table", "per_au_table", "paper_table",
           "plot_curves", "paper_dataset", "label_percent", "Runner", "RESULTS", "STUDY", "PAPER_RATIOS", "PAPER_TABLE1"]
