"""What an executor is: something that places each submission's grading (grader.batch.job) somewhere,
reports what happened to the coordinator, and tries again what the infrastructure lost.

Executors only place work. A submission that fails, crashes its worker or runs out of time has a
result like any other and is never tried again; a grading process that died, a node that vanished
or a job the scheduler killed is the infrastructure's failure, and the coordinator decides whether
it is tried again (`JobSink.lost`).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from grader.batch.job import SubmissionJob


class BatchAborted(Exception):
    """A problem no submission can be graded with (configuration, data): the batch stops."""


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
