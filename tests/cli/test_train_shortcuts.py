"""CLI shortcuts (--method/--labels/--fold/--dataset/--root) and packaged config names."""

from pathlib import Path

import pytest

from auspread.cli.train import _config, _shortcuts
from auspread.engine.config import load_config, packaged_configs, resolve_config_path
from auspread.errors import ConfigError


def test_shortcuts_become_overrides_that_explicit_overrides_beat():
    o = _shortcuts(["data.fold=3"], "ks", "5%", 2, "bp4d", Path("/data/BP4D"))
    cfg = _config(None, o, "ks")
    assert cfg.method.name == "ks"
    assert cfg.data.labels.every == 20
    assert cfg.data.fold == 3  # the explicit key=value comes last and wins over --fold 2
    assert cfg.data.dataset == "bp4d" and str(cfg.data.root) == "/data/BP4D"


def test_method_without_config_uses_its_packaged_synthetic_config():
    cfg = _config(None, _shortcuts([], "ks", None, None, None, None), "ks")
    assert cfg == load_config(resolve_config_path("ks_synthetic"))


def test_every_method_has_packaged_configs_for_each_dataset():
    names = set(packaged_configs())
    for m in ["supervised", "ks", "pseudo-label", "fixmatch", "tcl", "mdhr", "piap-df"]:
        for d in ("synthetic", "bp4d", "disfa"):
            assert f"{m}_{d}" in names, f"missing packaged config {m}_{d}"
            cfg = load_config(f"{m}_{d}")
            assert cfg.method.name == m


def test_unknown_config_name_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match="ks_bp4d"):
        resolve_config_path("no_such_config")


def test_switching_method_by_override_drops_the_base_methods_options():
    # the main job is ks_synthetic; method.name=supervised must not inherit KS options such as clip_len
    cfg = _config(None, ["method.name=supervised", "method.dropout=0.1"])
    assert cfg.method.name == "supervised" and cfg.method.dropout == 0.1
    assert cfg.data.synth_preset == "wide"  # data and optim of the base stay
