"""The result as a rich table in the terminal, and a progress bar while grading.

What the student's code wrote (messages, tracebacks, file names) is shown as plain text: never read
as rich markup, without terminal escapes, and with no line a CI runner would take for a command,
since under CI this report is the job's log (grader.untrusted_text).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from grader.engine.training_history import TrainingProgress, sparkline
from grader.results import CheckResult, GradingResult, Outcome, TaskResult, alike_key
from grader.untrusted_text import log_safe

_STYLE = {
    Outcome.PASSED: "green", Outcome.FAILED: "red", Outcome.ERROR: "bold red", Outcome.TIMEOUT: "magenta",
    Outcome.NOT_IMPLEMENTED: "yellow", Outcome.SKIPPED: "dim",
}


def render_table(result: GradingResult, console: Console, *, details: bool = True) -> None:
    table = Table(title=f"{result.assignment} ({result.mode} mode)", show_lines=False)
    table.add_column("task")
    table.add_column("points", justify="right")
    table.add_column("outcome")
    table.add_column("reason", overflow="fold")
    above = None
    for task in result.tasks:
        style = _STYLE[task.outcome]
        reason = log_safe(task.message).splitlines()
        first = reason[0] if reason else ""
        # One error fails many tasks alike (a syntax error, a missing file): said once, the table
        # stays a line per task even in a narrow terminal.
        shown = "the same as above" if (task.outcome, first) == above and task.outcome is not Outcome.PASSED \
            else first
        above = (task.outcome, first)
        table.add_row(Text(task.task_id), f"{task.points:g}/{task.max_points:g}",
                      Text(task.outcome.value, style=style), Text(shown))
    console.print(table)
    if details:
        for first, alike in _failing_alike(result.tasks):
            console.rule(Text(first.task_id))
            console.print(plain(first.detail[:3000]))
            if alike:
                console.print(plain("The same for " + ", ".join(t.task_id for t in alike) + "."))
    for task in result.tasks:
        history = task.training.history if task.training is not None else None
        if history is not None and history.loss:
            console.print(plain(f"{task.task_id} loss: {sparkline(history.loss)} "
                                f"({history.loss[0]:.3g} -> {history.loss[-1]:.3g} over {history.iterations} "
                                "iterations)"))
    if result.output:
        console.print(plain(result.output))
    console.print(f"[bold]Score: {result.score:g} / {result.max_score:g}[/]  "
                  f"({result.execution_time_s:.1f} s, seed {result.seed})")


def _failing_alike(tasks: tuple[TaskResult, ...]) -> list[tuple[TaskResult, list[TaskResult]]]:
    """The failed tasks with a story to tell, those that failed alike (same message, same failing
    checks' messages and tracebacks: one syntax error fails every task) told once, under the first."""
    groups: dict[tuple, tuple[TaskResult, list[TaskResult]]] = {}
    for task in tasks:
        if task.outcome not in (Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.SKIPPED) or not task.detail:
            continue
        failing = tuple(sorted({repr(alike_key(c)) for c in task.checks if c.outcome is not Outcome.PASSED}))
        key = (task.outcome, task.message, failing or task.detail)
        if key in groups:
            groups[key][1].append(task)
        else:
            groups[key] = (task, [])
    return list(groups.values())


def plain(text: str) -> Text:
    """Untrusted text as rich shows it: no markup, no highlighting, nothing a terminal or runner acts on."""
    return Text(log_safe(text))


class GradingProgress:
    """Callbacks the grading calls as it goes; they move a progress bar when there is one, and
    print a line at each training epoch's end where there is none (`lines`: logs, CI)."""

    def __init__(self, progress: Progress | None = None, lines: Console | None = None):
        self._progress = progress
        self._lines = lines
        self._bar = progress.add_task("checks", total=None) if progress is not None else None
        self._training: dict[str, object] = {}  # task id -> its own bar, whose clock starts with it
        self._started: dict[str, float] = {}

    def on_collected(self, count: int) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, total=count)

    def on_check_done(self, result: CheckResult) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, advance=1, description=f"checks ({result.task_id})")

    def on_task_start(self, task_id: str) -> None:
        self._started[task_id] = time.monotonic()
        if self._progress is not None:
            self._progress.update(self._bar, visible=False)
            self._training[task_id] = self._progress.add_task(f"training {task_id}", total=None)

    def on_training_progress(self, task_id: str, progress: TrainingProgress, epoch_ended: bool) -> None:
        limit = f" of {round(progress.limit_s, 1):g} s" if progress.limit_s else ""
        if self._progress is not None and task_id in self._training:
            self._progress.update(self._training[task_id], description=(
                f"training {task_id}{f' (limit {round(progress.limit_s, 1):g} s)' if progress.limit_s else ''}: "
                f"{progress.describe()}"))
        elif self._lines is not None and epoch_ended:
            elapsed = time.monotonic() - self._started.get(task_id, time.monotonic())
            self._lines.print(plain(f"{task_id}: {progress.describe()} ({elapsed:.0f} s{limit})"))


@contextmanager
def grading_progress(console: Console, enabled: bool, lines: Console | None = None) -> Iterator[GradingProgress]:
    """A live bar when `enabled`; otherwise a line per training epoch on `lines`, if given."""
    if not enabled:
        yield GradingProgress(lines=lines)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        yield GradingProgress(progress)
