"""A submission handed in as a Jupyter notebook (`.ipynb`, e.g. from Colab): the student files are
read out of its cells, and nothing of the notebook runs in the grader (its cells are parsed, never
executed); only the files made here go to the worker.

Two ways a notebook can hold the student files, both as students of these courses write them:

- a cell that writes a file: `%%writefile layers.py` (or `%%writefile -a layers.py` to append, or a
  path ending in the file's name) followed by the file's text;
- cells that define the functions and classes themselves: each top-level `def` or `class` whose name
  the assignment's stub of a student file defines replaces that definition in the stub (the last
  definition in the notebook wins, as it would when the notebook runs top to bottom). Helpers the
  stub does not define go into the file of the definitions in their cell. What the definitions of a
  file use from the notebook's other top-level lines comes with them, as the notebook run top to
  bottom would have it: imports (of a module installed where the grader runs), assignments of
  names (`EPS = 1e-8`) and helpers defined in other cells, each the last of its name, and what
  those use in turn. Nothing else of a cell (a call, a print, a training run) is taken.

A file written by `%%writefile` is taken as written; definitions in other cells then replace their
counterparts in it too.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

# A cell magic or shell line: not Python, left out of what is parsed.
_MAGIC = re.compile(r"^\s*[%!]")
# A cell that begins with a cell magic runs as the kernel's Python only for these; the others
# (`%%script false`, `%%bash`, `%%html`, `%%timeit`, `%%python3` in a subprocess, ...) define nothing
# in the notebook's namespace, so their definitions are not the notebook's.
_CELL_MAGIC = re.compile(r"^\s*%%(?P<name>\w+)")
_PYTHON_CELL_MAGICS = {"time", "capture"}
_WRITEFILE = re.compile(r"^%%writefile(?P<append>\s+-a)?\s+(?P<path>\S+)\s*$")


class NotebookError(Exception):
    """The file is not a notebook the grader can read; the message says why."""


@dataclass
class _Definition:
    name: str
    source: str      # the definition's text, decorators included
    cell: int


@dataclass
class _Support:
    """A top-level import, assignment or helper definition the definitions may use."""
    binds: frozenset[str]
    source: str
    cell: int
    order: int       # its place in the notebook, for emitting in notebook order
    is_definition: bool
    module: str = ""  # an import's top-level module


@dataclass
class NotebookFiles:
    files: dict[str, str]                        # student file name -> its text
    warnings: list[str] = field(default_factory=list)


def _read(text: str) -> Any:
    import nbformat

    try:
        with warnings.catch_warnings():
            # The format's own complaints (cells without ids, as older Jupyter wrote them) say nothing
            # about the code, and printed they read as the grader's.
            warnings.simplefilter("ignore")
            return nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for a broken file
        raise NotebookError(f"not a readable Jupyter notebook ({type(exc).__name__}: {exc})") from None


def student_files_from_notebook(text: str, stubs: dict[str, str]) -> NotebookFiles:
    """The student files a notebook holds. `stubs`: each student file's stub text (the assignment's),
    which says which names belong to which file."""
    notebook = _read(text)
    owner = _owners(stubs)
    written: dict[str, str] = {}
    definitions: dict[str, list[_Definition]] = {}   # file -> definitions, in notebook order
    support: list[_Support] = []
    warnings: list[str] = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        first, _, body = source.partition("\n")
        if (match := _WRITEFILE.match(first.strip())) is not None:
            name = _file_name(match["path"])
            if name in stubs:
                written[name] = (written.get(name, "") if match["append"] else "") + body
            continue
        if (magic := _CELL_MAGIC.match(first)) is not None and magic["name"] not in _PYTHON_CELL_MAGICS:
            if re.search(r"^\s*(def|class)\s", body, re.MULTILINE):
                warnings.append(f"cell {number} begins with %%{magic['name']}, so the notebook does not run it as "
                                "Python: its definitions were not taken")
            continue
        code = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            if any(isinstance(line, str) and re.match(r"\s*(def|class)\s", line) for line in code.splitlines()):
                warnings.append(f"cell {number} is not valid Python (line {exc.lineno}: {exc.msg}); its definitions "
                                "were not taken")
            continue
        _collect(tree, code, number, owner, definitions)
        support.extend(_support(tree, code, number, owner, len(support)))
    files = dict(written)
    for name, found in definitions.items():
        text = files.get(name, stubs[name])
        lines, helpers = _used_support(found, support, text, warnings)
        files[name] = _with_support_lines(_replace_definitions(text, found + helpers), lines)
    return NotebookFiles(files, warnings)


def _owners(stubs: dict[str, str]) -> dict[str, str]:
    """Top-level name -> the student file whose stub defines it (names defined in two are left out)."""
    seen: dict[str, list[str]] = {}
    for file, text in stubs.items():
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                seen.setdefault(node.name, []).append(file)
    return {name: files[0] for name, files in seen.items() if len(files) == 1}


def _collect(tree: ast.Module, code: str, cell: int, owner: dict[str, str],
             definitions: dict[str, list[_Definition]]) -> None:
    known = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    files_of_cell = {owner[n.name] for n in known if n.name in owner}
    home = next(iter(files_of_cell)) if len(files_of_cell) == 1 else None
    for node in known:
        file = owner.get(node.name, home)
        if file is not None:
            definitions.setdefault(file, []).append(_Definition(node.name, _segment(code, node), cell))


def _support(tree: ast.Module, code: str, cell: int, owner: dict[str, str], start: int) -> list[_Support]:
    """The cell's top-level imports, assignments of names and definitions the stubs do not own."""
    found = []
    for node in tree.body:
        binds, module = set(), ""
        if isinstance(node, ast.Import):
            binds = {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
            module = node.names[0].name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__" or node.level or any(alias.name == "*" for alias in node.names):
                continue   # a relative or star import binds names nobody can know here
            binds = {alias.asname or alias.name for alias in node.names}
            module = (node.module or "").partition(".")[0]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None or not all(isinstance(target, ast.Name) for target in targets):
                continue   # `x[0] = ...`, `obj.attr = ...` change something else: not taken
            binds = {target.id for target in targets}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name not in owner:
            binds = {node.name}
        if binds:
            is_definition = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            # A statement's own text, not its line's: `EPS = 1e-8; train()` brings no call along.
            source = _segment(code, node) if is_definition else (ast.get_source_segment(code, node) or "") + "\n"
            found.append(_Support(frozenset(binds), source, cell, start + len(found), is_definition, module))
    return found


def _used_support(found: list[_Definition], support: list[_Support], text: str,
                  warnings: list[str]) -> tuple[list[_Support], list[_Definition]]:
    """The support statements `found` uses, and what those use in turn (each name's last binding in
    the notebook), minus names the definitions themselves or the file's own top level bind:
    the statements to put after the file's imports, and the helper definitions to add."""
    own = {d.name for d in found} | _top_level_names(text)
    last: dict[str, _Support] = {}
    for statement in support:
        for name in statement.binds:
            last[name] = statement
    wanted = _names_used("\n".join(d.source for d in found))
    taken: dict[int, _Support] = {}
    while pending := [last[name] for name in wanted - own if name in last and last[name].order not in taken]:
        wanted = set()
        for statement in pending:
            taken[statement.order] = statement
            wanted |= _names_used(statement.source)
        wanted -= set().union(*(s.binds for s in taken.values()))
    lines, helpers = [], []
    for statement in sorted(taken.values(), key=lambda s: s.order):
        if statement.is_definition:
            helpers.append(_Definition(next(iter(statement.binds)), statement.source, statement.cell))
        elif statement.module and not _installed(statement.module):
            warnings.append(f"cell {statement.cell} imports {statement.module}, which is not installed where the "
                            f"submission is graded: left out ({statement.source.strip()})")
        else:
            lines.append(statement)
    return lines, helpers


def _installed(module: str) -> bool:
    """Whether a top-level module can be imported where the grader runs (nothing of it is imported
    here). A name this process holds without a spec (`__main__`, a compiled extension's runtime) is
    not one a notebook's code can import."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _names_used(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _top_level_names(text: str) -> set[str]:
    """The names a file's own top level binds (its imports, assignments, definitions)."""
    names = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _with_support_lines(text: str, lines: list[_Support]) -> str:
    """`text` with the support statements after its last top-level import before its first
    definition (after its docstring where it imports nothing)."""
    if not lines:
        return text
    body = ast.parse(text).body
    anchor = 0
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (node is body[0] and isinstance(node, ast.Expr)):
            anchor = node.end_lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            break
    added = "".join(f"# from the notebook's cell {s.cell}\n{s.source}" for s in lines)
    rows = text.splitlines(keepends=True)
    if anchor and not rows[anchor - 1].endswith("\n"):
        rows[anchor - 1] += "\n"
    return "".join(rows[:anchor]) + "\n" + added + "".join(rows[anchor:])


def _segment(code: str, node: ast.AST) -> str:
    lines = code.splitlines()
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1:node.end_lineno]) + "\n"


def _replace_definitions(text: str, found: list[_Definition]) -> str:
    """`text` with each definition of `found` put in place of the one of that name (the last of a
    name wins); definitions `text` lacks are appended."""
    latest = {d.name: d for d in found}
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    spans = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in latest:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans.append((start, node.end_lineno, latest.pop(node.name)))
    for start, end, definition in sorted(spans, key=lambda span: span[0], reverse=True):
        lines[start - 1:end] = [definition.source]
    extra = "".join(f"\n\n{d.source}" for d in sorted(latest.values(), key=lambda d: d.cell))
    return "".join(lines) + extra


def _file_name(path: str) -> str:
    """The last component of a path a cell writes to, whichever separator it uses."""
    return PurePosixPath(PureWindowsPath(path.strip("'\"")).as_posix()).name
