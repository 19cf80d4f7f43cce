"""A cheap stand-in for :func:`auspread.study.run_cell` (importable by spawned worker processes)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

BASE = {"supervised": 0.40, "pseudo-label": 0.45, "fixmatch": 0.43, "tcl": 0.47, "ks": 0.52}


def calls_log(run_dir: str) -> Path:
    return Path(run_dir).parent.parent / "calls.log"


def fake_runner(cfg: dict, run_dir: str) -> dict:
    """F1 grows with the label ratio; every call is logged (one line per cell) next to the study's runs/."""
    with open(calls_log(run_dir), "a") as f:
        f.write(Path(run_dir).name + "\n")
    delay = float(os.environ.get("FAKE_RUNNER_DELAY", "0"))
    if delay:
        time.sleep(delay)
    from auspread.engine.config import LabelRegime

    ratio = LabelRegime.model_validate(cfg["data"]["labels"]).ratio
    f1 = BASE[cfg["method"]["name"]] + 0.05 * math.log10(100 * ratio) + 0.01 * cfg["seed"]
    return {"test_f1": f1, "val_f1": f1 + 0.01, "per_au": {"AU1": f1 + 0.1, "AU2": f1 - 0.1}, "seconds": 1.0,
            "selected_on": "val", "run_dir": run_dir, "test_f1_all_positive": 0.38}


def failing_runner(cfg: dict, run_dir: str) -> dict:
    if cfg["method"]["name"] == "fixmatch":
        raise RuntimeError("boom")
    return fake_runner(cfg, run_dir)
