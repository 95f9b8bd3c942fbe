"""The local executor: each submission graded in a grader process of its own on this machine.

Grader processes are forked from a fork server that imported the grader (and torch, for torch
assignments) once, so a submission starts in milliseconds with everything loaded, yet shares no
state with any other. Up to `jobs` of them do CPU work at once.

A training task never shares what it trains on with another training task of this grader, so that
time limits stay fair (grader.engine.training_place): a process that reaches its training tasks
asks this coordinator for a training slot of the device they need, waits without taking one of the
`jobs`, trains where it is lent and gives the slot back; a free slot goes at once to the longest
waiting process. There is one slot per GPU (the worker that trains sees only that GPU) and one CPU
slot. With several jobs and several cores, the CPU slot holds cores of its own: every grading
process runs its checks on the other cores, and the one lent the CPU slot trains on the reserved
ones, so that other submissions' checks go on beside it but never on its cores.
Each step of that is a SlotMessage (wanted, lent, returned), checked by `accepted_slot_message`;
whatever else a grading process sends is its outcome (grader.batch.executor.JobOutcome).
"""

from __future__ import annotations

import enum
import multiprocessing
import multiprocessing.connection
import os
import time
import traceback
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Optional, Sequence

from grader.batch.executor import JobOutcome, JobSink, report
from grader.batch.job import SubmissionJob, TrainingLease
from grader.engine.training_place import ALONE, TrainingPlace, describe_cores, usable_cores
from grader.sandbox.worker_process import reap_adopted_orphans

POLL_S = 0.1
# Imported once by the fork server, so that no grading process spends its time importing them.
WARM_MODULES = ["grader.batch.local", "grader.batch.job", "grader.engine.grading", "grader.engine.pytest_plugin",
                "grader.engine.task_uses", "grader.checking.gradcheck", "grader.oracle.sketches", "grader.oracle.mistakes",
                "grader.engine.training", "grader.data", "grader.sandbox.selfcheck", "grader.engine.submission", "grader.report.terminal",
                "rich.console", "rich.table", "numpy.testing"]

DEVICES = ("cpu", "cuda")
CPU_SLOT = "cpu:0"   # the one CPU training slot (a GPU slot is named by the GPU's id)


class SlotStep(enum.Enum):
    WANTED = "wanted"        # grading process -> coordinator: at its training, it waits for a slot of a device
    LENT = "lent"            # coordinator -> grading process: where it trains, its own until it gives it back
    RETURNED = "returned"    # grading process -> coordinator: done with the slot, whatever happened


@dataclass(frozen=True)
class SlotMessage:
    """One step of lending a training slot, between the coordinator and a grading process."""

    step: SlotStep
    device: Optional[str] = None                # WANTED and LENT: "cpu" or "cuda"
    # LENT only: the TrainingPlace lent, field by field (the training worker's environment beyond the
    # scrubbed one, the CPU cores it trains on or None, what else of this grader runs meanwhile).
    env: Optional[dict[str, str]] = None
    cores: Optional[tuple[int, ...]] = None
    alongside: Optional[str] = None

    def __post_init__(self) -> None:
        if (problem := self.problem()) is not None:
            raise ValueError(problem)

    @classmethod
    def wanted(cls, device: str) -> SlotMessage:
        return cls(SlotStep.WANTED, device)

    @classmethod
    def lent(cls, device: str, place: TrainingPlace) -> SlotMessage:
        return cls(SlotStep.LENT, device, dict(place.env), place.cores, place.alongside)

    @classmethod
    def returned(cls) -> SlotMessage:
        return cls(SlotStep.RETURNED)

    def place(self) -> TrainingPlace:
        """The place a LENT message lends."""
        return TrainingPlace(env=dict(self.env or {}), cores=self.cores, alongside=self.alongside or ALONE)

    def problem(self) -> Optional[str]:
        """Why this message is malformed, or None. (Unpickling skips __post_init__: the receiver asks again.)"""
        if not isinstance(self.step, SlotStep):
            return f"a training-slot message of step {self.step!r}"
        if self.step is SlotStep.RETURNED:
            return None if self.device is None and not self._place_fields() else \
                "a training-slot message returned that names a device or a place"
        if self.device not in DEVICES:
            return f"a training slot {self.step.value} for the device {self.device!r}"
        if self.step is SlotStep.WANTED:
            return "a training slot wanted that names a place" if self._place_fields() else None
        return self._lent_problem()

    def _place_fields(self) -> list[str]:
        return [name for name in ("env", "cores", "alongside") if getattr(self, name) is not None]

    def _lent_problem(self) -> Optional[str]:
        env, cores = self.env, self.cores
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            return f"a training slot lent with the environment {env!r}"
        if self.device == "cuda" and not env.get("CUDA_VISIBLE_DEVICES"):
            return "a GPU lent without CUDA_VISIBLE_DEVICES"
        if cores is not None and not _distinct_core_numbers(cores):
            return f"a training slot lent on the cores {cores!r}"
        if not isinstance(self.alongside, str) or not self.alongside:
            return f"a training slot lent saying {self.alongside!r} of what runs beside it"
        return None


def _distinct_core_numbers(cores: Any) -> bool:
    return (isinstance(cores, tuple) and len(cores) > 0 and all(type(core) is int and core >= 0 for core in cores)
            and len(set(cores)) == len(cores))


def accepted_slot_message(message: Any, steps: tuple[SlotStep, ...], device: Optional[str] = None) -> SlotMessage:
    """`message` as a well-formed SlotMessage of one of `steps` (and of `device`, where given); raises
    ValueError saying what came instead."""
    if not isinstance(message, SlotMessage):
        raise ValueError(f"a {type(message).__name__} instead of a training-slot message")
    if (problem := message.problem()) is not None:
        raise ValueError(problem)
    if message.step not in steps:
        raise ValueError(f"a training-slot message {message.step.value} where {' or '.join(s.value for s in steps)} "
                         "was due")
    if device is not None and message.device != device:
        raise ValueError(f"a training slot of {message.device} lent where one of {device} was wanted")
    return message


# What a grading process sends besides its outcome.
FROM_GRADING = (SlotStep.WANTED, SlotStep.RETURNED)


def worker_threads() -> int:
    """The threads a worker computes with (GRADER_WORKER_THREADS, as grader.sandbox.worker_process
    sets them; 1 by default)."""
    try:
        return max(int(os.environ.get("GRADER_WORKER_THREADS", "1")), 1)
    except ValueError:
        return 1


def reserved_cores(cores: tuple[int, ...], jobs: int, wanted: int) -> Optional[tuple[int, ...]]:
    """The cores set apart for CPU training: the last `wanted` of `cores`, leaving at least one to the
    checks; None with one job (no check runs beside a training, which may use every core) or with one
    core (there is nothing to set apart)."""
    if jobs < 2 or len(cores) < 2:
        return None
    return cores[-min(max(wanted, 1), len(cores) - 1):]


@dataclass
class _Running:
    job: SubmissionJob
    attempt: int
    process: Any
    connection: Any
    deadline: float
    wants: Optional[str] = None    # the device it waits for or trains on: in its training phase
    slot: Optional[str] = None     # the slot it holds (CPU_SLOT or a GPU)
    waiting_since: Optional[float] = None
    result: Any = field(default=None)    # what the grading process sent last (a JobOutcome), or its loss


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int, gpus: Sequence[str] = (), timeout_s: float = 3600.0,
                 preload: Sequence[str] = (), target: Optional[Callable[..., None]] = None,
                 sandbox_verdict: Optional[tuple[str, tuple[str, ...]]] = None,
                 training_cores: Optional[int] = None, exclusive_training: bool = True):
        """`training_cores`: how many cores CPU training gets to itself (None: the threads a worker
        computes with; 0: none, for a batch that trains nothing on the CPU, whose checks keep every
        core). `exclusive_training=False` lends no CPU slot: CPU trainings then run at once with each
        other and with checks, wherever their processes run (the tests show it)."""
        if jobs < 1:
            raise ValueError("--jobs must be at least 1")
        self.jobs = jobs
        self.gpus = list(gpus)
        self.timeout_s = timeout_s
        self.target = target or child_main  # what the grading process runs: (job, connection, options)
        # (level, broken promises) found by this machine's selfcheck, so no grading process redoes it.
        self.sandbox_verdict = sandbox_verdict
        self.exclusive_training = exclusive_training
        cores = usable_cores()
        wanted = worker_threads() if training_cores is None else training_cores
        self.training_cores = reserved_cores(cores, jobs, wanted) if exclusive_training and wanted > 0 else None
        self.check_cores = tuple(c for c in cores if c not in self.training_cores) if self.training_cores else None
        self.lends = (("cpu",) if exclusive_training else ()) + (("cuda",) if self.gpus else ())
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([*WARM_MODULES, *preload])
        # What the scheduling did, for tests and the benchmark: (event, submission, slot, time), the
        # slot being CPU_SLOT or a GPU's id.
        self.training_events: list[tuple[str, str, str, float]] = []

    def run(self, jobs: Sequence[SubmissionJob], sink: JobSink) -> None:
        pending = deque(jobs)
        running: dict[Any, _Running] = {}
        free = {"cpu": deque([CPU_SLOT] if self.exclusive_training else []), "cuda": deque(self.gpus)}
        waiting: deque[_Running] = deque()
        try:
            while pending or running:
                self._launch(pending, running, sink)
                ready = multiprocessing.connection.wait(
                    [r.connection for r in running.values()] + [r.process.sentinel for r in running.values()],
                    timeout=POLL_S)
                for entry in list(running.values()):
                    if entry.connection in ready or entry.process.sentinel in ready:
                        self._receive(entry, waiting, free)
                    if entry.result is None and not entry.process.is_alive():
                        self._receive(entry, waiting, free)  # what it sent just before it exited
                        if entry.result is None:
                            entry.result = JobOutcome.lost(f"its grading process exited with code {entry.process.exitcode}")
                    if entry.result is None and entry.waiting_since is None and time.monotonic() > entry.deadline:
                        entry.process.kill()
                        entry.result = JobOutcome.lost(f"its grading took longer than {self.timeout_s:.0f} s")
                    if entry.result is not None:
                        self._settle(entry, running, pending, waiting, free, sink)
                self._grant(waiting, free)
        finally:
            for entry in running.values():
                entry.process.kill()
                entry.process.join()

    # -- scheduling ------------------------------------------------------------------------------

    def _takes_a_job(self, entry: _Running) -> bool:
        """Whether `entry` does CPU work where the checks run: a process waiting for a slot, training
        on a GPU or on the cores reserved for training does not."""
        return entry.wants is None or (entry.slot == CPU_SLOT and self.training_cores is None)

    def _launch(self, pending: deque, running: dict, sink: JobSink) -> None:
        cpu_busy = sum(1 for r in running.values() if self._takes_a_job(r))
        # A process waiting for a slot does no CPU work, but it holds memory: a few may wait, not all.
        limit = self.jobs + 2 * (len(self.gpus) + int(self.exclusive_training))
        options = ChildOptions(self.lends, self.check_cores, self.sandbox_verdict)
        while pending and cpu_busy < self.jobs and len(running) < limit:
            job = pending.popleft()
            attempt = sink.started(job)
            mine, theirs = self.context.Pipe()
            process = self.context.Process(target=self.target, args=(job, theirs, options),
                                           name=f"grade {job.submission_id}", daemon=True)
            process.start()
            theirs.close()
            running[mine] = _Running(job, attempt, process, mine, time.monotonic() + self.timeout_s)
            cpu_busy += 1

    def _receive(self, entry: _Running, waiting: deque, free: dict[str, deque]) -> None:
        while entry.result is None:
            try:
                if not entry.connection.poll():
                    return
                message = entry.connection.recv()
            except (EOFError, OSError):
                return
            if not isinstance(message, SlotMessage):  # the outcome, checked when it is settled
                entry.result = message
                continue
            try:
                self._follow(entry, accepted_slot_message(message, FROM_GRADING), waiting, free)
            except ValueError as exc:
                entry.result = JobOutcome.lost(f"its grading process sent {exc}")
                entry.process.kill()  # it may wait for an answer that will not come

    def _follow(self, entry: _Running, message: SlotMessage, waiting: deque, free: dict[str, deque]) -> None:
        """Queues a process that wants a slot, frees what one returns; raises ValueError for a step
        out of turn (a slot wanted twice would be lent twice) or a device this batch lends no slot of."""
        if message.step is SlotStep.WANTED:
            if entry.wants is not None:
                raise ValueError(f"a training slot wanted while it {'holds' if entry.slot else 'waits for'} one")
            if message.device not in self.lends:
                raise ValueError(f"a training slot wanted for {message.device}, which this batch lends none of")
            entry.wants, entry.waiting_since = message.device, time.monotonic()
            waiting.append(entry)
        elif entry.slot is None:
            raise ValueError("a training slot returned that it was not lent")
        else:
            self._give_back(entry, free)

    def _grant(self, waiting: deque, free: dict[str, deque]) -> None:
        for entry in list(waiting):  # the longest waiting first, for each device
            slots = free[entry.wants]
            if not slots:
                continue
            waiting.remove(entry)
            if entry.result is not None or not entry.process.is_alive():
                continue
            entry.slot = slots.popleft()
            entry.deadline += time.monotonic() - (entry.waiting_since or time.monotonic())  # waiting is not grading
            entry.waiting_since = None
            self.training_events.append(("take", entry.job.submission_id, entry.slot, time.monotonic()))
            try:
                entry.connection.send(SlotMessage.lent(entry.wants, self.place_of(entry.slot)))
            except (OSError, BrokenPipeError):
                self._give_back(entry, free)

    def _give_back(self, entry: _Running, free: dict[str, deque]) -> None:
        if entry.slot is not None:
            self.training_events.append(("return", entry.job.submission_id, entry.slot, time.monotonic()))
            free["cpu" if entry.slot == CPU_SLOT else "cuda"].append(entry.slot)
            entry.slot = None
        entry.wants = entry.waiting_since = None

    def _settle(self, entry: _Running, running: dict, pending: deque, waiting: deque, free: dict[str, deque],
                sink: JobSink) -> None:
        del running[entry.connection]
        if entry in waiting:
            waiting.remove(entry)
        self._give_back(entry, free)
        entry.process.join(timeout=5)
        if entry.process.is_alive():
            entry.process.kill()
            entry.process.join()
        reap_adopted_orphans()  # the workers of a grading process killed here come to this one
        entry.connection.close()
        if report(entry.result, entry.job, entry.attempt, sink, "its grading process"):
            pending.appendleft(entry.job)

    # -- what a slot lends -----------------------------------------------------------------------

    def place_of(self, slot: str) -> TrainingPlace:
        if slot == CPU_SLOT:
            return TrainingPlace(cores=self.training_cores, alongside=self._beside_cpu_training())
        return TrainingPlace(env={"CUDA_VISIBLE_DEVICES": slot}, alongside=self._beside_gpu_training())

    def _beside_cpu_training(self) -> str:
        if self.check_cores is not None:
            beside = [f"checks of other submissions on {describe_cores(self.check_cores)}"]
        else:  # one job: nothing but GPU training (a GPU holder takes no job); or one core, shared
            beside = ["checks of other submissions on the same cores"] if self.jobs > 1 else []
        if self.gpus:
            beside.append("training of other submissions on the GPUs")
        return "; ".join(beside) or ALONE

    def _beside_gpu_training(self) -> str:
        # A process training on a GPU takes no job: other submissions' checks go on beside it.
        beside = ["checks" + (" and CPU training" if self.exclusive_training else "") + " of other submissions"]
        if len(self.gpus) > 1:
            beside.append("training of other submissions on the other GPUs")
        return "; ".join(beside)


# -- in the grading process ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChildOptions:
    lends: tuple[str, ...] = ()    # the devices the coordinator lends training slots of
    check_cores: Optional[tuple[int, ...]] = None   # where the process runs its checks (None: anywhere)
    sandbox_verdict: Optional[tuple[str, tuple[str, ...]]] = None


def child_main(job: SubmissionJob, connection: Any, options: ChildOptions) -> None:
    """Runs in the forked grading process: grade, send the record, exit."""
    from grader.batch.job import run_job
    from grader.sandbox.selfcheck import adopt_verdict
    from grader.sandbox.worker_process import die_with_parent

    die_with_parent()
    # Before any worker starts, so that each inherits it: off the cores another's training holds.
    pin_to(options.check_cores)
    if options.sandbox_verdict is not None:
        adopt_verdict(*options.sandbox_verdict)
    try:
        outcome = run_job(job, training_lease=training_lease(connection, options.lends))
    except BaseException:  # noqa: BLE001 - a fault of the grader: the coordinator decides on a retry
        outcome = JobOutcome.crashed(traceback.format_exc(limit=8)[-2000:])
    try:
        connection.send(outcome)
        connection.close()
    except OSError:
        pass  # the coordinator is gone (stopped, killed): nobody is left to tell, nor to read a traceback


def pin_to(cores: Optional[tuple[int, ...]]) -> None:
    """This process (and what it starts from now on) on `cores`; None: left where it is."""
    if cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def training_lease(connection: Any, lends: tuple[str, ...]) -> Optional[TrainingLease]:
    """Where this process's training trains: a slot from the coordinator for the devices it lends,
    anywhere for the others (a GPU where the batch lends none trains where its process runs)."""
    if not lends:
        return None

    def lease(device: str) -> ContextManager[TrainingPlace]:
        return slot_from_coordinator(connection, device) if device in lends else nullcontext(TrainingPlace())

    return lease


@contextmanager
def slot_from_coordinator(connection: Any, device: str) -> Iterator[TrainingPlace]:
    """Waits for the coordinator to lend a training slot of `device`; gives it back on leaving, whatever happened."""
    connection.send(SlotMessage.wanted(device))
    lent = accepted_slot_message(connection.recv(), (SlotStep.LENT,), device)
    try:
        yield lent.place()
    finally:
        connection.send(SlotMessage.returned())
