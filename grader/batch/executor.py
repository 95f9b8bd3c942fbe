"""What an executor is: something that places each submission's grading (grader.batch.job) somewhere,
reports what happened to the coordinator, and tries again what the infrastructure lost.

Executors only place work. A submission that fails, crashes its worker or runs out of time has a
result like any other and is never tried again; a grading process that died, a node that vanished
or a job the scheduler killed is the infrastructure's failure, and the coordinator decides whether
it is tried again (`JobSink.lost`).

Whatever the place, a grading comes back as one JobOutcome, and every executor hands what came back
to `report`, which refuses a malformed one and tells the sink.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence

if TYPE_CHECKING:
    from grader.batch.job import SubmissionJob

EXECUTORS = ("local", "slurm", "ray")
# How much of why an attempt was lost is kept: its start and its end, where the cause usually is.
WHY_CHARS = 2000


class BatchAborted(Exception):
    """A problem no submission can be graded with (configuration, data): the batch stops."""


class OutcomeKind(enum.Enum):
    DONE = "done"          # graded: the submission's record
    FATAL = "fatal"        # a problem no submission can be graded with: the batch stops
    LOST = "lost"          # the infrastructure lost the attempt: a process or node died, a limit killed it
    CRASHED = "crashed"    # a fault of the grader: the coordinator decides on a retry, as for a loss


@dataclass(frozen=True)
class JobOutcome:
    """What became of one attempt at grading one submission: a record, or a message saying why not."""

    kind: OutcomeKind
    record: Optional[dict[str, Any]] = None   # DONE only
    message: str = ""                         # the others: what went wrong

    def __post_init__(self) -> None:
        if (problem := self.problem()) is not None:
            raise ValueError(problem)

    @classmethod
    def done(cls, record: dict[str, Any]) -> JobOutcome:
        return cls(OutcomeKind.DONE, record=record)

    @classmethod
    def fatal(cls, message: str) -> JobOutcome:
        return cls(OutcomeKind.FATAL, message=message)

    @classmethod
    def lost(cls, why: str) -> JobOutcome:
        return cls(OutcomeKind.LOST, message=shortened(why))

    @classmethod
    def crashed(cls, traceback: str) -> JobOutcome:
        return cls(OutcomeKind.CRASHED, message=traceback)

    def problem(self) -> Optional[str]:
        """Why this outcome is malformed, or None. (Unpickling skips __post_init__: `report` asks again.)"""
        if not isinstance(self.kind, OutcomeKind):
            return f"an outcome of kind {self.kind!r}"
        if not isinstance(self.message, str):
            return f"a {self.kind.value} outcome whose message is a {type(self.message).__name__}"
        if self.kind is OutcomeKind.DONE:
            if not isinstance(self.record, dict):
                return f"a done outcome whose record is a {type(self.record).__name__}"
        elif self.record is not None:
            return f"a {self.kind.value} outcome with a record"
        return None


def shortened(why: str) -> str:
    return why if len(why) <= WHY_CHARS else why[:200] + " ... " + why[-(WHY_CHARS - 205):]


def accepted(received: Any, job: SubmissionJob, origin: str) -> JobOutcome:
    """What an executor received for `job` from `origin` (a process, a Slurm job, a Ray task), as a
    well-formed outcome; anything else is the loss of the attempt, saying what came back."""
    if not isinstance(received, JobOutcome):
        return JobOutcome.lost(f"{origin} returned {type(received).__name__}")
    if (problem := received.problem()) is not None:
        return JobOutcome.lost(f"{origin} returned {problem}")
    record = received.record  # a dict exactly where the outcome is DONE
    if record is not None and record.get("id") != job.submission_id:
        return JobOutcome.lost(f"{origin} returned the record of {str(record.get('id'))[:100]!r}, "
                               f"not of {job.submission_id!r}")
    return received


def report(received: Any, job: SubmissionJob, attempt: int, sink: JobSink, origin: str) -> bool:
    """Tells `sink` what became of the attempt; True when the job is to be handed out again.
    Raises BatchAborted for a problem no submission can be graded with."""
    outcome = accepted(received, job, origin)
    if outcome.kind is OutcomeKind.DONE:
        assert outcome.record is not None
        sink.finished(job, attempt, outcome.record)
        return False
    if outcome.kind is OutcomeKind.FATAL:
        raise BatchAborted(outcome.message)
    why = outcome.message if outcome.kind is OutcomeKind.LOST else f"the grader failed: {outcome.message}"
    return sink.lost(job, attempt, why)


class JobSink(Protocol):
    def started(self, job: SubmissionJob) -> int:
        """The job is handed out now; returns its attempt number."""

    def finished(self, job: SubmissionJob, attempt: int, record: dict[str, Any]) -> None:
        """The job's result: committed before this returns."""

    def lost(self, job: SubmissionJob, attempt: int, why: str) -> bool:
        """The infrastructure lost the attempt; True when the job is to be handed out again."""


class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[SubmissionJob], sink: JobSink) -> None:
        """Grades every job, reporting to `sink` as each starts and ends; raises BatchAborted."""
