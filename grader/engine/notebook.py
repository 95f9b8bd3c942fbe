"""A submission handed in as a Jupyter notebook (`.ipynb`, e.g. from Colab): the student files are
read out of its cells, and nothing of the notebook runs in the grader (its cells are parsed, never
executed); only the files made here go to the worker.

Two ways a notebook can hold the student files, both as students of these courses write them:

- a cell that writes a file: `%%writefile layers.py` (or `%%writefile -a layers.py` to append, or a
  path ending in the file's name) followed by the file's text;
- cells that define the functions and classes themselves: each top-level `def` or `class` whose name
  the assignment's stub of a student file defines replaces that definition in the stub (the last
  definition in the notebook wins, as it would when the notebook runs top to bottom). Helpers the
  stub does not define go into the file of the definitions in their cell.

A file written by `%%writefile` is taken as written; definitions in other cells then replace their
counterparts in it too.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

# A cell magic or shell line: not Python, left out of what is parsed.
_MAGIC = re.compile(r"^\s*[%!]")
_WRITEFILE = re.compile(r"^%%writefile(?P<append>\s+-a)?\s+(?P<path>\S+)\s*$")


class NotebookError(Exception):
    """The file is not a notebook the grader can read; the message says why."""


@dataclass
class _Definition:
    name: str
    source: str      # the definition's text, decorators included
    cell: int


@dataclass
class NotebookFiles:
    files: dict[str, str]                        # student file name -> its text
    warnings: list[str] = field(default_factory=list)


def student_files_from_notebook(text: str, stubs: dict[str, str]) -> NotebookFiles:
    """The student files a notebook holds. `stubs`: each student file's stub text (the assignment's),
    which says which names belong to which file."""
    import nbformat

    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for a broken file
        raise NotebookError(f"not a readable Jupyter notebook ({type(exc).__name__}: {exc})") from None
    owner = _owners(stubs)
    written: dict[str, str] = {}
    definitions: dict[str, list[_Definition]] = {}   # file -> definitions, in notebook order
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
        code = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            if any(isinstance(line, str) and re.match(r"\s*(def|class)\s", line) for line in code.splitlines()):
                warnings.append(f"cell {number} is not valid Python (line {exc.lineno}: {exc.msg}); its definitions "
                                "were not taken")
            continue
        _collect(tree, code, number, owner, definitions)
    files = dict(written)
    for name, found in definitions.items():
        files[name] = _replace_definitions(files.get(name, stubs[name]), found)
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
