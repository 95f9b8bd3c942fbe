"""Grading one submission of one assignment: checks, then training tasks, into a GradingResult."""

from __future__ import annotations

import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from grader import __version__
from grader.assignment import Assignment, ConfigError, TaskSpec
from grader.oracle import LiveBackend, ReferenceOracle, ReplayBackend, load_reference_package, unload_reference_package
from grader.pytest_plugin import GradingPlugin, run_checks
from grader.remote import WorkerSession
from grader.results import CheckResult, GradingResult, Outcome, TaskResult
from grader.submission import PreparedSubmission
from grader.training import run_training_tasks
from grader.worker_process import Limits

PUBLIC_SEED = 0


@dataclass
class GradeOptions:
    mode: str = "public"                   # public | official
    device: str = "auto"                   # auto | cpu | cuda
    data: str = "auto"                     # auto | cifar10 | synthetic
    data_dir: Optional[Path] = None
    only: Optional[str] = None             # glob over task ids
    seed: Optional[int] = None             # official mode: fix the run's seed
    training: bool = True                  # False: grade only the tasks scored by checks
    call_timeout_s: Optional[float] = None  # overrides the assignment's per-request limit
    synthetic_train: int = 10_000
    synthetic_test: int = 2_000
    validation_images: int = 1000
    on_collected: Callable[[int], None] = field(default=lambda count: None)
    on_check_done: Callable[[CheckResult], None] = field(default=lambda result: None)
    on_task_start: Callable[[str], None] = field(default=lambda task_id: None)


def library_versions() -> dict[str, str]:
    import sys

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            from importlib.metadata import version

            versions["torch"] = version("torch")
        except Exception:  # noqa: BLE001 - torch not installed at all
            pass
    else:
        versions["torch"] = torch.__version__
    return versions


def choose_mode(assignment: Assignment, requested: Optional[str]) -> str:
    if requested is None:
        return "official" if assignment.reference_directory is not None else "public"
    if requested == "official" and assignment.reference_directory is None:
        raise ConfigError(f"official mode needs the reference solution in reference/{assignment.id}, "
                          "which is not here")
    return requested


def grade(assignment: Assignment, submission: PreparedSubmission, options: GradeOptions) -> GradingResult:
    start = time.perf_counter()
    spec = assignment.spec
    seed = PUBLIC_SEED if options.mode == "public" else (
        options.seed if options.seed is not None else secrets.randbelow(2**31))
    session = WorkerSession(submission.package, submission.scratch,
                            Limits(call_timeout_s=options.call_timeout_s or spec.call_timeout_s), budget_s=spec.submission_timeout_s,
                            preload=("torch",) if spec.framework == "torch" else ())
    session.start()
    package = None
    try:
        if options.mode == "official":
            assert assignment.reference_directory is not None
            package = load_reference_package(assignment.id, assignment.reference_directory, assignment.directory)
            oracle = ReferenceOracle(LiveBackend(package))
        else:
            oracle = ReferenceOracle(ReplayBackend(assignment.fixtures_directory))
        selected = spec.select(options.only)
        check_tasks = [t for t in selected if t.training is None]
        plugin = GradingPlugin(session, oracle, seed, {t.id for t in spec.tasks}, only=options.only,
                               on_collected=options.on_collected, on_check_done=options.on_check_done)
        paths = [str(assignment.checks_directory)]
        hidden = assignment.hidden_checks_directory
        if options.mode == "official" and hidden is not None and any(hidden.glob("test_*.py")):
            paths.append(str(hidden))
        if check_tasks:
            run_checks(plugin, paths, str(assignment.directory))
        if plugin.collection_errors:
            raise ConfigError("the checks could not be collected:\n" + "\n".join(plugin.collection_errors))
        tasks = [_task_from_checks(task, plugin.results, submission) for task in check_tasks]
        training_tasks = [t for t in selected if t.training is not None and options.training]
        if training_tasks:
            tasks += run_training_tasks(session, training_tasks, options, seed, spec.framework)
        order = {t.id: i for i, t in enumerate(spec.tasks)}
        tasks.sort(key=lambda t: order[t.task_id])
        return GradingResult(
            assignment=assignment.id, mode=options.mode, seed=seed, tasks=tuple(tasks),
            execution_time_s=time.perf_counter() - start, grader_version=__version__,
            versions=library_versions(),
            output=_missing_note(submission), submission_log=session.output(),
        )
    finally:
        session.close()
        if package is not None:
            unload_reference_package(package)


def _task_from_checks(task: TaskSpec, checks: list[CheckResult], submission: PreparedSubmission) -> TaskResult:
    mine = [c for c in checks if c.task_id == task.id]
    result = TaskResult.from_checks(task.id, task.title, task.points, task.visibility, mine)
    if submission.missing and result.outcome is Outcome.ERROR and "No module named" in result.message:
        return TaskResult(task.id, task.title, task.points, 0.0, Outcome.ERROR,
                          f"{', '.join(submission.missing)} missing from the submission",
                          visibility=task.visibility, checks=result.checks, detail=result.detail)
    return result


def _missing_note(submission: PreparedSubmission) -> str:
    if not submission.missing:
        return ""
    return f"Missing from the submission: {', '.join(submission.missing)} (graded as absent)."
