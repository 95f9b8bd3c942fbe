"""The local executor: each submission graded in a grader process of its own on this machine.

Grader processes are forked from a fork server that imported the grader (and torch, for torch
assignments) once, so a submission starts in milliseconds with everything loaded, yet shares no
state with any other. Up to `jobs` of them do CPU work at once. Training on a GPU holds one GPU,
one submission per GPU at a time, so that time limits stay fair: a process that reaches its GPU
training asks this coordinator for a GPU, waits without taking a CPU slot, trains in a worker that
sees only that GPU, and gives it back; a free GPU goes at once to the longest waiting process.
Each step of that is a GpuMessage (wanted, lent, returned), checked by `accepted_gpu_message`;
whatever else a grading process sends is its outcome (grader.batch.executor.JobOutcome).
"""

from __future__ import annotations

import enum
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

from grader.batch.executor import JobOutcome, JobSink, report
from grader.batch.job import SubmissionJob
from grader.sandbox.worker_process import reap_adopted_orphans

POLL_S = 0.1
# Imported once by the fork server, so that no grading process spends its time importing them.
WARM_MODULES = ["grader.batch.local", "grader.batch.job", "grader.engine.grading", "grader.checking.gradcheck", "grader.oracle.sketches",
                "grader.engine.training", "grader.data", "grader.sandbox.selfcheck", "grader.engine.submission", "grader.report.terminal",
                "rich.console", "rich.table", "numpy.testing"]


class GpuStep(enum.Enum):
    WANTED = "wanted"        # grading process -> coordinator: at its GPU training, it waits for a GPU
    LENT = "lent"            # coordinator -> grading process: this GPU is its own until it gives it back
    RETURNED = "returned"    # grading process -> coordinator: done with the GPU, whatever happened


@dataclass(frozen=True)
class GpuMessage:
    """One step of lending a GPU, between the coordinator and a grading process."""

    step: GpuStep
    gpu: Optional[str] = None    # LENT only: the CUDA_VISIBLE_DEVICES of the worker that trains

    def __post_init__(self) -> None:
        if (problem := self.problem()) is not None:
            raise ValueError(problem)

    @classmethod
    def wanted(cls) -> GpuMessage:
        return cls(GpuStep.WANTED)

    @classmethod
    def lent(cls, gpu: str) -> GpuMessage:
        return cls(GpuStep.LENT, gpu)

    @classmethod
    def returned(cls) -> GpuMessage:
        return cls(GpuStep.RETURNED)

    def problem(self) -> Optional[str]:
        """Why this message is malformed, or None. (Unpickling skips __post_init__: the receiver asks again.)"""
        if not isinstance(self.step, GpuStep):
            return f"a GPU message of step {self.step!r}"
        if self.step is GpuStep.LENT:
            if not isinstance(self.gpu, str) or not self.gpu:
                return f"a GPU lent as {self.gpu!r}"
        elif self.gpu is not None:
            return f"a GPU message {self.step.value} that names a GPU"
        return None


def accepted_gpu_message(message: Any, steps: tuple[GpuStep, ...]) -> GpuMessage:
    """`message` as a well-formed GpuMessage of one of `steps`; raises ValueError saying what came instead."""
    if not isinstance(message, GpuMessage):
        raise ValueError(f"a {type(message).__name__} instead of a GPU message")
    if (problem := message.problem()) is not None:
        raise ValueError(problem)
    if message.step not in steps:
        raise ValueError(f"a GPU message {message.step.value} where {' or '.join(s.value for s in steps)} was due")
    return message


# What a grading process sends besides its outcome.
FROM_GRADING = (GpuStep.WANTED, GpuStep.RETURNED)


@dataclass
class _Running:
    job: SubmissionJob
    attempt: int
    process: Any
    connection: Any
    deadline: float
    gpu_phase: bool = False        # waiting for or holding a GPU: not counted against --jobs
    gpu: Optional[str] = None
    waiting_since: Optional[float] = None
    result: Any = field(default=None)    # what the grading process sent last (a JobOutcome), or its loss


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int, gpus: Sequence[str] = (), timeout_s: float = 3600.0,
                 preload: Sequence[str] = (), target: Optional[Callable[..., None]] = None,
                 sandbox_verdict: Optional[tuple[str, tuple[str, ...]]] = None):
        if jobs < 1:
            raise ValueError("--jobs must be at least 1")
        self.jobs = jobs
        self.gpus = list(gpus)
        self.timeout_s = timeout_s
        self.target = target or child_main  # what the grading process runs: (job, connection, options)
        # (level, broken promises) found by this machine's selfcheck, so no grading process redoes it.
        self.sandbox_verdict = sandbox_verdict
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([*WARM_MODULES, *preload])
        # What the scheduling did, for tests and the benchmark: (event, submission, gpu, time).
        self.gpu_events: list[tuple[str, str, str, float]] = []

    def run(self, jobs: Sequence[SubmissionJob], sink: JobSink) -> None:
        pending = deque(jobs)
        running: dict[Any, _Running] = {}
        free_gpus = deque(self.gpus)
        waiting: deque[_Running] = deque()
        try:
            while pending or running:
                self._launch(pending, running, sink)
                ready = multiprocessing.connection.wait(
                    [r.connection for r in running.values()] + [r.process.sentinel for r in running.values()],
                    timeout=POLL_S)
                for entry in list(running.values()):
                    if entry.connection in ready or entry.process.sentinel in ready:
                        self._receive(entry, waiting, free_gpus)
                    if entry.result is None and not entry.process.is_alive():
                        self._receive(entry, waiting, free_gpus)  # what it sent just before it exited
                        if entry.result is None:
                            entry.result = JobOutcome.lost(f"its grading process exited with code {entry.process.exitcode}")
                    if entry.result is None and entry.waiting_since is None and time.monotonic() > entry.deadline:
                        entry.process.kill()
                        entry.result = JobOutcome.lost(f"its grading took longer than {self.timeout_s:.0f} s")
                    if entry.result is not None:
                        self._settle(entry, running, pending, waiting, free_gpus, sink)
                self._grant(waiting, free_gpus)
        finally:
            for entry in running.values():
                entry.process.kill()
                entry.process.join()

    # -- scheduling ------------------------------------------------------------------------------

    def _launch(self, pending: deque, running: dict, sink: JobSink) -> None:
        cpu_busy = sum(1 for r in running.values() if not r.gpu_phase)
        # A process waiting for a GPU does no CPU work, but it holds memory: a few may wait, not all.
        limit = self.jobs + 2 * len(self.gpus)
        while pending and cpu_busy < self.jobs and len(running) < limit:
            job = pending.popleft()
            attempt = sink.started(job)
            mine, theirs = self.context.Pipe()
            process = self.context.Process(target=self.target, args=(job, theirs, ChildOptions(bool(self.gpus), self.sandbox_verdict)),
                                           name=f"grade {job.submission_id}", daemon=True)
            process.start()
            theirs.close()
            running[mine] = _Running(job, attempt, process, mine, time.monotonic() + self.timeout_s)
            cpu_busy += 1

    def _receive(self, entry: _Running, waiting: deque, free_gpus: deque) -> None:
        while entry.result is None:
            try:
                if not entry.connection.poll():
                    return
                message = entry.connection.recv()
            except (EOFError, OSError):
                return
            if not isinstance(message, GpuMessage):  # the outcome, checked when it is settled
                entry.result = message
                continue
            try:
                step = accepted_gpu_message(message, FROM_GRADING).step
            except ValueError as exc:
                entry.result = JobOutcome.lost(f"its grading process sent {exc}")
                continue
            if step is GpuStep.WANTED:
                entry.gpu_phase, entry.waiting_since = True, time.monotonic()
                waiting.append(entry)
            else:
                self._give_back(entry, free_gpus)

    def _grant(self, waiting: deque, free_gpus: deque) -> None:
        while waiting and free_gpus:
            entry = waiting.popleft()
            if entry.result is not None or not entry.process.is_alive():
                continue
            entry.gpu = free_gpus.popleft()
            entry.deadline += time.monotonic() - (entry.waiting_since or time.monotonic())  # waiting is not grading
            entry.waiting_since = None
            self.gpu_events.append(("take", entry.job.submission_id, entry.gpu, time.monotonic()))
            try:
                entry.connection.send(GpuMessage.lent(entry.gpu))
            except (OSError, BrokenPipeError):
                self._give_back(entry, free_gpus)

    def _give_back(self, entry: _Running, free_gpus: deque) -> None:
        if entry.gpu is not None:
            self.gpu_events.append(("return", entry.job.submission_id, entry.gpu, time.monotonic()))
            free_gpus.append(entry.gpu)
            entry.gpu = None
        entry.gpu_phase = False

    def _settle(self, entry: _Running, running: dict, pending: deque, waiting: deque, free_gpus: deque,
                sink: JobSink) -> None:
        del running[entry.connection]
        if entry in waiting:
            waiting.remove(entry)
        self._give_back(entry, free_gpus)
        entry.process.join(timeout=5)
        if entry.process.is_alive():
            entry.process.kill()
            entry.process.join()
        reap_adopted_orphans()  # the workers of a grading process killed here come to this one
        entry.connection.close()
        if report(entry.result, entry.job, entry.attempt, sink, "its grading process"):
            pending.appendleft(entry.job)


# -- in the grading process ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChildOptions:
    has_gpus: bool
    sandbox_verdict: Optional[tuple[str, tuple[str, ...]]] = None


def child_main(job: SubmissionJob, connection: Any, options: ChildOptions) -> None:
    """Runs in the forked grading process: grade, send the record, exit."""
    from grader.batch.job import run_job
    from grader.sandbox.selfcheck import adopt_verdict
    from grader.sandbox.worker_process import die_with_parent

    die_with_parent()
    if options.sandbox_verdict is not None:
        adopt_verdict(*options.sandbox_verdict)
    lease = (lambda: gpu_from_coordinator(connection)) if options.has_gpus else None
    try:
        outcome = run_job(job, gpu_lease=lease)
    except BaseException:  # noqa: BLE001 - a fault of the grader: the coordinator decides on a retry
        outcome = JobOutcome.crashed(traceback.format_exc(limit=8)[-2000:])
    connection.send(outcome)
    connection.close()


@contextmanager
def gpu_from_coordinator(connection: Any) -> Iterator[dict[str, str]]:
    """Waits for the coordinator to lend a GPU; gives it back on leaving, whatever happened."""
    connection.send(GpuMessage.wanted())
    lent = accepted_gpu_message(connection.recv(), (GpuStep.LENT,))
    try:
        yield {"CUDA_VISIBLE_DEVICES": lent.gpu}
    finally:
        connection.send(GpuMessage.returned())
