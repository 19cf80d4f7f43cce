"""One loader rebuilds a trained method (EMA weights handled once) for eval, predict and export (issue 20)."""

import pytest
import torch
from engine_fakes import config, info

from auspread.engine.checkpoint import save_checkpoint
from auspread.engine.config import config_to_dict, dump_yaml
from auspread.engine.data import info_to_dict
from auspread.engine.restore import build_method, eval_weights, load_trained
from auspread.errors import RunError
from auspread.export import load_run_model
from auspread.io import atomic_write_text
from auspread.predict.model import load_model


def _run(tmp_path, ema: bool):
    cfg = config(tmp_path)
    torch.manual_seed(0)
    model = build_method(cfg, info(32)).state_dict()
    torch.manual_seed(1)
    other = build_method(cfg, info(32)).state_dict()
    run = tmp_path / "run"
    atomic_write_text(run / "config.yaml", dump_yaml(cfg))
    save_checkpoint(run / "checkpoints" / "best.pt", {"config": config_to_dict(cfg), "dataset_info": info_to_dict(info(32)),
                                                      "model": model, "ema": other if ema else None, "epoch": 2})
    return run, model, other


def _same(method, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in method.state_dict().items())


@pytest.mark.parametrize("ema", [False, True])
def test_eval_predict_and_export_load_the_same_weights(tmp_path, ema):
    run, model, other = _run(tmp_path, ema)
    want = other if ema else model
    t = load_trained(run)
    assert _same(t.method, want) and not t.method.training and t.checkpoint == run / "checkpoints" / "best.pt"
    assert _same(load_trained(t.checkpoint).method, want)  # a checkpoint file alone
    assert _same(load_model(run).method, want)
    assert _same(load_run_model(run)[0], want)


def test_eval_weights_keeps_the_raw_weights_in_the_trained_method(tmp_path):
    run, model, other = _run(tmp_path, ema=True)
    t = load_trained(run)
    m = build_method(t.cfg, t.info)
    evaluated = eval_weights(m, t.state)
    assert evaluated is not m and _same(evaluated, other) and _same(m, model)


def test_overrides_change_the_config_and_bad_checkpoints_fail_clearly(tmp_path):
    run, _, _ = _run(tmp_path, ema=False)
    assert str(load_trained(run, overrides=["data.fold=2"]).cfg.data.fold) == "2"
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, {"model": {}})
    with pytest.raises(RunError, match="lacks config, dataset_info"):
        load_trained(bad)
    with pytest.raises(RunError, match="no such run folder"):
        load_trained(tmp_path / "missing")
