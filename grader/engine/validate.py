"""`grader validate A`: the assignment's configuration, checks and files agree with each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from grader.assignment import Assignment
from grader.engine.pytest_plugin import QUIET_PYTEST_OPTIONS, forget_check_modules


class _Collector:
    runs_assignment_checks = True  # the checks' conftest.py lets pytest go on only under the grader

    def __init__(self) -> None:
        self.markers: dict[str, str | None] = {}
        self.errors: list[str] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "task(task_id): links a check to a task of assignment.yaml")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(f"{report.nodeid}: cannot be collected: {report.longreprtext.strip().splitlines()[-1]}")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("task")
            if marker is not None and len(marker.args) > 1:
                self.errors.append(f"{item.nodeid}: its @pytest.mark.task names {len(marker.args)} tasks "
                                   f"({', '.join(map(str, marker.args))}); a check belongs to exactly one")
            self.markers[item.nodeid] = marker.args[0] if marker is not None and len(marker.args) == 1 else None


def collect_check_tasks(paths: list[Path], root: Path) -> _Collector:
    collector = _Collector()
    existing = [str(p) for p in paths if p.is_dir()]
    if existing:
        try:
            pytest.main([*existing, "--collect-only", *QUIET_PYTEST_OPTIONS, "--rootdir", str(root),
                         "-c", str(Path(__file__).with_name("checks.ini"))], plugins=[collector])
        finally:
            forget_check_modules(existing)
    return collector


def _signatures(path: Path) -> dict[str, str]:
    """Top-level functions and classes (with their methods) and their argument lists."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = ast.unparse(node.args)
        elif isinstance(node, ast.ClassDef):
            found[node.name] = "class"
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = ast.unparse(item.args)
    return found


def validate(assignment: Assignment) -> list[str]:
    """Every problem found, each naming the file at fault; an empty list means clean."""
    problems = []
    spec = assignment.spec
    paths = [assignment.checks_directory]
    if assignment.hidden_checks_directory is not None:
        paths.append(assignment.hidden_checks_directory)
    collector = collect_check_tasks(paths, assignment.directory)
    problems += collector.errors
    task_ids = {t.id for t in spec.tasks}
    checked = set()
    for nodeid, task_id in sorted(collector.markers.items()):
        if task_id is None and any(nodeid in error for error in collector.errors):
            continue  # already said: more than one task named
        if task_id is None:
            problems.append(f"{nodeid}: has no @pytest.mark.task(\"<task id>\") marker")
        elif task_id not in task_ids:
            problems.append(f"{nodeid}: names task {task_id!r}, which assignment.yaml does not define")
        else:
            checked.add(task_id)
    for task in spec.tasks:
        if task.training is None and task.id not in checked:
            problems.append(f"{assignment.directory / 'assignment.yaml'}: task {task.id!r} has no check")
        if task.training is not None and task.id in checked:
            problems.append(f"{assignment.directory / 'assignment.yaml'}: training task {task.id!r} also has checks")
    if assignment.reference_directory is not None:
        for name in spec.student_files:
            stub, solution = assignment.directory / name, assignment.reference_directory / name
            if not solution.is_file():
                problems.append(f"{solution}: missing (the reference must have every student file)")
                continue
            stub_names, solution_names = _signatures(stub), _signatures(solution)
            for symbol in sorted(set(stub_names) | set(solution_names)):
                if symbol not in solution_names:
                    problems.append(f"{name}: {symbol} is in the stub but not in the reference")
                elif symbol not in stub_names:
                    problems.append(f"{name}: {symbol} is in the reference but not in the stub")
                elif stub_names[symbol] != solution_names[symbol]:
                    problems.append(f"{name}: {symbol} differs between the stub and the reference "
                                    f"({stub_names[symbol]!r} vs {solution_names[symbol]!r})")
    problems += _training_entries_defined(assignment)
    return problems


def _training_entries_defined(assignment: Assignment) -> list[str]:
    """Each training task's entry is a function of its module in the stub and in the reference: a
    misspelt one would fail every submission, the reference's too, as if the students' code were wrong."""
    problems = []
    for task in assignment.spec.tasks:
        if task.training is None:
            continue
        module, function = task.training.entry.split(".")
        for folder, what in ((assignment.directory, "stub"), (assignment.reference_directory, "reference")):
            path = folder / f"{module}.py" if folder is not None else None
            if path is None or not path.is_file():
                continue
            if _signatures(path).get(function) in (None, "class"):
                problems.append(f"{assignment.directory / 'assignment.yaml'}: task {task.id!r}: its training entry "
                                f"{task.training.entry} is no function of the {what}'s {module}.py")
    return problems
