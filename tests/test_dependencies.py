"""setup.py declares exactly what the package imports (see docs/dependencies.md).

Every third-party module imported anywhere in keras_quaternion/ (module level or inside a
function) must come from a declared distribution: ``install_requires``, or the ``export`` extra
for the modules only the export path imports, lazily. And every ``install_requires`` entry that
applies to this machine must be imported somewhere: none is pulled in for another package's sake.
"""

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_quaternion"


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _setup_keywords():
    """install_requires and extras_require, read from setup.py without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
    )
    wanted = ("install_requires", "extras_require")
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg in wanted}


def _imports():
    """{top-level module: {(file, at module level?)}} of the package's third-party imports."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in _module_level(tree.body)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "keras_quaternion":
                    where = (str(path.relative_to(ROOT)), id(node) in top_level)
                    found.setdefault(top, set()).add(where)
    return found


def _module_level(body):
    """Statements run on import: the body, and what ``if``/``try`` blocks there hold."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, getattr(node, "finalbody", [])):
                yield from _module_level(block)
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


@functools.cache
def _distributions():
    return importlib.metadata.packages_distributions()


def _providers(module):
    return {_canonical(name) for name in _distributions().get(module, [])}


@pytest.fixture(scope="module")
def declared():
    keywords = _setup_keywords()
    required = [Requirement(text) for text in keywords["install_requires"]]
    optional = [
        Requirement(text)
        for extra, texts in keywords["extras_require"].items()
        if extra not in ("dev", "docs")
        for text in texts
    ]
    return required, optional


def test_every_imported_module_is_declared(declared):
    required, optional = declared
    required_names = {_canonical(r.name) for r in required}
    export_names = {_canonical(r.name) for r in optional}
    undeclared, eager_extras = [], []
    for module, places in sorted(_imports().items()):
        providers = _providers(module)
        assert providers, f"'{module}' (imported by {sorted(places)}) is not installed here"
        if providers & required_names:
            continue
        if not providers & export_names:
            undeclared.append(f"{module} ({', '.join(sorted(p for p, _ in places))})")
        eager_extras += [f"{module} in {path}" for path, eager in places if eager]
    assert not undeclared, f"imported but not declared in setup.py: {undeclared}"
    assert not eager_extras, f"optional extras must be imported lazily: {eager_extras}"


def test_every_requirement_is_imported(declared):
    required, _ = declared
    imported = {p for module in _imports() for p in _providers(module)}
    unused = [
        str(r)
        for r in required
        if (r.marker is None or r.marker.evaluate()) and _canonical(r.name) not in imported
    ]
    assert not unused, f"install_requires lists what the package never imports: {unused}"


def test_librosa_is_a_test_dependency_only(declared):
    required, _ = declared
    assert "librosa" not in {_canonical(r.name) for r in required}
    dev = _setup_keywords()["extras_require"]["dev"]
    assert any(Requirement(text).name == "librosa" for text in dev)
    assert "librosa" not in _imports()
