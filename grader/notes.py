"""Notes a check leaves for the student even when it passes: an input redrawn away from a kink, a
finite-difference step retried. The plugin collects them per check into its `CheckResult`."""

from __future__ import annotations

_current: list[str] = []


def note(text: str) -> None:
    if text not in _current:
        _current.append(text)


def take() -> tuple[str, ...]:
    """The notes left since the last call, and a clean slate for the next check."""
    taken = tuple(_current)
    _current.clear()
    return taken
