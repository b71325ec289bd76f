"""Put a generated Markdown table into a docs page, between its markers.

Benchmarks and reports write their tables to a file (``--out``); the docs pages show them
inline, between a pair of HTML comments that name the table::

    <!-- generated: bench_layers -->
    ...the table, replaced on every run...
    <!-- /generated: bench_layers -->

Usage (this is what ``make docs-figures`` runs after each benchmark)::

    python apps/docs_figures/splice.py docs/models.md bench_layers build/figures/bench_layers.md
    python apps/docs_figures/splice.py --list docs/     # every marker pair and its page

Only the text between the markers changes; the page is rewritten atomically. A page without
the named markers, or with unbalanced markers, is an error that names the page and the marker.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_quaternion imports TensorFlow

from keras_quaternion.files import atomic_write  # noqa: E402

START = re.compile(r"^<!--\s*generated:\s*([\w.-]+)\s*-->\s*$")
END = re.compile(r"^<!--\s*/generated:\s*([\w.-]+)\s*-->\s*$")


def markers(text: str, page: str = "page") -> dict[str, tuple[int, int]]:
    """Map each marker name to the (start, end) line indices of its pair of comments.

    Raises:
        ValueError: a marker is opened twice, closed without being opened, or never closed.

    Example:
        >>> markers("a\\n<!-- generated: t -->\\nold\\n<!-- /generated: t -->\\n")
        {'t': (1, 3)}
    """
    found: dict[str, tuple[int, int]] = {}
    open_at: dict[str, int] = {}
    for n, line in enumerate(text.splitlines()):
        if m := START.match(line):
            name = m.group(1)
            if name in open_at or name in found:
                raise ValueError(f"{page}:{n + 1}: marker 'generated: {name}' appears twice.")
            open_at[name] = n
        elif m := END.match(line):
            name = m.group(1)
            if name not in open_at:
                raise ValueError(
                    f"{page}:{n + 1}: '/generated: {name}' closes a marker that was not opened."
                )
            found[name] = (open_at.pop(name), n)
    if open_at:
        name, n = next(iter(open_at.items()))
        raise ValueError(
            f"{page}:{n + 1}: marker 'generated: {name}' is never closed; add "
            f"'<!-- /generated: {name} -->' after the table."
        )
    return found


def splice(text: str, name: str, content: str, page: str = "page") -> str:
    """Return ``text`` with the lines between the ``name`` markers replaced by ``content``.

    Example:
        >>> page = "x\\n<!-- generated: t -->\\nold\\n<!-- /generated: t -->\\ny\\n"
        >>> print(splice(page, "t", "| new |\\n"), end="")
        x
        <!-- generated: t -->
        <BLANKLINE>
        | new |
        <BLANKLINE>
        <!-- /generated: t -->
        y
    """
    spans = markers(text, page)
    if name not in spans:
        known = ", ".join(sorted(spans)) or "none"
        raise ValueError(
            f"{page} has no '<!-- generated: {name} -->' ... '<!-- /generated: {name} -->' "
            f"markers (markers present: {known}). Add them where the table belongs."
        )
    start, end = spans[name]
    lines = text.splitlines(keepends=True)
    # blank lines around the content: Markdown ends an HTML comment block at a blank line
    body = "\n" + content.strip("\n") + "\n\n"
    return "".join(lines[: start + 1]) + body + "".join(lines[end:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="the docs page (or, with --list, a folder)")
    parser.add_argument("name", nargs="?", help="the marker name")
    parser.add_argument("content", nargs="?", help="the generated Markdown file")
    parser.add_argument("--list", action="store_true", help="list marker pairs under PAGE")
    args = parser.parse_args(argv)
    if args.list:
        root = Path(args.page)
        for page in sorted(root.rglob("*.md")) if root.is_dir() else [root]:
            for name in markers(page.read_text(encoding="utf-8"), str(page)):
                print(f"{page}: {name}")
        return 0
    if not args.name or not args.content:
        parser.error("give PAGE NAME CONTENT (or --list PAGE)")
    page, content = Path(args.page), Path(args.content)
    for path, what in ((page, "page"), (content, "generated file")):
        if not path.is_file():
            print(f"splice: the {what} {path} does not exist.", file=sys.stderr)
            return 2
    try:
        text = splice(
            page.read_text(encoding="utf-8"),
            args.name,
            content.read_text(encoding="utf-8"),
            str(page),
        )
    except ValueError as err:
        print(f"splice: {err}", file=sys.stderr)
        return 2
    atomic_write(page, text)
    print(f"spliced {content} into {page} ({args.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
