"""Every code block in README.md and docs/ runs, or says why it cannot.

A fenced ``python`` block is executed (blocks of one page share a namespace, in page order, in
a temporary working directory). Any other block, or a python block that cannot run here, must
have an HTML comment ``<!-- not-run: <reason> -->`` on the line right after its closing fence.
"""

import os
import re
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->\s*$")


def code_blocks(path):
    """Yield (line number, language, code, not-run reason or None) for each fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        match = FENCE.match(lines[n])
        if not match:
            n += 1
            continue
        fence, lang, start = match.group(1), match.group(2).lower(), n
        n += 1
        body = []
        while n < len(lines) and lines[n].strip() != fence:
            body.append(lines[n])
            n += 1
        after = lines[n + 1] if n + 1 < len(lines) else ""
        reason = NOT_RUN.match(after.strip())
        yield start + 1, lang, "\n".join(body), reason.group(1) if reason else None
        n += 1


def test_pages_exist():
    assert (ROOT / "README.md").exists()
    assert len(PAGES) > 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run_or_say_why_not(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    unmarked = []
    for line, lang, code, reason in code_blocks(page):
        if reason is not None:
            continue
        if lang not in ("python", "py"):
            unmarked.append(f"{page.name}:{line} ({lang or 'no language'})")
            continue
        keras.backend.clear_session()
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"code block at {page.name}:{line} failed: {exc!r}") from exc
    assert not unmarked, (
        "blocks that neither run as python nor carry '<!-- not-run: reason -->' after them: "
        + ", ".join(unmarked)
    )


def test_not_run_marker_needs_a_reason(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```bash\nls\n```\n<!-- not-run: -->\n", encoding="utf-8")
    assert [b[3] for b in code_blocks(page)] == [None]
    page.write_text("```bash\nls\n```\n<!-- not-run: installs packages -->\n", encoding="utf-8")
    assert [b[3] for b in code_blocks(page)] == ["installs packages"]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _splice_module():
    import importlib.util

    path = ROOT / "apps" / "docs_figures" / "splice.py"
    spec = importlib.util.spec_from_file_location("kq_docs_splice", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_is_regenerated_by_make_docs_figures():
    """Each <!-- generated: NAME --> block in docs/ is spliced by a Makefile rule, and back."""
    splice = _splice_module()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rules = set(re.findall(r"\$\(SPLICE\) (docs/[\w/.-]+\.md) ([\w.-]+) ", makefile))
    found = set()
    for page in PAGES:
        rel = str(page.relative_to(ROOT))
        for name in splice.markers(page.read_text(encoding="utf-8"), rel):
            found.add((rel, name))
    assert found, "no generated blocks found in docs/"
    assert found == rules, (
        f"blocks without a Makefile rule: {sorted(found - rules)}; "
        f"rules without a block: {sorted(rules - found)}"
    )


def test_splice_replaces_only_the_named_block_and_rejects_bad_markers():
    splice = _splice_module()
    page = (
        "intro\n<!-- generated: a -->\nold a\n<!-- /generated: a -->\nmiddle\n"
        "<!-- generated: b -->\nold b\n<!-- /generated: b -->\nend\n"
    )
    new = splice.splice(page, "b", "| new |")
    assert "old a" in new and "old b" not in new and "\n| new |\n" in new
    assert new.startswith("intro\n") and new.endswith("<!-- /generated: b -->\nend\n")
    assert splice.splice(new, "b", "| new |") == new  # idempotent
    with pytest.raises(ValueError, match="no '<!-- generated: c -->'.*present: a, b"):
        splice.splice(page, "c", "x")
    with pytest.raises(ValueError, match="never closed"):
        splice.markers("<!-- generated: a -->\ntext\n")
    with pytest.raises(ValueError, match="not opened"):
        splice.markers("<!-- /generated: a -->\n")


def test_the_documented_train_signature_is_the_real_one():
    """docs/training.md spells out ``train(...)`` with its defaults; they must not drift from
    the function (they did once: the page kept epochs=20 after the default became 40)."""
    import ast
    import inspect

    from keras_quaternion.training import train

    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    found = re.search(r"`train\(model, prepared, \*, out_dir, (.*?)\)` takes", text, re.S)
    assert found, "the train(...) signature is no longer in docs/training.md"
    documented = {}
    for item in found.group(1).replace("\n", " ").split(","):
        name, _, value = item.strip().partition("=")
        documented[name] = ast.literal_eval(value)
    params = inspect.signature(train).parameters
    actual = {n: p.default for n, p in params.items() if n not in ("model", "prepared", "out_dir")}
    assert documented == actual
