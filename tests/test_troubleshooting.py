"""The error catalogue of docs/troubleshooting.md and its generator apps/docs_figures/errors.py.

The generator reads the library with :mod:`ast` only, so these tests need neither TensorFlow nor
a model; the code blocks of the page itself are run by tests/test_docs.py.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_quaternion"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


errors = _load("kq_docs_errors", ROOT / "apps" / "docs_figures" / "errors.py")


def _raise_line(path: Path, fragment: str) -> int:
    """Line of the ``raise`` statement whose message contains ``fragment`` (found by text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    hit = next(n for n, line in enumerate(lines) if fragment in line)
    while "raise " not in lines[hit]:
        hit -= 1
    return hit + 1


def _one(entries, fragment):
    found = [e for e in entries if fragment in e.template]
    assert len(found) == 1, [e.template for e in found]
    return found[0]


# ------------------------------------------------------------------------------ the committed page


def test_committed_catalogue_is_current():
    current, updated, count = errors.build_page(errors.DEFAULT_OUT)
    assert count > 300
    assert current == updated, (
        "docs/troubleshooting.md is stale: run python apps/docs_figures/errors.py"
    )


def test_catalogue_lists_every_area_in_data_flow_order():
    text = errors.DEFAULT_OUT.read_text(encoding="utf-8")
    catalogue = text.split(errors.START, 1)[1].split(errors.END, 1)[0]
    positions = [catalogue.index(f"### {title}\n") for title in errors.AREAS.values()]
    assert positions == sorted(positions)
    # the hand-written part above the markers is kept
    assert text.startswith("# Troubleshooting\n")
    assert "## Every error message" in text.split(errors.START, 1)[0]


# ------------------------------------------------------------------------------ real messages


def test_extractor_finds_known_messages_with_file_and_line():
    entries = errors.collect(PACKAGE)

    hamilton = PACKAGE / "layers" / "hamilton.py"
    entry = _one(entries, "so it must be a positive multiple of 4")
    assert (entry.area, entry.path, entry.function) == (
        "layers",
        "layers/hamilton.py",
        "check_quaternion_channels",
    )
    assert entry.exc_type == "ValueError"
    assert entry.line == _raise_line(hamilton, "must be a positive multiple of 4")
    assert entry.template.startswith(
        "Layer '{layer_name}' expects quaternion {what}s: the last axis must hold 4·C real "
    )
    assert "Got shape {tuple(shape)} with {channels} channels." in entry.template

    registry = PACKAGE / "models" / "registry.py"
    entry = _one(entries, "Unknown model name")
    assert (entry.path, entry.function, entry.exc_type) == (
        "models/registry.py",
        "describe",
        "ValueError",
    )
    assert entry.line == _raise_line(registry, "Unknown model name")
    assert entry.template == "Unknown model name {name}; known models: {', '.join(names())}."

    scores = PACKAGE / "pruning" / "scores.py"
    matches = [e for e in entries if e.template.startswith("Unknown pruning method {method};")]
    assert {e.path for e in matches} == {"pruning/scores.py", "pruning/finetune.py"}
    entry = next(e for e in matches if e.path == "pruning/scores.py")
    assert (entry.function, entry.line) == ("check_method", _raise_line(scores, "Unknown pruning"))

    # a click exception carries click's own prefix and the option it names
    entry = _one(entries, "is outside [0, 1): it is the fraction of filters removed")
    assert entry.exc_type == "click.BadParameter"
    assert entry.template.startswith("Invalid value for --ratio: {ratio} is outside [0, 1)")


def test_entries_are_sorted_and_deduplicated_per_file():
    entries = errors.collect(PACKAGE)
    order = list(errors.AREAS)
    keys = [
        (order.index(e.area) if e.area in order else len(order), e.area, e.path, e.line)
        for e in entries
    ]
    assert keys == sorted(keys)
    seen = set()
    for e in entries:
        key = (e.path, e.exc_type, e.template)
        assert key not in seen, key
        seen.add(key)
    # cli/train.py re-raises click.ClickException(str(err)) in two functions: one entry
    rethrown = [e for e in entries if e.path == "cli/train.py" and e.template == "{err}"]
    assert len(rethrown) == 1 and len(rethrown[0].also) >= 1


# ------------------------------------------------------------------------------ rendering


SYNTHETIC = """
import click

LIMIT = "at most 3"


def _hint(n):
    return f"use {n} or fewer"


def check(value, name):
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
    if value > 3:
        raise ValueError(
            "value is too large: "
            f"{value:.2f} is more than "  # implicit concatenation
            + LIMIT
            + "."
        )
    message = f"{name}={value} is odd"
    if value % 2:
        message += "; pick an even number"
    else:
        message += "; pick an odd number"
    raise TypeError(message)


def formats(x, parts):
    if x:
        raise KeyError("bad key %s" % x)
    if parts:
        raise RuntimeError("parts: {}".format(parts))
    detail = "; ".join(parts)
    raise ValueError(detail)


def helpers(x, err):
    if x == 1:
        raise ValueError(_hint(x))
    if x == 2:
        raise click.BadParameter(f"'{x}' is not allowed.", param_hint="--size")
    if x == 3:
        raise click.ClickException(str(err)) from None
    if x == 4:
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
    return ValueError(f"x is {'big' if x > 9 else 'small'}")


class Thing:
    def method(self, y):
        if y:
            raise ValueError  # no message: not listed
        raise Warning(f"{self.name}: nothing to do")
"""


def test_synthetic_module_renders_templates():
    entries = errors.extract(textwrap.dedent(SYNTHETIC), "training/demo.py")
    got = [(e.line, e.function, e.exc_type, e.template) for e in entries]
    assert got == [
        (13, "check", "ValueError", "{name} must be >= 0, got {value}."),
        (15, "check", "ValueError", "value is too large: {value} is more than at most 3."),
        (
            26,
            "check",
            "TypeError",
            "{name}={value} is odd[; pick an even number | ; pick an odd number]",
        ),
        (31, "formats", "KeyError", "bad key %s"),
        (33, "formats", "RuntimeError", "parts: {}"),
        (35, "formats", "ValueError", errors.RUNTIME),
        (40, "helpers", "ValueError", "use {n} or fewer"),
        (42, "helpers", "click.BadParameter", "Invalid value for --size: '{x}' is not allowed."),
        (44, "helpers", "click.ClickException", "{err}"),
        (47, "helpers", "ValueError", "x is [big | small]"),
        (54, "Thing.method", "Warning", "{self.name}: nothing to do"),
    ]
    assert {e.area for e in entries} == {"training"}
    first = entries[0]
    assert first.also == (46,)  # the same template raised again is folded into the first entry


def test_library_exception_formats_match_their_constructors():
    from keras_quaternion.audio import AudioDecodeError
    from keras_quaternion.datasets import DatasetLayoutError

    source = textwrap.dedent(
        """
        def f(root, path):
            raise DatasetLayoutError("esc50", root, "there is no 'audio/' folder", LAYOUT)

        def g(path):
            raise AudioDecodeError(path, "the file is empty", hint="Pass another file.")

        def h():
            raise DatasetLayoutError("fsdd", None, "no data_dir", LAYOUT)
        """
    )
    layout, decode, missing = (e.template for e in errors.extract(source, "datasets/x.py"))
    real = str(DatasetLayoutError("esc50", "{root}", "there is no 'audio/' folder", "tree"))
    assert layout.startswith(real.splitlines()[0])
    real = str(DatasetLayoutError("fsdd", None, "no data_dir", "tree"))
    assert missing.startswith(real.splitlines()[0])
    real = str(AudioDecodeError("{path}", "the file is empty", hint="Pass another file."))
    assert decode == real


# ------------------------------------------------------------------------------ the page and CLI


def test_update_page_rewrites_only_between_markers():
    page = f"# Title\n\nhand-written\n\n{errors.START}\nold\n{errors.END}\n\ntail\n"
    new = errors.update_page(page, "fresh\n")
    assert new == f"# Title\n\nhand-written\n\n{errors.START}\nfresh\n{errors.END}\n\ntail\n"
    assert errors.update_page(new, "fresh\n") == new
    with pytest.raises(ValueError, match="one line"):
        errors.update_page("# no markers\n", "x\n")
    with pytest.raises(ValueError, match="one line"):
        errors.update_page(f"{errors.END}\n{errors.START}\n", "x\n")


def test_cli_check_write_and_determinism(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(f"# Page\n\nintro\n\n{errors.START}\n{errors.END}\n", encoding="utf-8")
    page.chmod(0o644)
    assert errors.main(["--out", str(page), "--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert errors.main(["--out", str(page)]) == 0
    first = page.read_text(encoding="utf-8")
    assert page.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
    assert first.startswith("# Page\n\nintro\n\n")
    assert errors.main(["--out", str(page), "--check"]) == 0
    assert errors.main(["--out", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]  # no temporary file left
    assert errors.main(["--out", str(tmp_path / "missing.md")]) == 2
