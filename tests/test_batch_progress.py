"""The batch's progress where there is no terminal: a plain line every tenth of the batch with done/total,
failures so far and the time left, estimated from this run's pace (on a fake clock)."""

from __future__ import annotations

import io

from grader.batch.progress import BatchProgress, ProgressFigures, batch_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(ident: str, status: str = "graded") -> dict:
    return {"id": ident, "status": status, "score": 1.0, "max_score": 2.0}


def test_a_line_every_tenth_of_the_batch_with_failures_and_time_left():
    clock, lines = FakeClock(), []
    progress = BatchProgress(print_line=lines.append, clock=clock)
    progress.begin(25, already=5)  # a line every 25 // 10 = 2 submissions graded now
    for index in range(20):
        clock.now += 3.0  # 3 s a submission
        progress.done(record(f"s{index}", "unusable" if index in (1, 6) else "graded"))
    assert lines[:4] == ["graded 7/25, 1 failed, 54 s left",      # 2 in 6 s: 18 left at 3 s each
                         "graded 9/25, 1 failed, 48 s left",
                         "graded 11/25, 1 failed, 42 s left",
                         "graded 13/25, 2 failed, 36 s left"]
    assert len(lines) == 10 and lines[-1] == "graded 25/25, 2 failed, 0 s left"


def test_a_small_batch_prints_a_line_for_each_and_the_last_one_always():
    clock, lines = FakeClock(), []
    progress = BatchProgress(print_line=lines.append, clock=clock)
    progress.begin(3, already=0)
    for index in range(3):
        clock.now += 100.0
        progress.done(record(f"s{index}", "error" if index == 2 else "graded"))
    assert lines == ["graded 1/3, 0 failed, 3 min 20 s left", "graded 2/3, 0 failed, 1 min 40 s left",
                     "graded 3/3, 1 failed, 0 s left"]
    clock, lines = FakeClock(), []
    progress = BatchProgress(print_line=lines.append, clock=clock)
    progress.begin(7, already=0)
    for index in range(7):
        clock.now += 1.0
        progress.done(record(f"s{index}"))
    assert len(lines) == 7  # N = max(1, 7 // 10) = 1


def test_the_time_left_is_unknown_until_a_submission_of_this_run_is_done():
    progress = BatchProgress(clock=FakeClock())
    progress.begin(10, already=4)
    assert progress.figures() == ProgressFigures(done=4, total=10, failed=0, remaining_s=None)
    assert progress.figures().line() == "graded 4/10, 0 failed, time unknown left"
    assert ProgressFigures(1, 50, 0, 2 * 3600 + 5 * 60).line() == "graded 1/50, 0 failed, 2 h 05 min left"


def test_off_a_terminal_the_console_gets_plain_lines_and_quiet_gets_none():
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=120)
    with batch_progress(console, enabled=True) as progress:
        progress.begin(1, already=0)
        progress.done(record("[bold]x"))
    assert buffer.getvalue().startswith("graded 1/1, 0 failed, 0 s left")
    with batch_progress(console, enabled=False) as quiet:
        quiet.begin(1, already=0)
        quiet.done(record("y"))
    assert buffer.getvalue().count("graded") == 1


def test_in_a_terminal_the_bar_carries_the_failures_and_the_time_left():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with batch_progress(console, enabled=True) as progress:
        progress.begin(4, already=1)
        progress.done(record("a", "unusable"))
        (task,) = progress._progress.tasks
        assert (task.completed, task.total, task.fields["failed"]) == (2, 4, 1)
        assert task.fields["remaining"].endswith("s")
