"""The layout shows the trust boundary: the untrusted worker (grader/worker) and what both sides share
(grader/boundary) import nothing else of the grader, and only they reach a worker."""

import ast
from pathlib import Path

import pytest

from grader.sandbox import levels
from support import PROJECT_ROOT

GRADER = PROJECT_ROOT / "grader"
WORKER_SIDE = ("worker", "boundary")


def grader_imports(path: Path) -> set[str]:
    """The grader modules a file imports (relative imports named by their dots)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "grader"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add("." * node.level + (node.module or ""))
            elif node.module and node.module.split(".")[0] == "grader":
                found |= ({f"{node.module}.{alias.name}" for alias in node.names} if node.module == "grader"
                          else {node.module})
    return found


def outside_the_worker_side(path: Path) -> set[str]:
    return {name for name in grader_imports(path)
            if name.startswith(".") or name.split(".")[1] not in WORKER_SIDE}


@pytest.mark.parametrize("path", sorted(p for side in WORKER_SIDE for p in (GRADER / side).glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_worker_side_imports_nothing_else_of_the_grader(path):
    assert outside_the_worker_side(path) == set()


def test_an_import_across_the_boundary_is_seen(tmp_path):
    source = tmp_path / "loop.py"
    source.write_text("import os\nfrom grader.boundary import wire\nfrom grader import results\n"
                      "def f():\n    from grader.engine.grading import grade\n    from . import confine\n")
    assert outside_the_worker_side(source) == {"grader.results", "grader.engine.grading", "."}


def test_the_package_marker_imports_nothing():
    assert grader_imports(GRADER / "__init__.py") == set()
    assert not [n for n in ast.parse((GRADER / "__init__.py").read_text()).body
                if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_a_worker_is_given_the_worker_side_and_nothing_else():
    given = sorted(str(p.relative_to(levels.worker_code_directory() / "grader"))
                   for p in (levels.worker_code_directory() / "grader").rglob("*") if p.is_file())
    expected = sorted(["__init__.py"] + [str(p.relative_to(GRADER)) for side in WORKER_SIDE
                                         for p in (GRADER / side).glob("*.py")])
    assert given == expected
