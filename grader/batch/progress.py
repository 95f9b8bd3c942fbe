"""The batch's progress: submissions done of all, failures so far and the estimated time left, as a
live bar in a terminal, or as a plain line every tenth of the batch where there is none (logs, CI)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from grader.batch.store import GRADED


@dataclass(frozen=True)
class ProgressFigures:
    done: int                       # submissions with a result, graded before this run included
    total: int
    failed: int                     # graded in this run and not `graded` (unusable, or the grader failed)
    remaining_s: Optional[float]    # None until one submission of this run has finished

    def line(self) -> str:
        return f"graded {self.done}/{self.total}, {self.failed} failed, {_duration(self.remaining_s)} left"


class BatchProgress:
    """Counts what the batch reports (`begin`, then `done` per record) and shows it: through a rich
    Progress, through `print_line` every `max(1, total // 10)` submissions, or not at all."""

    def __init__(self, progress: Optional[Any] = None, print_line: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self._progress, self._print_line, self._clock = progress, print_line, clock
        self._bar: Any = None
        self._total = self._done = self._already = self._failed = 0
        self._started = 0.0
        self._every = 1

    def begin(self, total: int, already: int) -> None:
        self._total, self._done, self._already, self._failed = total, already, already, 0
        self._started = self._clock()
        self._every = max(1, total // 10)
        if self._progress is not None:
            self._bar = self._progress.add_task("grading", total=total, completed=already, failed=0,
                                                remaining=_duration(None))

    def figures(self) -> ProgressFigures:
        graded_now = self._done - self._already
        left = self._total - self._done
        # This run's pace only: what was graded before it took no time now.
        remaining = (self._clock() - self._started) / graded_now * left if graded_now else None
        return ProgressFigures(self._done, self._total, self._failed, 0.0 if left == 0 else remaining)

    def done(self, record: dict) -> None:
        self._done += 1
        if record.get("status") != GRADED:
            self._failed += 1
        figures = self.figures()
        if self._progress is not None and self._bar is not None:
            from rich.markup import escape

            # The description is rich markup; an id is a name the submission came with.
            self._progress.update(self._bar, advance=1, failed=figures.failed,
                                  remaining=_duration(figures.remaining_s),
                                  description=f"{escape(record['id'])}: {record['score']:g}/{record['max_score']:g}")
        graded_now = self._done - self._already
        if self._print_line is not None and (graded_now % self._every == 0 or self._done == self._total):
            self._print_line(figures.line())


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "time unknown"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@contextmanager
def batch_progress(console: Any, enabled: bool) -> Iterator[BatchProgress]:
    """A live bar where `console` is a terminal, plain lines on it where it is not; nothing unless enabled."""
    if not enabled:
        yield BatchProgress()
        return
    if not console.is_terminal:
        yield BatchProgress(print_line=lambda line: console.print(line, markup=False, highlight=False))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                  TextColumn("about {task.fields[remaining]} left"), console=console, transient=True) as progress:
        yield BatchProgress(progress)
