"""Imports point down (docs/architecture.md): every package and top-level module of ``src/auspread`` sits in one
layer and imports only from its own layer or the layers below it. A static scan of the source, including imports
inside functions."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "auspread"
# bottom to top; a top-level module is named without ".py"; "__init__" is the package itself (``__version__``)
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "aus", "errors", "io", "media", "progress", "resources"),  # shared helpers, below everything
    ("data", "faces", "models", "losses"),
    ("methods",),
    ("engine", "evaluation"),
    ("pretrain", "study", "predict", "export", "doctor", "labelling", "cli", "__main__"),  # commands and workflows
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}
# known upward imports, each to be removed when the workflow layer above the engine takes the code that needs it:
# the training run resolves `pretrained=pretrain:auto` / a pretraining run folder through pretrain.run
ALLOWED_UPWARD = {
    ("engine/run.py", "auspread.pretrain.run"),
}
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


def unit_of(path: Path, src: Path = SRC) -> str:
    """The package (first folder under ``src``) or top-level module (name without ``.py``) ``path`` belongs to."""
    parts = path.relative_to(src).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def layer_violations(src: Path = SRC, allowed: set[tuple[str, str]] = ALLOWED_UPWARD) -> list[str]:
    """Every import of a module in a higher layer than the importing file's, less the ``allowed`` ones."""
    bad = []
    for f in sorted(src.rglob("*.py")):
        mine = LAYER_OF[unit_of(f, src)]
        rel = f.relative_to(src).as_posix()
        for line, mod in imported_modules(f, src):
            parts = mod.split(".")
            if parts[0] != "auspread" or len(parts) < 2:
                continue
            target = parts[1] if parts[1] in LAYER_OF else "__init__"  # `from auspread import __version__`
            if LAYER_OF[target] > mine and (rel, mod) not in allowed:
                bad.append(f"{rel}:{line} imports {mod}")
    return bad


def test_every_package_and_module_has_a_layer():
    units = {unit_of(p) for p in SRC.rglob("*") if p.suffix == ".py" or (p.is_dir() and p.parent == SRC)}
    units.discard("__pycache__")
    assert sorted(units - set(LAYER_OF)) == []


def test_imports_point_down():
    assert layer_violations() == []


def test_methods_never_import_the_engine():
    assert [v for v in layer_violations(allowed=set()) if v.startswith("methods/")] == []


def test_the_allow_list_is_still_needed():
    """An allowed upward import that is gone must leave the list."""
    found = {(v.split(":")[0], v.split(" imports ")[1]) for v in layer_violations(allowed=set())}
    assert found == ALLOWED_UPWARD


def test_the_layer_scan_flags_an_upward_import(tmp_path):
    src = tmp_path / "auspread"
    (src / "methods").mkdir(parents=True)
    (src / "engine").mkdir()
    (src / "methods" / "x.py").write_text("from auspread.data import index\nfrom auspread.engine import loop\n")
    (src / "engine" / "y.py").write_text("from auspread.methods import base\nimport auspread.cli.train\n")
    assert layer_violations(src, allowed=set()) == ["engine/y.py:2 imports auspread.cli.train",
                                                    "methods/x.py:2 imports auspread.engine"]
