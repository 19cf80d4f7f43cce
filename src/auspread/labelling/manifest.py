"""The label manifest: a generic CSV manifest (docs/datasets.md) with two extra columns the reader ignores.

* ``reason``: why ``auspread suggest-labels`` picked the frame (empty on rows it did not write);
* ``answered``: when the frame was answered on the labelling page (UTC, ISO 8601); empty while the frame is open.

A row with a ``frame`` is a frame to label. It counts as answered when ``answered`` is set, or, for rows written by
hand (no ``answered`` value), when at least one AU cell holds a 0 or 1. AU cells hold ``1`` (present), ``0``
(absent) or nothing (unknown, e.g. "not sure"); the generic reader reads them as such.

Every change is written with an atomic rename of a complete file (:func:`auspread.io.atomic_write_text`), so a
process killed at any moment leaves either the previous or the new manifest, never a partial one.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from auspread.errors import DataError
from auspread.io import atomic_write_text

BASE_COLUMNS = ("source", "subject", "task", "frame")
REASON = "reason"
ANSWERED = "answered"
_AU = re.compile(r"^au\s*0*(\d+)$", re.IGNORECASE)


def au_column(number: int) -> str:
    return f"AU{int(number):02d}"


class LabelManifest:
    """A CSV manifest held as rows of strings (every original column and row is kept as written)."""

    def __init__(self, path: Path, columns: list[str], rows: list[dict[str, str]]):
        self.path = Path(path)
        self.columns = list(columns)
        self.rows = rows
        self._canonical = {c.lower(): c for c in self.columns}  # lower-case name → column as written
        self._lock = threading.Lock()
        self._on_disk: str | None = None  # the text last read or written (answers refuse to overwrite other edits)

    # --- reading -------------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path) -> "LabelManifest":
        """Read a CSV manifest; raises :class:`DataError` naming the file when it cannot be used."""
        path = Path(path)
        if path.is_dir():
            path = path / "auspread_manifest.csv"
        if not path.is_file():
            raise DataError(path, "no such manifest file")
        if path.suffix.lower() != ".csv":
            raise DataError(path, "the labelling page writes CSV manifests; give a .csv file "
                                  "(`auspread suggest-labels` turns a JSON manifest into one)")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(path, f"cannot be read ({type(e).__name__}: {e})") from None
        reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
        if not reader.fieldnames:
            raise DataError(path, "is empty (expected a header: source,subject,task,frame,AU01,…)")
        columns = [c.strip() for c in reader.fieldnames]
        lower = [c.lower() for c in columns]
        for need in ("source", "subject", "frame"):
            if need not in lower:
                raise DataError(path, f"has no {need!r} column (header: {', '.join(columns)})")
        rows = []
        for line, r in enumerate(reader, start=2):
            if None in r:
                raise DataError(path, f"line {line} has more cells than the header")
            rows.append({c.strip(): (v or "").strip() for c, v in r.items()})
        m = cls(path, columns, rows)
        m._on_disk = text
        if not m.aus:
            raise DataError(path, "names no AU (columns like AU01, AU12)")
        for i, r in enumerate(m.rows):
            f = m.get(r, "frame")
            if f != "":
                try:
                    if int(float(f)) < 0:
                        raise ValueError
                except ValueError:
                    raise DataError(path, f"line {i + 2}: frame {f!r} is not a 0-based frame number") from None
            for a in m.aus:
                if r.get(m.au_columns[a], "") not in ("", "0", "1", "-1", "9", "0.0", "1.0"):
                    raise DataError(path, f"line {i + 2}, {m.au_columns[a]}: {r[m.au_columns[a]]!r} must be 1, "
                                          "0 or empty")
        return m

    @classmethod
    def new(cls, path: str | Path, aus: list[int]) -> "LabelManifest":
        return cls(Path(path), [*BASE_COLUMNS, *(au_column(a) for a in aus), REASON, ANSWERED], [])

    def get(self, row: dict[str, str], name: str) -> str:
        """The cell of column ``name`` (any case) in ``row``; empty when there is no such column."""
        col = self._canonical.get(name)
        return row.get(col, "") if col else ""

    def set(self, row: dict[str, str], name: str, value: str) -> None:
        """Set the cell of column ``name`` (any case; a new column is added)."""
        self.ensure_columns([name])
        row[self._canonical[name.lower()]] = value

    @property
    def au_columns(self) -> dict[int, str]:
        """AU number → column name, ascending."""
        found = {int(_AU.match(c)[1]): c for c in self.columns if _AU.match(c)}
        return dict(sorted(found.items()))

    @property
    def aus(self) -> list[int]:
        return list(self.au_columns)

    # --- frames to label -----------------------------------------------------------------------------------
    def frame_rows(self) -> list[int]:
        """Positions (in ``rows``) of the rows naming a frame: the frames to label, in manifest order."""
        return [i for i, r in enumerate(self.rows) if self.get(r, "frame") != ""]

    def is_answered(self, i: int) -> bool:
        r = self.rows[i]
        if self.get(r, ANSWERED):
            return True
        return any(r.get(c, "") in ("0", "1", "0.0", "1.0") for c in self.au_columns.values())

    def values(self, i: int) -> dict[int, int | None]:
        """AU → 1, 0 or None (unknown) for row ``i``."""
        out: dict[int, int | None] = {}
        for a, c in self.au_columns.items():
            v = self.rows[i].get(c, "")
            out[a] = int(float(v)) if v in ("0", "1", "0.0", "1.0") else None
        return out

    def first_open(self) -> int | None:
        """Index (among :meth:`frame_rows`) of the first frame not answered yet, or ``None`` when all are."""
        for k, i in enumerate(self.frame_rows()):
            if not self.is_answered(i):
                return k
        return None

    def labelled_frames(self) -> dict[str, set[int]]:
        """``source`` (as written) → frames listed in the manifest (answered or not)."""
        out: dict[str, set[int]] = {}
        for r in self.rows:
            src = self.get(r, "source")
            out.setdefault(src, set())
            f = self.get(r, "frame")
            if f != "":
                out[src].add(int(float(f)))
        return out

    # --- writing -------------------------------------------------------------------------------------------
    def ensure_columns(self, names: list[str]) -> None:
        for n in names:
            if n.lower() not in self._canonical:
                self.columns.append(n)
                self._canonical[n.lower()] = n

    def append(self, row: dict[str, str]) -> None:
        self.ensure_columns(list(row))
        self.rows.append({self._canonical[k.lower()]: str(v) for k, v in row.items()})

    def answer(self, i: int, values: dict[int, int | None], answered_at: str | None = None) -> None:
        """Store the answer for row ``i`` (AU → 1, 0 or None = not sure) and write the file at once, atomically.
        AUs not in ``values`` keep their cells."""
        with self._lock:
            if not 0 <= i < len(self.rows) or self.get(self.rows[i], "frame") == "":
                raise IndexError(f"row {i} is not a frame of {self.path}")
            cols = self.au_columns
            unknown = [a for a in values if a not in cols]
            if unknown:
                raise KeyError(f"AU{unknown[0]} is not a column of {self.path}")
            for a, v in values.items():
                if v not in (0, 1, None):
                    raise ValueError(f"AU{a}: {v!r} must be 1, 0 or None")
                self.rows[i][cols[a]] = "" if v is None else str(int(v))
            self._check_unchanged()
            self.ensure_columns([ANSWERED])
            self.rows[i][self._canonical[ANSWERED]] = answered_at or \
                datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.write()

    def _check_unchanged(self) -> None:
        """Refuse to write over edits made to the file by someone else since it was read."""
        if self._on_disk is None:
            return
        try:
            now = self.path.read_text(encoding="utf-8-sig")
        except OSError:
            now = None
        if now != self._on_disk:
            raise DataError(self.path, "changed on disk since it was opened (edited elsewhere?); nothing was "
                                       "written: restart `auspread label` to continue from the file as it is now")

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({c: r.get(c, "") for c in self.columns})
        return buf.getvalue()

    def write(self, path: str | Path | None = None) -> Path:
        """Write the whole manifest atomically (to ``self.path`` unless ``path`` is given)."""
        target = Path(path) if path is not None else self.path
        text = self.to_csv()
        atomic_write_text(target, text)
        if target == self.path:
            self._on_disk = text
        return target
