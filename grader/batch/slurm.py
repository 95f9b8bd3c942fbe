"""The Slurm executor: the batch as one Slurm job array, one array element per submission.

submitit writes the sbatch script, pickles each submission's job next to it in `folder` (which must
be on a file system the nodes share, like the project and the submissions) and brings each result
back as a pickle; this process only submits, watches and reports. The scheduler places the elements
(`parallelism` at a time, each with its GPUs and CPUs) and kills one that runs past `time_limit_s`:
that, a node that died or a grader fault is the infrastructure's loss, which the coordinator may
hand out again as a single job. A student's failure comes back as a record like any other.

Problems no submission can be graded with (configuration, data) come back from the element as data,
not as an exception, so that they stop the batch instead of looking like a lost node.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from grader.batch.executor import BatchAborted, JobOutcome, JobSink, report
from grader.batch.job import SubmissionJob, run_job

INSTALL_HINT = 'the slurm executor needs submitit: pip install "grader[slurm]"'
POLL_S = 2.0


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return submitit


def timeout_minutes(time_limit_s: float) -> int:
    """Slurm's time limit is in whole minutes: never less than what the grading may take."""
    return max(1, math.ceil(time_limit_s / 60))


class SlurmExecutor:
    name = "slurm"

    def __init__(self, folder: Path | str, partition: Optional[str] = None, gpus_per_job: int = 0,
                 cpus_per_job: int = 2, time_limit_s: float = 3600.0, parallelism: int = 16,
                 mem_gb: Optional[int] = None, cluster: Optional[str] = None, job_name: str = "grader",
                 poll_s: float = POLL_S, target: Callable[[SubmissionJob], JobOutcome] = run_job):
        """`cluster` is submitit's: None is Slurm itself (not submitit's detection, which would quietly
        grade on this machine where there is no Slurm); "local" runs each element as a process here,
        which is what the tests use. `target` is what each element runs."""
        if parallelism < 1:
            raise ValueError("the array's parallelism must be at least 1")
        if gpus_per_job < 0 or cpus_per_job < 1:
            raise ValueError("a job needs at least one CPU and no negative number of GPUs")
        self.folder = Path(folder)
        self.partition = partition
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = cpus_per_job
        self.time_limit_s = time_limit_s
        self.parallelism = parallelism
        self.mem_gb = mem_gb
        self.cluster = cluster or "slurm"
        self.job_name = job_name
        self.poll_s = poll_s
        self.target = target
        import_submitit()  # fail at once, before anything is handed out, where the extra is missing

    # -- what every element asks for ------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        """submitit.AutoExecutor's parameters: the generic ones, and the Slurm-only ones prefixed `slurm_`.
        None leaves submitit's default (no GPU is asked for rather than zero of them)."""
        return {
            "name": self.job_name,
            "timeout_min": timeout_minutes(self.time_limit_s),
            "cpus_per_task": self.cpus_per_job,
            "gpus_per_node": self.gpus_per_job or None,
            "mem_gb": self.mem_gb,
            "slurm_partition": self.partition,
            "slurm_array_parallelism": self.parallelism,
        }

    def make_executor(self) -> Any:
        submitit = import_submitit()
        try:
            executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        except RuntimeError as exc:  # no srun on this machine
            raise BatchAborted(f"the slurm executor cannot submit from here: {exc}") from exc
        executor.update_parameters(**self.parameters())
        return executor

    def script_for(self, count: int) -> str:
        """The sbatch script submitit writes for an array of `count` submissions, without submitting
        anything or needing Slurm here: to check what the batch will ask the scheduler for."""
        if count < 1:
            raise ValueError("an array has at least one element")
        submitit = import_submitit()

        class ScriptOnly(submitit.SlurmExecutor):
            @classmethod
            def affinity(cls) -> int:
                return 1  # writes scripts only: no srun needed

        executor = ScriptOnly(self.folder)
        generic, specific = {}, {}
        for key, value in self.parameters().items():
            if value is not None:
                (specific if key.startswith("slurm_") else generic)[key.removeprefix("slurm_")] = value
        # As submitit.AutoExecutor does for Slurm: generic names translated, then Slurm's own ones.
        executor.update_parameters(**executor._convert_parameters(generic), **specific)
        # As submitit's array submission does: the same executor's script, with the array's size.
        executor.parameters["map_count"] = count
        return executor._make_submission_file_text(executor._submitit_command_str, "array")

    # -- running --------------------------------------------------------------------------------

    def run(self, jobs: Sequence[SubmissionJob], sink: JobSink) -> None:
        if not jobs:
            return
        executor = self.make_executor()
        handles = self._submit(lambda: executor.map_array(self.target, list(jobs)))
        running = [(job, sink.started(job), handle) for job, handle in zip(jobs, handles)]
        try:
            while running:
                still = []
                for job, attempt, handle in running:
                    if not _done(handle):
                        still.append((job, attempt, handle))
                        continue
                    if report(_outcome(handle), job, attempt, sink, _origin(handle)):
                        # The rest of the array keeps its place; this one goes alone.
                        retry = self._submit(lambda: [executor.submit(self.target, job)])[0]
                        still.append((job, sink.started(job), retry))
                running = still
                if running:
                    time.sleep(self.poll_s)
        finally:
            for _job, _attempt, handle in running:  # stopped early: nothing is left queued for nobody
                _cancel(handle)

    def _submit(self, submit: Callable[[], list]) -> list:
        try:
            return submit()
        except BatchAborted:
            raise
        except Exception as exc:  # noqa: BLE001 - sbatch refused (partition, limits): no job can run
            raise BatchAborted(f"the Slurm array could not be submitted: {type(exc).__name__}: {exc}") from exc


def _origin(handle: Any) -> str:
    return f"Slurm job {getattr(handle, 'job_id', '?')}"


def _outcome(handle: Any) -> Any:
    """What the element returned; its loss where it returned nothing (why ends with the element's log)."""
    try:
        return handle.result()
    except Exception as exc:  # noqa: BLE001 - killed, timed out, node failure or grader fault
        return JobOutcome.lost(f"{_origin(handle)}: {type(exc).__name__}: {exc}")


def _done(handle: Any) -> bool:
    try:
        return handle.done()
    except Exception:  # noqa: BLE001 - its state cannot be read: result() says what became of it
        return True


def _cancel(handle: Any) -> None:
    try:
        if not handle.done():
            handle.cancel(check=False)
    except Exception:  # noqa: BLE001 - best effort: the scheduler's limit ends it anyway
        pass
