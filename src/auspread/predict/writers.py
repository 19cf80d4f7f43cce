"""Per-frame output tables: CSV (default) or Parquet, plus a sidecar JSON recording the model and the run.

Columns, in order (stable; ``face_id`` only with ``--all-faces``)::

    frame, [face_id,] timestamp, success, confidence, face_x, face_y, face_w, face_h, AU01_c, …, AU01_p, …

* ``frame``: **1-based**, as in OpenFace's ``FeatureExtraction`` CSV, so scripts written for OpenFace line up; the
  decoded frame ``i`` (0-based, PyAV decode order) is row ``frame = i + 1``. Every decoded frame has a row.
* ``timestamp``: seconds from the first frame (container timestamps; image sequences use the nominal fps).
* ``success``: 1 if a face was found in this frame (by a full detection or by tracking), else 0 (with
  ``--no-track``: a face at the previous detection frame).
* ``confidence``: MTCNN's face probability; ``face_x, face_y, face_w, face_h``: the face box in frame pixels.
* ``AUxx_c``: occurrence 0/1 (``AUxx_p >= threshold``, by default the AU's threshold chosen on the model's
  validation subjects, else 0.5; the sidecar records which); ``AUxx_p``: the model's probability.
  OpenFace's ``AUxx_c`` has the same name and meaning; ``AUxx_p`` corresponds to py-feat's bare ``AUxx`` column.
* With ``success = 0`` every value after ``success`` is empty (OpenFace writes numbers there; see OpenFace#425).

CSV is plain comma-separated (no space after the comma, unlike OpenFace), UTF-8, ``\\n`` line ends. Files are
written atomically (temporary sibling + rename).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from auspread.aus import au_codes
from auspread.errors import ConfigError
from auspread.evaluation.thresholds import per_au
from auspread.io import atomic_path, atomic_write_text, publish
from auspread.predict.options import PredictionTable


def columns(aus: tuple[int, ...], all_faces: bool = False) -> list[str]:
    codes = au_codes(aus)
    head = ["frame"] + (["face_id"] if all_faces else []) + ["timestamp", "success", "confidence",
                                                             "face_x", "face_y", "face_w", "face_h"]
    return head + [f"{c}_c" for c in codes] + [f"{c}_p" for c in codes]


def to_frame(table: PredictionTable, threshold: float | Sequence[float] = 0.5, all_faces: bool = False) -> pd.DataFrame:
    """The output table as a DataFrame (nullable integer columns, NaN where a value is unknown); ``threshold`` one
    for every AU or one per AU."""
    codes = au_codes(table.aus)
    thr = per_au(threshold, len(codes))
    ok = table.success
    data: dict[str, object] = {"frame": pd.array(table.frame + 1, dtype="Int64")}
    if all_faces:
        data["face_id"] = pd.array(np.where(table.face_id >= 0, table.face_id, 0), dtype="Int64")
        data["face_id"][table.face_id < 0] = pd.NA
    data["timestamp"] = np.round(table.timestamp, 3)
    data["success"] = pd.array(ok.astype(np.int64), dtype="Int64")
    data["confidence"] = np.where(ok, np.round(table.confidence, 4), np.nan)
    for j, name in enumerate(("face_x", "face_y", "face_w", "face_h")):
        data[name] = np.where(ok, np.round(table.box[:, j], 1), np.nan)
    probs = np.where(ok[:, None], table.probs, np.nan)
    for j, c in enumerate(codes):
        occ = pd.array((probs[:, j] >= thr[j]).astype(np.int64), dtype="Int64")
        occ[~ok | np.isnan(probs[:, j])] = pd.NA
        data[f"{c}_c"] = occ
    for j, c in enumerate(codes):
        data[f"{c}_p"] = np.round(probs[:, j], 4)
    df = pd.DataFrame(data)
    return df[columns(table.aus, all_faces)]


def write_table(df: pd.DataFrame, path: str | Path, fmt: str = "csv") -> Path:
    """Write atomically as CSV or Parquet (Parquet needs pyarrow: ``pip install 'auspread[parquet]'``)."""
    path = Path(path)
    if fmt == "csv":
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False, na_rep="", lineterminator="\n")
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--format parquet needs pyarrow: pip install 'auspread[parquet]'") from None
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
    else:
        raise ConfigError(f"unknown output format {fmt!r} (csv or parquet)")
    return publish(path)


def write_sidecar(path: str | Path, info: dict) -> Path:
    """``<output>.json``: which model produced the table, the input, the options and frame/face counts."""
    path = Path(path)
    atomic_write_text(path, json.dumps(info, indent=2, default=_jsonable) + "\n")
    return publish(path)


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray, tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)
