"""A study folder's files: ``study.json`` (the grid) and ``results.jsonl`` (one line per finished cell)."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = "results.jsonl"
STUDY = "study.json"


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
