"""Write the error catalogue of docs/troubleshooting.md from the library's source.

    python apps/docs_figures/errors.py                 # rewrite the catalogue in place
    python apps/docs_figures/errors.py --check         # exit 1 if the committed page is stale
    python apps/docs_figures/errors.py --out other.md  # another page with the same markers

The script reads every module under ``keras_quaternion/`` with :mod:`ast` (nothing is imported,
so it needs neither TensorFlow nor Keras) and lists each ``raise`` of an exception built from a
message: ``raise ValueError(...)``, ``raise DatasetLayoutError(...)``,
``raise click.BadParameter(...)``, ``click.UsageError``, ``click.ClickException``,
``click.FileError`` and so on. A ``return SomeError(...)`` counts too (a helper that builds the
exception its caller raises).

Each message is shown as a template:

* string constants as text, implicit concatenation and ``+`` joined;
* f-string placeholders as ``{expr}`` (``ast.unparse`` of the expression, without ``!r`` or a
  format spec), except that a placeholder holding a local string variable or a choice between
  two strings (``{'it' if n == 1 else 'them'}``) is written out;
* ``"..." % x`` and ``"...".format(x)`` as their template string;
* a message held in a variable is resolved from the assignments to that name earlier in the same
  function (``msg = ...`` then ``msg += ...``, with ``[a | b]`` for alternatives of an
  ``if``/``else`` and ``[a]`` for an optional part); a message returned by a helper function of
  the same module is resolved the same way; what cannot be resolved reads
  ``(message built at run time)``;
* the library's own exception classes and ``click.BadParameter`` are shown with the text their
  constructor wraps around the arguments.

Entries are grouped by area in data-flow order (layers, features, audio, datasets, models,
counting, training, pruning, distill, export, cli, then shared helpers such as
``files.py`` and any module of a new area), sorted by file and line, with
identical templates of one file listed once. Only the part of the page between
``<!-- error-catalogue:start -->`` and ``<!-- error-catalogue:end -->`` is rewritten, atomically
(temporary file in the same folder, then :func:`os.replace`); the output does not depend on the
machine, the time or the order the file system lists files in.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "keras_quaternion"
DEFAULT_OUT = ROOT / "docs" / "troubleshooting.md"
START = "<!-- error-catalogue:start -->"
END = "<!-- error-catalogue:end -->"
RUNTIME = "(message built at run time)"

#: user-facing areas in data-flow order, with the heading of each section; a module of another
#: area is listed after these under its own name
AREAS = {
    "layers": "Layers (`keras_quaternion.layers`)",
    "features": "Features (`keras_quaternion.features`)",
    "audio": "Audio files (`keras_quaternion.audio`)",
    "datasets": "Datasets (`keras_quaternion.datasets`)",
    "models": "Models (`keras_quaternion.models`)",
    "counting": "Counting parameters and MACs (`keras_quaternion.counting`)",
    "training": "Training, evaluation and the commands' data (`keras_quaternion.training`)",
    "pruning": "Pruning (`keras_quaternion.pruning`)",
    "distill": "Distillation (`keras_quaternion.distill`)",
    "export": "Export (`keras_quaternion.export`, `kq-export`)",
    "model_info": "What a model records (`keras_quaternion.model_info`)",
    "predict": "Predicting on recordings (`keras_quaternion.predict`, `kq-predict`)",
    "cli": "The commands (`keras_quaternion.cli`: `kq`, `kq-train`, `kq-eval`, `kq-prune`, "
    "`kq-distill`, `kq-export`, `kq-predict`, `kq-data`)",
    # helpers shared by all areas
    "files": "Writing files (`keras_quaternion.files`)",
    "outdir": "Output folders of the commands (`keras_quaternion.outdir`: `--out`, `--cache-dir`)",
    "_startup": "Start-up of the commands (`keras_quaternion._startup`)",
}

#: click exceptions whose names do not end in Error/Exception
CLICK_EXCEPTIONS = {
    "BadParameter",
    "BadOptionUsage",
    "BadArgumentUsage",
    "MissingParameter",
    "NoSuchOption",
    "UsageError",
    "Abort",
}


@dataclass(frozen=True)
class Entry:
    """One error message of the catalogue.

    Attributes:
        area: the section it is listed in (a key of :data:`AREAS`, or another top-level name).
        path: the module, relative to ``keras_quaternion/`` (POSIX separators).
        line: line of the ``raise`` (or ``return``) statement.
        function: qualified name of the enclosing function (``"(module level)"`` outside one).
        exc_type: the exception as written in the source (``ValueError``, ``click.BadParameter``).
        template: the message, rendered as described in the module docstring.
        also: further lines of the same file that raise the same type with the same template.
    """

    area: str
    path: str
    line: int
    function: str
    exc_type: str
    template: str
    also: tuple[int, ...] = ()


# ---------------------------------------------------------------------------------------------
# rendering expressions


class _Unknown:
    """Marks a variable whose value cannot be followed (assigned in a loop, a try, ...)."""


UNKNOWN = _Unknown()


def _combine(a: str, b: str) -> str:
    """Render two alternatives: one text if equal, ``[x]`` if one is empty, else ``[a | b]``."""
    if a == b:
        return a
    if not b:
        return f"[{a}]"
    if not a:
        return f"[{b}]"
    return f"[{a} | {b}]"


def _is_stringy(node: ast.AST) -> bool:
    """True for a string constant, an f-string, or a ``+`` with a string on one side."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_stringy(node.left) or _is_stringy(node.right)
    return False


def _is_template(node: ast.AST) -> bool:
    """True for an expression that builds message text: a string (see :func:`_is_stringy`),
    ``"..." % x``, ``"...".format(...)`` or a conditional between such expressions."""
    if _is_stringy(node):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _is_stringy(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _is_stringy(node.func.value)
    if isinstance(node, ast.IfExp):
        return _is_template(node.body) and _is_template(node.orelse)
    return False


def _exception_name(func: ast.AST) -> str | None:
    """The last name of ``func`` if it names an exception class, else None."""
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        name = func.attr
    else:
        return None
    if name in CLICK_EXCEPTIONS or name.endswith(("Error", "Exception", "Exit", "Warning")):
        return name
    return None


def _stores(node: ast.AST, name: str) -> bool:
    """True if ``name`` is assigned anywhere inside ``node`` (nested functions excluded)."""
    stack = [node]
    while stack:
        item = stack.pop()
        for child in ast.iter_child_nodes(item):
            if isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ):
                continue
            if (
                isinstance(child, ast.Name)
                and child.id == name
                and isinstance(child.ctx, ast.Store)
            ):
                return True
            stack.append(child)
    return False


class _Module:
    """Renders the messages of one parsed module."""

    def __init__(self, tree: ast.Module):
        self.helpers = {
            node.name: node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.constants = {}
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and _is_stringy(node.value)
            ):
                self.constants[node.targets[0].id] = node.value

    # -- expressions ---------------------------------------------------------------------------

    def render(self, node: ast.AST, scope, line: int, depth: int = 0) -> str:
        """Render ``node`` (a message or a piece of one) as template text."""
        if depth > 8:
            return "{" + ast.unparse(node) + "}"
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else "{" + ast.unparse(node) + "}"
        if isinstance(node, ast.JoinedStr):
            return "".join(self._piece(value, scope, line, depth) for value in node.values)
        if isinstance(node, ast.BinOp) and _is_stringy(node):
            if isinstance(node.op, ast.Add):
                left = self.render(node.left, scope, line, depth + 1)
                return left + self.render(node.right, scope, line, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if _is_stringy(node.left):
                return self.render(node.left, scope, line, depth + 1)
        if isinstance(node, ast.IfExp):
            return _combine(
                self.render(node.body, scope, line, depth + 1),
                self.render(node.orelse, scope, line, depth + 1),
            )
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "format"
                and _is_stringy(func.value)
            ):
                return self.render(func.value, scope, line, depth + 1)
            if (
                isinstance(func, ast.Name)
                and func.id in ("str", "repr")
                and len(node.args) == 1
                and not node.keywords
            ):
                return "{" + ast.unparse(node.args[0]) + "}"
            if isinstance(func, ast.Name) and func.id in self.helpers:
                text = self.helper_message(self.helpers[func.id], depth + 1)
                if text is not None:
                    return text
        if isinstance(node, ast.Name):
            value = self.resolve(node.id, scope, line, depth + 1)
            if isinstance(value, str):
                return value
        return "{" + ast.unparse(node) + "}"

    def _piece(self, value, scope, line: int, depth: int) -> str:
        """One part of an f-string: its text, or ``{expr}`` for a placeholder. A placeholder
        without ``!r`` or a format spec that holds a local string variable, or a choice between
        two strings, is written out (``[a | b]`` for the choice)."""
        if isinstance(value, ast.Constant):
            return str(value.value)
        expr = value.value
        if value.conversion in (-1, ord("s")) and value.format_spec is None:
            if isinstance(expr, ast.Name):
                resolved = self.resolve(expr.id, scope, line, depth + 1)
                if isinstance(resolved, str):
                    return resolved
            if isinstance(expr, ast.IfExp) and _is_template(expr):
                return self.render(expr, scope, line, depth + 1)
        return "{" + ast.unparse(expr) + "}"

    def message(self, node: ast.AST, scope, line: int) -> str:
        """Render a whole message: like :meth:`render`, but a bare unresolved name or helper
        call reads ``(message built at run time)`` rather than ``{name}``."""
        if isinstance(node, ast.Name):
            value = self.resolve(node.id, scope, line, 1)
            return value if isinstance(value, str) else RUNTIME
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in self.helpers:
                text = self.helper_message(self.helpers[node.func.id], 1)
                return RUNTIME if text is None else text
        if not (_is_template(node) or isinstance(node, ast.Call)):
            return RUNTIME  # an attribute, a subscript, a number ...: known at run time only
        return self.render(node, scope, line)

    def helper_message(self, func, depth: int) -> str | None:
        """The message a helper function returns, if it has exactly one string ``return``."""
        returns = [
            node
            for node in _walk_scope(func)
            if isinstance(node, ast.Return) and node.value is not None
        ]
        if len(returns) != 1:
            return None
        ret = returns[0]
        if isinstance(ret.value, ast.Name):
            value = self.resolve(ret.value.id, func, ret.lineno, depth)
            return value if isinstance(value, str) else None
        if not _is_template(ret.value):
            return None
        return self.render(ret.value, func, ret.lineno, depth)

    # -- variables -----------------------------------------------------------------------------

    def resolve(self, name: str, scope, line: int, depth: int):
        """The rendered value of ``name`` just before ``line`` in ``scope`` (a function node),
        falling back to a module-level string constant; None or UNKNOWN if there is none."""
        value = None
        if scope is not None:
            value = self._run(scope.body, name, line, None, scope, depth)
            local = {a.arg for a in ast.walk(scope.args) if isinstance(a, ast.arg)}
            if value is None and (name in local or _stores(scope, name)):
                return UNKNOWN  # a parameter, or set later / in a loop header: not a constant
        if value is None and name in self.constants and depth <= 8:
            value = self.render(self.constants[name], None, 0, depth + 1)
        return value

    def _run(self, stmts, name, line, value, scope, depth):
        """Follow the assignments to ``name`` through ``stmts`` up to ``line`` (None: all)."""
        for stmt in stmts:
            if line is not None and stmt.lineno > line:
                break
            if line is not None and stmt.lineno <= line <= stmt.end_lineno:
                for block in _blocks(stmt):
                    if block[0].lineno <= line <= block[-1].end_lineno:
                        return self._run(block, name, line, value, scope, depth)
                return value
            value = self._effect(stmt, name, value, scope, depth)
        return value

    def _text_of(self, node, scope, line, depth):
        """The rendered text ``node`` assigns, or UNKNOWN if it is not message text."""
        if depth > 8 or not _is_template(node):
            return UNKNOWN
        return self.render(node, scope, line, depth + 1)

    def _effect(self, stmt, name, value, scope, depth):
        """The value of ``name`` after ``stmt`` (which lies wholly before the line of interest)."""
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return value
        if isinstance(stmt, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                return self._text_of(stmt.value, scope, stmt.lineno, depth)
            return UNKNOWN if _stores(stmt, name) else value
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id != name:
                return value
            if stmt.value is None:
                return UNKNOWN
            return self._text_of(stmt.value, scope, stmt.lineno, depth)
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id != name:
                return value
            if not (isinstance(stmt.op, ast.Add) and isinstance(value, str)):
                return UNKNOWN
            more = self._text_of(stmt.value, scope, stmt.lineno, depth)
            return value + more if isinstance(more, str) else UNKNOWN
        if isinstance(stmt, ast.If) and _stores(stmt, name):
            first = self._run(stmt.body, name, None, value, scope, depth)
            second = self._run(stmt.orelse, name, None, value, scope, depth)
            if not (isinstance(first, str) and isinstance(second, str)):
                return UNKNOWN
            if isinstance(value, str) and first.startswith(value) and second.startswith(value):
                return value + _combine(first[len(value) :], second[len(value) :])
            return _combine(first, second)
        if isinstance(stmt, ast.With | ast.AsyncWith):
            return self._run(stmt.body, name, None, value, scope, depth)
        return UNKNOWN if _stores(stmt, name) else value


def _blocks(stmt):
    """The statement lists nested directly in a compound statement."""
    blocks = []
    for field in ("body", "orelse", "finalbody"):
        block = getattr(stmt, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            blocks.append(block)
    for handler in getattr(stmt, "handlers", []) or []:
        blocks.append(handler.body)
    for case in getattr(stmt, "cases", []) or []:
        blocks.append(case.body)
    return blocks


def _walk_scope(func):
    """Every node of ``func`` outside its nested functions and classes."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child)


# ---------------------------------------------------------------------------------------------
# exception-specific messages


def _bind(call: ast.Call, params: tuple[str, ...]) -> dict[str, ast.AST]:
    """Map constructor parameter names to the argument expressions of ``call``."""
    bound = dict(zip(params, call.args, strict=False))
    for keyword in call.keywords:
        if keyword.arg is not None:
            bound[keyword.arg] = keyword.value
    return bound


def _text(mod: _Module, node, scope, line) -> str:
    return mod.render(node, scope, line)


def _bad_parameter(mod, call, scope, line):
    args = _bind(call, ("message", "ctx", "param", "param_hint"))
    message = mod.message(args["message"], scope, line) if "message" in args else ""
    hint = args.get("param_hint") or args.get("param")
    if hint is None:
        return f"Invalid value: {message}"
    return f"Invalid value for {_text(mod, hint, scope, line)}: {message}"


def _file_error(mod, call, scope, line):
    args = _bind(call, ("filename", "hint"))
    name = _text(mod, args["filename"], scope, line) if "filename" in args else "{filename}"
    hint = _text(mod, args["hint"], scope, line) if "hint" in args else "unknown error"
    return f"Could not open file '{name}': {hint}"


def _dataset_layout(mod, call, scope, line):
    # mirrors keras_quaternion.datasets.base.DatasetLayoutError.__init__
    args = _bind(call, ("dataset", "folder", "problem", "expected_layout"))
    dataset = _text(mod, args.get("dataset", ast.Name("dataset")), scope, line)
    problem = _text(mod, args.get("problem", ast.Name("problem")), scope, line)
    folder = args.get("folder", ast.Name("folder"))
    if isinstance(folder, ast.Constant) and folder.value is None:
        where = "no data_dir was given"
    else:
        where = f"in '{_text(mod, folder, scope, line)}'"
    return f"Dataset '{dataset}': {problem} ({where}). Expected layout (…) + the folder tree"


def _audio_decode(mod, call, scope, line):
    # mirrors keras_quaternion.audio.AudioDecodeError.__init__; the default hint is left out
    args = _bind(call, ("path", "reason", "hint"))
    path = _text(mod, args.get("path", ast.Name("path")), scope, line)
    reason = _text(mod, args.get("reason", ast.Name("reason")), scope, line)
    text = f"Cannot decode audio file '{path}': {reason}."
    if "hint" in args:
        text += " " + _text(mod, args["hint"], scope, line)
    return text


#: exceptions whose constructor wraps its arguments in a fixed text
FORMATTERS = {
    "BadParameter": _bad_parameter,
    "FileError": _file_error,
    "DatasetLayoutError": _dataset_layout,
    "AudioDecodeError": _audio_decode,
}


# ---------------------------------------------------------------------------------------------
# extraction


def area_of(path: str) -> str:
    """The catalogue area of a module path relative to the package (``"layers/conv.py"``)."""
    head = path.split("/", 1)[0]
    return head[: -len(".py")] if head.endswith(".py") else head


def extract(source: str, path: str) -> list[Entry]:
    """Every exception-with-a-message of one module's source, in line order, de-duplicated.

    Args:
        source: the module's Python source.
        path: its path relative to ``keras_quaternion/`` with ``/`` separators (used for the
            area and shown in the catalogue).

    Returns:
        the entries, sorted by line; a template raised again (same type, same text) further down
        the file is folded into the first entry's ``also``.
    """
    tree = ast.parse(source)
    mod = _Module(tree)
    found: list[Entry] = []

    def visit(node, names, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, [*names, child.name], child)
                continue
            if isinstance(child, ast.ClassDef):
                visit(child, [*names, child.name], scope)
                continue
            call = None
            if isinstance(child, ast.Raise) and isinstance(child.exc, ast.Call):
                call = child.exc
            elif isinstance(child, ast.Return) and isinstance(child.value, ast.Call):
                call = child.value
            if call is not None:
                name = _exception_name(call.func)
                if name is not None:
                    found.append(_entry(mod, child, call, name, path, names, scope))
            visit(child, names, scope)

    visit(tree, [], None)
    found.sort(key=lambda e: e.line)
    merged: dict[tuple[str, str], Entry] = {}
    for entry in found:
        key = (entry.exc_type, entry.template)
        if key in merged:
            first = merged[key]
            merged[key] = Entry(**{**first.__dict__, "also": (*first.also, entry.line)})
        else:
            merged[key] = entry
    return sorted(merged.values(), key=lambda e: e.line)


def _entry(mod, stmt, call, name, path, names, scope) -> Entry:
    line = stmt.lineno
    if name in FORMATTERS:
        template = FORMATTERS[name](mod, call, scope, line)
    elif call.args:
        template = mod.message(call.args[0], scope, line)
    else:
        message = next((k.value for k in call.keywords if k.arg in ("message", "msg")), None)
        template = "(no message)" if message is None else mod.message(message, scope, line)
    return Entry(
        area=area_of(path),
        path=path,
        line=line,
        function=".".join(names) if names else "(module level)",
        exc_type=ast.unparse(call.func),
        template=template,
    )


def collect(package: Path = PACKAGE) -> list[Entry]:
    """Extract every module under ``package``; entries in catalogue order (area, file, line)."""
    entries = []
    for file in sorted(package.rglob("*.py"), key=lambda p: p.relative_to(package).as_posix()):
        if "__pycache__" in file.parts:
            continue
        rel = file.relative_to(package).as_posix()
        entries.extend(extract(file.read_text(encoding="utf-8"), rel))
    order = {area: n for n, area in enumerate(AREAS)}
    return sorted(entries, key=lambda e: (order.get(e.area, len(order)), e.area, e.path, e.line))


# ---------------------------------------------------------------------------------------------
# markdown


def _code(text: str) -> str:
    """``text`` as one Markdown code span (fence longer than any backtick run inside)."""
    text = text.replace("\n", " ⏎ ")
    run = longest = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_catalogue(entries: list[Entry]) -> str:
    """The Markdown between the markers (without the markers themselves)."""
    files = sorted({e.path for e in entries})
    lines = [
        "<!-- generated by apps/docs_figures/errors.py from the source: do not edit by hand -->",
        "",
        f"{len(entries)} messages from {len(files)} modules. How to read a template: `{{expr}}` "
        "is filled in at run time with the value of that Python expression (often its `repr`, "
        "so strings appear quoted); `[a | b]` means one of the alternatives, `[a]` an optional "
        "part; `⏎` a line break. `DatasetLayoutError` messages end with the expected folder "
        "tree of the dataset (also shown in [Datasets](datasets.md)), and `AudioDecodeError` "
        "messages without a hint of their own end with a default one (re-download or remove "
        "the file). Click errors are printed by the commands after `Error: `. Paths are "
        "relative to `keras_quaternion/`.",
    ]
    areas = list(AREAS) + sorted({e.area for e in entries} - set(AREAS))
    for area in areas:
        lines += ["", f"### {AREAS.get(area, f'`{area}`')}", ""]
        chosen = [e for e in entries if e.area == area]
        if not chosen:
            lines.append("No exception with a message is raised here.")
            continue
        for e in chosen:
            where = f"{e.path}:{e.line}"
            if e.also:
                where += " (also " + ", ".join(f":{n}" for n in e.also) + ")"
            lines.append(
                f"- **{e.exc_type}** · `{where}` · `{e.function}`<br>\n  {_code(e.template)}"
            )
    return "\n".join(lines) + "\n\n"


def update_page(text: str, catalogue: str) -> str:
    """Replace what lies between the markers of ``text`` by ``catalogue``.

    Raises:
        ValueError: the page does not hold exactly one start marker followed by one end marker.
    """
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(
            f"the page must hold one line {START} followed later by one line {END}; "
            "add them where the catalogue goes."
        )
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{catalogue}{END}{tail}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the permissions of the file it replaces."""
    from keras_quaternion.files import atomic_write

    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    atomic_write(path, text)
    if mode is not None:
        os.chmod(path, mode)


def build_page(page: Path, package: Path = PACKAGE) -> tuple[str, str, int]:
    """Return (current text, updated text, number of entries) of ``page``."""
    current = page.read_text(encoding="utf-8")
    entries = collect(package)
    return current, update_page(current, render_catalogue(entries)), len(entries)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Write the error catalogue of docs/troubleshooting.md from the source."
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"the page to update (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the page's catalogue differs from the source",
    )
    args = parser.parse_args(argv)
    page = Path(args.out)
    try:
        current, updated, count = build_page(page)
    except (OSError, ValueError) as err:
        print(f"errors.py: {page}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if current != updated:
            print(
                f"{page} is stale: run python apps/docs_figures/errors.py --out {args.out}",
                file=sys.stderr,
            )
            return 1
        print(f"{page} is current ({count} messages)")
        return 0
    if current != updated:
        write_atomic(page, updated)
        print(f"wrote {count} messages to {page}")
    else:
        print(f"{page} already current ({count} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
