"""The grid of a study: its cells (method × label ratio × fold × seed) and the run configuration of each."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from auspread.engine.config import LabelRegime, apply_overrides, build_config, config_to_dict
from auspread.errors import ConfigError


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


def _data_section(spec: StudySpec) -> dict:
    """The ``data`` section every cell shares: the base config with the study-wide overrides applied (so a preset
    given as ``data.synth_preset=...`` is named right in the report)."""
    common = [o for o in spec.overrides if not re.match(r"^[\w-]+:", o)]
    try:
        return apply_overrides(copy.deepcopy(spec.base), common).get("data") or {}
    except Exception:  # noqa: BLE001 - a report must render even if an override no longer parses
        return spec.base.get("data") or {}


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
