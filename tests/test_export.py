"""`auspread export`: the exported light model gives the original's outputs (TorchScript, ONNX if installed)."""

import importlib.util
import json

import pytest
import torch
from typer.testing import CliRunner

from auspread.engine.checkpoint import load_checkpoint, save_checkpoint
from auspread.engine.config import build_config, config_to_dict, dump_yaml
from auspread.engine.data import info_to_dict
from auspread.engine.run import build_method
from auspread.errors import ConfigError, RunError
from auspread.export import export_run, load_run_model, run_exported
from auspread.io import atomic_write_text
from auspread.methods.base import Method
from tests.methods import fakes

SIZE = 32
HAS_ONNX = importlib.util.find_spec("onnx") is not None
PIAP = {"name": "piap-df", "variant": "piap-df", "encoder": "small", "width": 4, "generator_width": 4, "decoder_width": 4,
        "stage_epochs": {"pi1": 1, "pi2": 1, "person": 1, "main": 1, "df": 1}}


def _run(tmp_path, method: dict):
    """A run folder as `auspread train` leaves it (config.yaml + checkpoints/best.pt), with random weights."""
    cfg = build_config({"method": method, "data": {"image_size": SIZE}, "optim": {"epochs": 5}})
    info = fakes.info(SIZE)
    torch.manual_seed(0)
    m = build_method(cfg, info)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode export matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    run = tmp_path / "run"
    atomic_write_text(run / "config.yaml", dump_yaml(cfg))
    save_checkpoint(run / "checkpoints" / "best.pt", {"config": config_to_dict(cfg), "dataset_info": info_to_dict(info),
                                                      "model": m.state_dict(), "ema": None, "epoch": 5})
    return run, m.eval()


@pytest.mark.parametrize("method", [PIAP, {"name": "supervised"}], ids=["piap-df", "supervised"])
@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="onnx not installed"))])
def test_export_round_trip(tmp_path, method, fmt):
    run, original = _run(tmp_path, method)
    r = export_run(run, fmt)
    assert r.path.is_file() and r.path.parent == run / "export" and r.max_abs_diff < 1e-5
    x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # another batch size
    with torch.no_grad():
        expected = original.predict_frames(x)
    got = run_exported(r.path, x)
    assert got.shape == (5, 3)
    assert torch.allclose(got, expected, atol=1e-5)


def test_loaded_model_equals_saved(tmp_path):
    run, original = _run(tmp_path, PIAP)
    loaded, cfg, info = load_run_model(run)
    x = torch.randn(2, 3, SIZE, SIZE)
    assert torch.equal(loaded.predict_frames(x), original.predict_frames(x))
    assert cfg.method.name == "piap-df" and info.aus == fakes.AUS


def test_cli_export(tmp_path):
    from auspread.cli import app

    run, _ = _run(tmp_path, PIAP)
    out = tmp_path / "light.pt"
    res = CliRunner().invoke(app, ["export", str(run), "--format", "torchscript", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "probabilities of AU 1, 2, 4" in res.output and "max |exported - original|" in res.output
    side = json.loads((tmp_path / "light.json").read_text())
    assert side["aus"] == [1, 2, 4] and side["input"]["shape"] == ["k", 3, SIZE, SIZE] and side["thresholds"] is None
    assert "none chosen (use 0.5)" in res.output
    # a run that chose per-AU thresholds on its validation subjects hands them to the exported model's users
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    th = {"aus": [1, 2, 4], "values": [0.3, 0.5, 0.7], "fitted": [True, False, True], "source": "validation subjects X (9 frames)"}
    save_checkpoint(run / "checkpoints" / "best.pt", {**state, "thresholds": th})
    res = CliRunner().invoke(app, ["export", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "AU1 0.30, AU2 0.50, AU4 0.70" in res.output
    assert json.loads((tmp_path / "light.json").read_text())["thresholds"] == [0.3, 0.5, 0.7]
    res = CliRunner().invoke(app, ["export", str(run), "--format", "tflite"])
    assert res.exit_code != 0


def test_errors_are_clear(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        export_run(tmp_path / "nope")

    class NoExport(Method):
        name = "no-export"

    with pytest.raises(ConfigError, match="no self-contained"):
        NoExport(None, fakes.info()).export_module()
