"""CI runs the README's two set-up commands as written (install + main job, install + tests), so a fresh clone and CI
cannot disagree (issue 20)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^(pip install -e \"\.\[test\]\" && pytest[^#\n]*?)\s*(#.*)?$", readme, re.M)
    assert m, "README lost its test command"
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert m.group(1).strip() in ci


def test_ci_runs_the_readme_main_job_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^(pip install -e \. && auspread train[^#\n]*?)\s*(#.*)?$", readme, re.M)
    assert m, "README lost its install-and-main-job command"
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert m.group(1).strip() in ci
