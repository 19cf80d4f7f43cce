"""Typed experiment configuration (pydantic). Saved as ``config.yaml`` in every run folder and as plain data in
every checkpoint, so a checkpoint alone rebuilds its model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationError, field_validator

from auspread.data.config import AugmentConfig, DataConfig, LabelRegime, _Strict  # noqa: F401 (re-exported)
from auspread.errors import ConfigError
from auspread.methods.base import MethodOptions, get_method


class OptimConfig(_Strict):
    optimizer: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)  # cap (CPU budgets); None = one pass over the items
    schedule: Literal["cosine", "constant", "step"] = "cosine"
    lr_steps: list[float] | None = None  # schedule=step: epochs where lr *= lr_gamma (default: 50% and 75%)
    lr_gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)
    grad_clip: float | None = None
    # "auto": bf16 where the device computes it natively (CPUs where oneDNN supports bf16: AVX-512 class, AMX;
    # recent GPUs; fp16 on older GPUs), else fp32 (auspread.engine.precision). An explicit bf16 on a CPU without
    # native bf16 runs, emulated and slow (with a warning).
    amp: Literal["off", "bf16", "fp16", "auto"] = "off"
    ema: float | None = Field(None, gt=0, lt=1)  # EMA decay of the weights used for evaluation, if set

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, v: Any) -> Any:
        return "off" if v is False or v is None else v  # YAML reads `off` / `no` as false
    # channels-last memory format for the model ("auto": with bf16, where it is faster; docs/BENCHMARKS.md)
    channels_last: bool | Literal["auto"] = "auto"
    # fused optimiser kernels (Adam, AdamW, SGD) where torch has them for the device: the same update to float
    # rounding, several times faster on CPU (docs/BENCHMARKS.md, "Fused optimiser and channels-last in training")
    fused: bool = True


class RunConfig(_Strict):
    method: SerializeAsAny[MethodOptions]
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    threads: int | None = Field(None, ge=1)  # CPU threads for torch (None: torch's default; 1 on a busy machine)
    out_dir: Path = Path("runs")
    name: str | None = None  # run folder name; default <method>-<dataset>-f<fold>-<labels>-<time>
    eval_every: int = Field(1, ge=1)  # epochs between validations
    log_every: int = Field(10, ge=1)  # steps between metrics.jsonl lines
    pretrained: str | None = None  # "imagenet", a torchvision weights file, or an auspread checkpoint (its ResNet trunk) for the backbone(s)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> Any:
        if isinstance(v, MethodOptions):
            return v
        if isinstance(v, str):
            v = {"name": v}
        if not isinstance(v, dict) or "name" not in v:
            raise ValueError("method must be a method name or a mapping with a 'name'")
        return get_method(v["name"]).Options.model_validate(v)


# --- loading, overrides ---------------------------------------------------------------------------------------
def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
        cur = nxt
    cur[parts[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML: ``optim.lr=1e-3``, ``data.augment.flip=false``)."""
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"bad override {o!r}: expected key=value, e.g. optim.lr=0.001")
        k, v = o.split("=", 1)
        if not k.strip():
            raise ConfigError(f"bad override {o!r}: empty key")
        try:
            val = yaml.safe_load(v) if v != "" else None
        except yaml.YAMLError:
            val = v
        _set_dotted(raw, k.strip(), val)
    return raw


def build_config(raw: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"{loc}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def packaged_configs() -> list[str]:
    """Names of the packaged run configs (``<method>_<dataset>``), usable as ``--config NAME``."""
    from importlib import resources

    folder = resources.files("auspread.resources").joinpath("configs")
    return sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a packaged config (``ks_bp4d`` or ``ks_bp4d.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    from importlib import resources

    name = p.name if p.name.endswith(".yaml") else f"{p.name}.yaml"
    if p.parent == Path("."):
        packaged = Path(str(resources.files("auspread.resources").joinpath("configs", name)))
        if packaged.is_file():
            return packaged
    raise ConfigError(f"{p}: config file not found (packaged configs: {', '.join(packaged_configs())})")


def read_yaml_mapping(path: Path) -> dict:
    """A YAML file whose top level is a mapping (``ConfigError`` naming the file otherwise)."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def _method_switch(overrides: list[str]) -> str | None:
    """The method named by a ``method.name=X`` or ``method=X`` override (the last one), if any."""
    name = None
    for o in overrides:
        k, _, v = o.partition("=")
        if k.strip() in ("method.name", "method") and v.strip():
            name = v.strip()
    return name


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> RunConfig:
    """YAML file (optional) + ``key=value`` overrides → validated :class:`RunConfig`."""
    raw: dict = dict(base or {})
    if path is not None:
        raw.update(read_yaml_mapping(resolve_config_path(path)))
    if isinstance(raw.get("method"), str):  # "method: ks" + "method.clip_len=5" → a mapping with a name
        raw["method"] = {"name": raw["method"]}
    switched = _method_switch(overrides or [])
    if switched is not None and isinstance(raw.get("method"), dict) and raw["method"].get("name") != switched:
        # an override picks another method than the base config's: the base's method options belong to the
        # old method, so they are dropped (the new method starts from its own defaults)
        raw["method"] = {"name": switched}
    raw = apply_overrides(raw, overrides or [])
    raw.setdefault("method", "supervised")
    if isinstance(raw["method"], dict) and "name" not in raw["method"]:
        raw["method"] = {"name": "supervised", **raw["method"]}
    return build_config(raw)


# Options whose default changed: a saved run config (config.yaml, a checkpoint's config) without the key ran with the
# value given here, and resuming, re-evaluating or adopting it must keep that value rather than take the new default.
SAVED_RUN_DEFAULTS = {"data.val_labels": "all"}


def saved_run_config(raw: dict) -> dict:
    """A copy of a saved run config (plain data) with :data:`SAVED_RUN_DEFAULTS` filled in where the key is absent."""
    import copy

    out = copy.deepcopy(raw)
    for key, value in SAVED_RUN_DEFAULTS.items():
        *parents, leaf = key.split(".")
        cur = out
        for p in parents:
            cur = cur.setdefault(p, {}) if isinstance(cur.get(p, {}), dict) else {}
        cur.setdefault(leaf, value)
    return out


def config_to_dict(cfg: RunConfig) -> dict:
    """Plain JSON-able data (for checkpoints loadable with ``weights_only=True`` and for config.yaml)."""
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
