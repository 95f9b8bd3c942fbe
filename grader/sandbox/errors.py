"""What can go wrong when the grader asks a worker for something, as the grader's code catches it.

`StudentException` is the student's code raising (an answer, scored by the check that asked);
every `WorkerFailure` is the worker not answering (timed out, died, ran out of memory, refused
a call that hung before), which a check reports without blaming a line of the student's code;
`WorkerLost` is the machine's failure, not the student's, so the work is tried again once.
"""

from __future__ import annotations


class WorkerFailure(Exception):
    """The worker could not answer: it timed out, died or ran out of memory."""


class WorkerTimeout(WorkerFailure):
    pass


class WorkerCrashed(WorkerFailure):
    pass


class SandboxBroken(RuntimeError):
    """The sandbox could not be applied on this machine: the grader's problem, never the student's."""


class WorkerLost(WorkerCrashed):
    """The worker died from a signal the grader did not send (an operator, the system's out-of-memory
    killer): a failure of the machine, not of the student's code, so the work is tried again once."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


class EarlierTimeout(WorkerTimeout):
    """A call refused without waiting: it, or a function it reached, timed out in an earlier check."""


class BudgetSpent(WorkerTimeout):
    """The submission's time budget was used up before this request."""


class StudentException(Exception):
    """An exception raised by the student's code, as the worker described it."""

    def __init__(self, type_name: str, message: str, traceback: str, is_not_implemented: bool,
                 location: tuple[str, int] | None):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.is_not_implemented = is_not_implemented
        self.location = location
