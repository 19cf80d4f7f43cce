"""Run logging: one JSON object per line in ``metrics.jsonl`` and the same scalars as TensorBoard events in
``tb/``. Only rank 0 logs (other ranks get a disabled logger)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class RunLogger:
    """Appends records to ``run_dir/metrics.jsonl`` and scalars to ``run_dir/tb``.

    Each record has ``kind`` ("train", "val", "epoch", "test"), ``epoch`` (1-based), ``step`` and scalar values. On resume,
    :meth:`truncate_after` drops the records written after the checkpoint being resumed, so the file reads as
    one uninterrupted run; TensorBoard events after that step are purged likewise (``purge_step``).
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True, purge_step: int | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)
            except ImportError:  # tensorboard is a dependency, but keep logging to jsonl without it
                self._tb = None

    def log(self, kind: str, step: int, epoch: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rec = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3)}
        rec.update({k: _jsonable(v) for k, v in values.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def truncate_after(self, step: int, epochs_done: int) -> None:
        """Keep only records of the first ``epochs_done`` epochs (1-based ``epoch``) up to global ``step``."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("epoch", 0) <= epochs_done and rec.get("step", 0) <= step:
                keep.append(line)
        from auspread.io import atomic_write_text

        atomic_write_text(self.path, "".join(l + "\n" for l in keep))

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All records of a run's ``metrics.jsonl``."""
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return []
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
