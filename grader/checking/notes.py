"""Notes a check leaves for the student even when it passes: an input redrawn away from a kink, a
finite-difference step retried. The plugin collects them per check into its `CheckResult`.

The code that notes something (a comparison deep inside a check) does not know the check it serves,
so the notes of the check running in this context collect in a context variable: `take` hands them
over and starts the next check's with a clean slate.
"""

from __future__ import annotations

import contextvars

_notes: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("check_notes", default=())


def note(text: str) -> None:
    if text not in _notes.get():
        _notes.set((*_notes.get(), text))


def take() -> tuple[str, ...]:
    """The notes left since the last call, and a clean slate for the next check."""
    taken = _notes.get()
    _notes.set(())
    return taken


# -- a worker lost to a signal the grader did not send (grader.sandbox.worker_process.WorkerLost) -------------

_OUTSIDE = "a signal the grader did not send (an operator or the machine's out-of-memory killer)"


def ran_again_after_loss(signal_name: str, what: str) -> str:
    """The note on work done twice because the first worker was killed from outside: `what` says
    what was done again ("the check was run again from the start")."""
    return f"the first worker was lost to {signal_name}, {_OUTSIDE}; {what}"


def lost_twice(first_signal: str, second_signal: str) -> str:
    """The message of work whose worker was killed from outside on both tries: the machine's failure
    as far as the grader can tell, so it must not read as the student's."""
    return (f"the worker was lost twice, to {first_signal} and {second_signal}, signals the grader did not send "
            "(an operator or the machine's out-of-memory killer); this is not your code's error as far as the "
            "grader can tell; ask for a regrade")
