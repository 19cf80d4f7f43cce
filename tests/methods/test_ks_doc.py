"""docs/methods/knowledge_spreader.md lists KS's non-paper defaults with their switches back: every switch is a
valid override of the packaged KS configs and changes the option it names away from the default."""

import re
from pathlib import Path

import pytest

from auspread.engine.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "methods" / "knowledge_spreader.md"
SECTION = "## Defaults that are not the paper's, and the switch back"


def _switches() -> list[list[str]]:
    """The switch-back column's code spans, each a list of ``key=value`` overrides applied together."""
    text = DOC.read_text()
    assert SECTION in text, "the KS doc lost its table of non-paper defaults"
    table = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| what") and "---" not in r]
    out = []
    for r in rows:
        cell = r.rstrip(" |").rsplit("|", 1)[1]
        out += [toks for code in re.findall(r"`([^`]+)`", cell) if (toks := [t for t in code.split() if "=" in t])]
    return out


def test_the_table_covers_the_loss_balance_and_scale_choices():
    sw = {tok for group in _switches() for tok in group}
    for must in ("method.kl_reduction=sum", "method.distill_ramp=false", "method.w_tb=0", "data.augment.crop=false",
                 "method.students=per_position", "method.encoder_norm=layer", "method.au_head_init=trunc_normal",
                 "optim.optimizer=sgd"):
        assert must in sw, must


@pytest.mark.parametrize("config", ["ks_synthetic", "ks_bp4d"])
def test_every_switch_is_a_valid_override(config):
    for group in _switches():
        cfg = load_config(config, group).model_dump(mode="json")
        for tok in group:
            key, value = tok.split("=", 1)
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert str(node).lower() == value.lower() or float(node) == pytest.approx(float(value)), tok
