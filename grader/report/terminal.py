"""The result as a rich table in the terminal, and a progress bar while grading."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.results import CheckResult, GradingResult, Outcome

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
    for task in result.tasks:
        style = _STYLE[task.outcome]
        table.add_row(task.task_id, f"{task.points:g}/{task.max_points:g}",
                      f"[{style}]{task.outcome.value}[/]", task.message.splitlines()[0] if task.message else "")
    console.print(table)
    if details:
        for task in result.tasks:
            if task.outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT) and task.detail:
                console.rule(f"{task.task_id}")
                console.print(task.detail[:3000], markup=False, highlight=False)
    if result.output:
        console.print(result.output, markup=False)
    console.print(f"[bold]Score: {result.score:g} / {result.max_score:g}[/]  "
                  f"({result.execution_time_s:.1f} s, seed {result.seed})")


class GradingProgress:
    """Callbacks the grading calls as it goes; they move a progress bar when there is one."""

    def __init__(self, progress: Progress | None = None):
        self._progress = progress
        self._bar = progress.add_task("checks", total=None) if progress is not None else None

    def on_collected(self, count: int) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, total=count)

    def on_check_done(self, result: CheckResult) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, advance=1, description=f"checks ({result.task_id})")

    def on_task_start(self, task_id: str) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, description=f"training {task_id}")


@contextmanager
def grading_progress(console: Console, enabled: bool) -> Iterator[GradingProgress]:
    if not enabled:
        yield GradingProgress()
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        yield GradingProgress(progress)
