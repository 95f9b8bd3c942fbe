"""Writers: each renders a GradingResult and decides nothing."""

from __future__ import annotations

from typing import Callable, Iterable


def write_each(writers: Iterable[tuple[str, Callable[[], object]]]) -> list[str]:
    """Runs every writer on its own, so that one that fails (a full disk, a path that cannot be
    written, a bug met on a strange message) costs its own report and never the others.
    `writers` are (what it writes, how); returns a line for each that failed."""
    failed = []
    for what, write in writers:
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - any failure of one writer is that writer's alone
            failed.append(f"could not write {what}: {type(exc).__name__}: {exc}")
    return failed
