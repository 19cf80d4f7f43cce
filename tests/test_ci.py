"""CI runs the README's two set-up commands as written (install + main job, install + tests), so a fresh clone and CI
cannot disagree (issue 20)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [r"pip install -e \. -c constraints\.txt && auspread train",
                                     r"pip install -e \"\.\[test\]\" -c constraints\.txt && pytest"])
def test_ci_runs_the_readme_set_up_command(command):
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"^({command}[^#\n]*?)\s*(#.*)?$", readme, re.M)
    assert m, f"README lost its set-up command {command!r}"
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert m.group(1).strip() in ci
