"""Imports point down (docs/architecture.md): the bottom layers never import the layers above them (issue 20).
A static scan of the source, including imports inside functions."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "auspread"
BOTTOM = ["data", "faces", "models", "losses"]
ABOVE = ("auspread.engine", "auspread.methods", "auspread.predict", "auspread.study", "auspread.cli",
         "auspread.evaluation", "auspread.export", "auspread.labelling")


def imported_modules(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(src.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(node.lineno, f"{mod}.{a.name}" if mod == "auspread" else mod) for a in node.names]
    return sorted(out)


def upward_imports(layer: str, src: Path = SRC) -> list[str]:
    bad = []
    for f in sorted((src / layer).rglob("*.py")):
        for line, mod in imported_modules(f, src):
            if any(mod == a or mod.startswith(a + ".") for a in ABOVE):
                bad.append(f"{f.relative_to(src)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("layer", BOTTOM)
def test_bottom_layers_do_not_import_upwards(layer):
    assert upward_imports(layer) == []


def test_the_scan_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "auspread"
    (src / "data" / "sub").mkdir(parents=True)
    (src / "data" / "sub" / "x.py").write_text("import numpy\nfrom auspread.data import index\n"
                                               "def f():\n    from auspread.engine import run\n"
                                               "from ...methods import base\nfrom auspread import predict\n")
    assert upward_imports("data", src) == ["data/sub/x.py:4 imports auspread.engine",
                                           "data/sub/x.py:5 imports auspread.methods",
                                           "data/sub/x.py:6 imports auspread.predict"]
