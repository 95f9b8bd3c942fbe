"""The batch's progress bar: submissions done of all, with an estimate of the time left."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional


class BatchProgress:
    def __init__(self, progress: Optional[Any] = None):
        self._progress = progress
        self._bar: Any = None

    def begin(self, total: int, already: int) -> None:
        if self._progress is not None:
            self._bar = self._progress.add_task("grading", total=total, completed=already)

    def done(self, record: dict) -> None:
        if self._progress is not None and self._bar is not None:
            from rich.markup import escape

            # The description is rich markup; an id is a name the submission came with.
            self._progress.update(self._bar, advance=1,
                                  description=f"{escape(record['id'])}: {record['score']:g}/{record['max_score']:g}")


@contextmanager
def batch_progress(console: Any, enabled: bool) -> Iterator[BatchProgress]:
    if not enabled:
        yield BatchProgress()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True) as progress:
        yield BatchProgress(progress)
