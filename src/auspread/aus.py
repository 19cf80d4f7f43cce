"""The AU vocabulary, read from the packaged data file ``resources/aus.json``.

AU lists, regions, dataset AU sets and MDHR region groups are data, not code: this module only loads
and exposes them with types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

Region = Literal["upper", "middle", "lower"]


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    region: Region

    @property
    def code(self) -> str:
        """OpenFace-style column stem, e.g. ``AU01``."""
        return f"AU{self.number:02d}"


@dataclass(frozen=True)
class RegionGroup:
    """An MDHR region group: AUs whose features come from one band of the token grid."""

    name: str
    band: Literal["up", "mid", "down"]
    aus: tuple[int, ...]


@dataclass(frozen=True)
class DatasetAUs:
    name: str
    aus: tuple[int, ...]  # the benchmark AU set, in the standard order
    coded_aus: tuple[int, ...]  # every AU the dataset codes
    occurrence: dict  # {"kind": "codes", ...} or {"kind": "intensity", "threshold": 2}
    fps: float
    coded_tasks: tuple[str, ...] | None = None


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("auspread.resources").joinpath("aus.json").read_text())


@lru_cache(maxsize=None)
def action_unit(number: int) -> ActionUnit:
    """The :class:`ActionUnit` with FACS number ``number`` (KeyError with a clear message if unknown)."""
    entry = _data()["aus"].get(str(int(number)))
    if entry is None:
        raise KeyError(f"AU{number} is not in the AU vocabulary (auspread/resources/aus.json)")
    return ActionUnit(int(number), entry["name"], entry["region"])


def all_action_units() -> list[ActionUnit]:
    return [action_unit(int(k)) for k in _data()["aus"]]


DATASET_NAMES = ("BP4D", "BP4D+", "DISFA")


def canonical_dataset_name(name: str) -> str:
    """Map user spellings (``bp4d``, ``bp4d_plus``, ``bp4dplus``, ``disfa``) to the canonical names."""
    key = name.strip().lower().replace("_", "").replace("-", "").replace("plus", "+")
    table = {"bp4d": "BP4D", "bp4d+": "BP4D+", "disfa": "DISFA"}
    if key not in table:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    return table[key]


@lru_cache(maxsize=None)
def dataset_aus(name: str) -> DatasetAUs:
    canon = canonical_dataset_name(name)
    d = _data()["datasets"][canon]
    tasks = d.get("coded_tasks")
    return DatasetAUs(
        name=canon,
        aus=tuple(d["aus"]),
        coded_aus=tuple(d["coded_aus"]),
        occurrence=dict(d["occurrence"]),
        fps=float(d["fps"]),
        coded_tasks=tuple(tasks) if tasks else None,
    )


def mdhr_region_groups(name: str) -> list[RegionGroup]:
    """MDHR's region groups for a dataset (BP4D: 4 groups, DISFA: 3)."""
    groups = _data()["mdhr_region_groups"][canonical_dataset_name(name)]
    return [RegionGroup(g["name"], g["band"], tuple(g["aus"])) for g in groups]


def mdhr_band_rows() -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, stop)`` of each band on MDHR's 7x7 grid."""
    return {k: tuple(v) for k, v in _data()["mdhr_region_groups"]["bands_7x7_rows"].items()}


def au_codes(aus: tuple[int, ...] | list[int]) -> list[str]:
    """``[1, 12] -> ['AU01', 'AU12']``."""
    return [f"AU{int(a):02d}" for a in aus]
