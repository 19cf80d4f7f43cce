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


def _without_origin(cfg):
    return cfg.model_copy(update={"started_from": None})


def test_method_without_config_uses_its_packaged_synthetic_config():
    cfg = _config(None, _shortcuts([], "ks", None, None, None, None), "ks")
    assert _without_origin(cfg) == load_config(resolve_config_path("ks_synthetic"))
    assert cfg.started_from == "ks_synthetic"


@pytest.mark.parametrize("method", ["supervised", "ks", "pseudo-label", "fixmatch", "tcl", "mdhr", "piap-df"])
@pytest.mark.parametrize("dataset", ["bp4d", "disfa"])
def test_method_and_a_real_dataset_take_that_datasets_packaged_config(method, dataset):
    cfg = _config(None, _shortcuts([], method, None, None, dataset, Path("/data/X")), method)
    assert cfg.started_from == f"{method}_{dataset}"
    assert _without_origin(cfg) == load_config(f"{method}_{dataset}", ["data.root=/data/X"])


def test_datasets_without_a_packaged_config_take_the_bp4d_settings_and_say_so(capsys):
    cfg = _config(None, _shortcuts([], "ks", None, None, "bp4d+", None), "ks", echo=True)
    assert cfg.started_from == "ks_bp4d" and cfg.data.dataset == "bp4d+"
    assert _without_origin(cfg) == load_config("ks_bp4d", ["data.dataset=bp4d+"])
    out = capsys.readouterr().out
    assert out.startswith("config: started from ks_bp4d (--method ks; bp4d+ has no packaged config of its own: the "
                          "bp4d settings with data.dataset=bp4d+)") and "pretrained=imagenet" in out
    # your own videos: the BP4D settings, and the labels you have as they are unless --labels says otherwise
    for dataset in ("generic", "prepared"):
        own = _config(None, _shortcuts([], "supervised", None, None, dataset, None), "supervised")
        assert own.started_from == "supervised_bp4d" and own.data.labels.every == 1 and own.pretrained == "imagenet"
    assert _config(None, _shortcuts([], "ks", "5%", None, "generic", None), "ks").data.labels.every == 20
    assert _config(None, _shortcuts([], "ks", None, None, "lists", None), "ks").started_from == "ks_bp4d"
    # without --method: the README main job's method with the dataset's settings
    assert _config(None, _shortcuts([], None, None, None, "disfa", None)).started_from == "ks_disfa"
    assert _config(None, ["data.dataset=bp4d"]).started_from == "ks_bp4d"  # the key=value form too
    assert _config(Path("ks_disfa"), ["data.dataset=bp4d"]).started_from == "ks_disfa"  # --config wins


def test_method_on_bp4d_offline_stops_on_the_missing_imagenet_weights(monkeypatch, capsys, tmp_path):
    """`--method ks --dataset bp4d` takes the BP4D settings: without ImageNet weights it stops before training
    (the synthetic settings would train from random weights at 64 px)."""
    import torch

    from auspread.models import backbones as B
    from tests.cli.cli_runner import run_cli
    from tests.data.readers._reader_trees import make_bp4d

    def offline(url, dst):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty torch cache
    monkeypatch.setattr(B, "download_weights", offline)
    root = tmp_path / "BP4D"
    make_bp4d(root, {(s, t): (1, 6, "4") for s in ("F001", "M007", "F003", "M011", "M010", "F007", "F015") for t in ("T1", "T2")})
    code, err = run_cli(["train", "-q", "--method", "ks", "--dataset", "bp4d", "--root", root,
                         f"out_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", "threads=1"], capsys)
    assert code == 2 and "ImageNet weights for resnet18" in err and "Traceback" not in err
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))  # nothing trained


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


def test_imagenet_label_on_a_backbone_without_imagenet_weights_is_refused_before_any_data(tmp_path):
    """PIAP-DF's ``small`` encoder has no ImageNet weights: ``pretrained=imagenet`` would train it from random weights
    under an ImageNet label, so the run stops before reading or generating data."""
    import pytest

    from auspread.engine.config import load_config
    from auspread.engine.run import run_training
    from auspread.errors import ConfigError

    cfg = load_config(None, ["method.name=piap-df", "method.encoder=small", "pretrained=imagenet",
                             "data.synth_preset=tiny", f"out_dir={tmp_path / 'runs'}"])
    with pytest.raises(ConfigError, match="'small' has no ImageNet weights"):
        run_training(cfg, progress=False)
    assert not (tmp_path / "runs").exists()
