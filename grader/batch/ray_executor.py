"""The Ray executor: each submission graded by a Ray task, on whichever node of the cluster has its
resources free.

A task asks for `gpus_per_job` GPUs and `cpus_per_job` CPUs; Ray runs it when they are free and
gives it those GPUs alone (CUDA_VISIBLE_DEVICES), so a GPU holds one submission at a time and time
limits stay fair, as with the local executor. Each task runs in a fresh worker process, so nothing one
submission's grading loaded or changed is there for the next. A task is named after its submission
(`grade <id>`): Ray's dashboard and `ray list tasks` show that name, and its worker's process title
is `ray::grade <id>`. Ray does not retry a task itself: a worker or node that died, or a fault of the
grader, is reported to the coordinator, which decides whether the submission is handed out again. A
student's failure comes back as a record like any other.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Callable, Optional, Sequence

from grader.batch.executor import JobOutcome, JobSink, report
from grader.batch.job import SubmissionJob, run_job

INSTALL_HINT = 'the ray executor needs ray: pip install "grader[ray]"'
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")   # Ray colours its error messages for a terminal


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return ray


def task_name(job: SubmissionJob) -> str:
    """The name of the Ray task grading `job` (its worker's process title is `ray::` and the name)."""
    return f"grade {job.submission_id}"


class RayExecutor:
    name = "ray"

    def __init__(self, address: Optional[str] = None, gpus_per_job: float = 0, cpus_per_job: float = 1,
                 max_in_flight: Optional[int] = None, init_kwargs: Optional[dict[str, Any]] = None,
                 target: Callable[[SubmissionJob], JobOutcome] = run_job):
        """`address` is the cluster to connect to (None: a Ray instance on this machine, started for
        the batch); `init_kwargs` go to ray.init as they are. Where this process is already connected
        to Ray, that connection is used and neither applies. `max_in_flight` bounds the tasks handed
        to Ray at once (None: all of them). `target` is what each task runs."""
        if gpus_per_job < 0 or cpus_per_job < 0:
            raise ValueError("a job cannot ask for a negative number of GPUs or CPUs")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.address = address
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = cpus_per_job
        self.max_in_flight = max_in_flight
        self.init_kwargs = dict(init_kwargs or {})
        self.target = target
        import_ray()  # fail at once, before anything is handed out, where the extra is missing

    def run(self, jobs: Sequence[SubmissionJob], sink: JobSink) -> None:
        if not jobs:
            return
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, **self.init_kwargs)
        # max_calls=1: a fresh worker process per submission (Ray's default for GPU tasks already).
        task = ray.remote(num_gpus=self.gpus_per_job, num_cpus=self.cpus_per_job, max_retries=0,
                          max_calls=1)(self.target)
        pending = deque(jobs)
        in_flight: dict[Any, tuple[SubmissionJob, int]] = {}
        try:
            while pending or in_flight:
                while pending and (self.max_in_flight is None or len(in_flight) < self.max_in_flight):
                    job = pending.popleft()
                    attempt = sink.started(job)
                    in_flight[task.options(name=task_name(job)).remote(job)] = (job, attempt)
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    job, attempt = in_flight.pop(ref)
                    if report(self._outcome(ray, ref), job, attempt, sink, "Ray task"):
                        pending.appendleft(job)
        finally:
            for ref in in_flight:  # stopped early: nothing is left running for nobody
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort; shutting down ends it anyway
                    pass
            if started_here:
                ray.shutdown()

    @staticmethod
    def _outcome(ray: Any, ref: Any) -> Any:
        """What the task returned; its loss where it returned nothing."""
        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - RayError: worker or node died, task cancelled, grader fault
            return JobOutcome.lost(ANSI_ESCAPE.sub("", f"Ray task: {type(exc).__name__}: {exc}"))
