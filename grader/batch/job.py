"""One submission of a batch, graded in the process this runs in: what any executor (a local
process, a Slurm array element, a Ray task) calls, so results are the same whichever ran it.

The result comes back as a record of plain data: the submission's points per task, its Gradescope
results.json and its feedback text, which the coordinating process stores and writes out.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

from grader import __version__
from grader.assignment import Assignment, load_assignment
from grader.batch.executor import JobOutcome
from grader.batch.store import ERROR, GRADED, UNUSABLE
from grader.engine.grading import GradeOptions, grade, library_versions
from grader.engine.training_place import TrainingPlace
from grader.options import GradingChoices, grading_choices
from grader.report.gradescope import to_results_json
from grader.results import GradingResult, Outcome, TaskResult



@dataclass(frozen=True, kw_only=True)
class JobSettings(GradingChoices):
    """What every submission of the batch is graded with (plain data: it travels to other machines):
    the shared choices (grader.options), the batch's assignment, and its mode and seed as bound."""

    assignment: str
    project_root: str
    mode: str
    seed: int


@dataclass(frozen=True)
class SubmissionJob:
    submission_id: str
    path: str
    content_hash: str
    settings: JobSettings
    problem: Optional[str] = None   # found before grading: the submission cannot be graded
    notes: tuple[str, ...] = ()     # found before grading: what its result says first (grader.batch.discover)
    extra: dict = field(default_factory=dict)


# Where a submission's training tasks train, given the device they need ("cpu" or "cuda"): see
# GradeOptions.training_lease.
TrainingLease = Callable[[str], ContextManager[TrainingPlace]]


def grade_submission(job: SubmissionJob, training_lease: Optional[TrainingLease] = None) -> dict[str, Any]:
    """Grades one submission; returns its record. Raises only for what no submission could be
    graded with (configuration, data) or a fault of the grader itself."""
    from grader.engine.submission import UnusableSubmission, prepare_submission, read_submission

    start = time.perf_counter()
    settings = job.settings
    assignment = load_assignment(settings.assignment, Path(settings.project_root))
    if job.problem:
        return unusable_record(job, assignment, job.problem, time.perf_counter() - start)
    try:
        read = read_submission(assignment, Path(job.path))
        prepared = prepare_submission(assignment, Path(job.path), read)
    except UnusableSubmission as exc:
        return unusable_record(job, assignment, str(exc), time.perf_counter() - start)
    options = GradeOptions(**grading_choices(settings), mode=settings.mode, seed=settings.seed,
                           training_lease=training_lease)
    try:
        result = grade(assignment, prepared, options)
    finally:
        prepared.cleanup()
    return graded_record(job, result, time.perf_counter() - start)


def run_job(job: SubmissionJob, training_lease: Optional[TrainingLease] = None) -> JobOutcome:
    """What a Slurm array element or a Ray task runs: the grading of one submission.

    A batch-wide problem is returned rather than raised, so that it cannot be mistaken for the
    infrastructure losing the job; any other exception is a fault of the grader and is raised."""
    from grader.assignment import ConfigError
    from grader.data import DatasetError

    try:
        return JobOutcome.done(grade_submission(job, training_lease))
    except (ConfigError, DatasetError) as exc:
        return JobOutcome.fatal(f"{type(exc).__name__}: {exc}")


def graded_record(job: SubmissionJob, result: GradingResult, seconds: float) -> dict[str, Any]:
    if job.notes:
        result = dataclasses.replace(result, output="\n".join(n for n in (*job.notes, result.output) if n))
    troubles = _grouped_errors(result.tasks)
    return {
        "id": job.submission_id,
        "source": job.path,
        "content_hash": job.content_hash,
        "status": GRADED,
        "score": result.score,
        "max_score": result.max_score,
        "seed": result.seed,
        "tasks": {t.task_id: {"points": t.points, "max_points": t.max_points, "outcome": t.outcome.value,
                              "message": t.message.splitlines()[0] if t.message else ""}
                  for t in result.tasks},
        "errors": "; ".join(troubles),
        "seconds": seconds,
        # Time inside the checks' own code, and running them (pytest's setup and reports of each
        # included); what a submission costs beyond is the batch's overhead.
        "checks_s": sum(c.duration_s for t in result.tasks for c in t.checks),
        "checks_run_seconds": result.checks_s,
        "results": to_results_json(result),
        "feedback": feedback_text(result),
    }


def _grouped_errors(tasks: tuple[TaskResult, ...], listed: int = 3) -> list[str]:
    """One line per distinct error or timeout, with the tasks it cost (a few named, the rest counted)."""
    groups: dict[str, list[str]] = {}
    for task in tasks:
        if task.outcome in (Outcome.ERROR, Outcome.TIMEOUT):
            first = task.message.splitlines()[0] if task.message else ""
            groups.setdefault(f"{task.outcome.value}: {first}", []).append(task.task_id)
    lines = []
    for what, ids in groups.items():
        named = ", ".join(ids[:listed]) + (f" and {len(ids) - listed} more" if len(ids) > listed else "")
        lines.append(f"{named}: {what}")
    return lines


def unusable_record(job: SubmissionJob, assignment: Assignment, reason: str, seconds: float) -> dict[str, Any]:
    """Every selected task at zero, with the reason: a result, not an error of the batch."""
    return zero_record(job, assignment, UNUSABLE, f"unusable submission: {reason}", seconds)


def error_record(job: SubmissionJob, assignment: Assignment, why: str) -> dict[str, Any]:
    """What the gradebook shows for a submission the grader itself could not grade (after retries)."""
    return zero_record(job, assignment, ERROR, f"not graded: {why}", 0.0)


def zero_record(job: SubmissionJob, assignment: Assignment, status: str, message: str,
                seconds: float) -> dict[str, Any]:
    settings = job.settings
    tasks = [t for t in assignment.spec.select(settings.only) if settings.training or t.training is None]
    result = GradingResult(
        assignment=assignment.id, mode=settings.mode, seed=settings.seed,
        tasks=tuple(TaskResult(t.id, t.title, t.points, 0.0, Outcome.ERROR, message,
                               kind="check" if t.training is None else "training", visibility=t.visibility)
                    for t in tasks),
        execution_time_s=seconds, grader_version=__version__, versions=library_versions(), output=message)
    record = graded_record(job, result, seconds)
    record.update(status=status, errors=message)
    return record


def feedback_text(result: GradingResult) -> str:
    """The report a student would see in the terminal, as plain text."""
    from rich.console import Console

    from grader.report.terminal import render_table

    buffer = io.StringIO()
    console = Console(file=buffer, width=110, no_color=True, highlight=False, soft_wrap=True, force_terminal=False)
    render_table(result, console, details=True)
    return buffer.getvalue()
