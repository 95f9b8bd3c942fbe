"""The Slurm executor: the batch as one Slurm job array, one array element per submission.

submitit writes the sbatch script, pickles each submission's job next to it in `folder` (which must
be on a file system the nodes share, like the project and the submissions) and brings each result
back as a pickle; this process only submits, watches and reports. The scheduler places the elements
(`parallelism` at a time, each with its GPUs and CPUs) and kills one that runs past `time_limit_s`:
that, a node that died or a grader fault is the infrastructure's loss, which the coordinator may
hand out again as a single job. A student's failure comes back as a record like any other.

What became of an element is read from Slurm itself, with squeue, once per round for the whole batch:
submitit's own watch asks sacct, which answers only where the cluster keeps accounting, and would
wait forever on an element cancelled (scancel), failed with its node (NODE_FAIL) or preempted, which
leaves no result. Such an element is the loss of its attempt, named by its state, and it is handed
out again (its old job cancelled, so that one Slurm requeues cannot grade it a second time).

Problems no submission can be graded with (configuration, data) come back from the element as data,
not as an exception, so that they stop the batch instead of looking like a lost node.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from grader.batch.executor import BatchAborted, JobOutcome, JobSink, report
from grader.batch.job import SubmissionJob, run_job

INSTALL_HINT = 'the slurm executor needs submitit: pip install "grader[slurm]"'
POLL_S = 2.0
# States of a job that ended, or will not run again on its own, without its result: the attempt is lost.
LOST_STATES = frozenset({"CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "TIMEOUT",
                         "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"})
# States of a job that ended and may have left its result (a failed element leaves its traceback).
ENDED_STATES = frozenset({"COMPLETED", "FAILED"})
# Rounds a job may be missing from squeue's answer before it counts as ended long ago (MinJobAge).
MISSING_ROUNDS = 2
SQUEUE_TIMEOUT_S = 60


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
        watch = SlurmWatch() if self.cluster == "slurm" else None
        try:
            while running:
                if watch is not None:
                    watch.update(handle.job_id for _job, _attempt, handle in running)
                still = []
                for job, attempt, handle in running:
                    received = _settled(handle, watch)
                    if received is None:
                        still.append((job, attempt, handle))
                        continue
                    if report(received, job, attempt, sink, _origin(handle)):
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


class SlurmWatch:
    """The state of each job the batch waits on, as slurmctld knows it: one squeue per round for all
    of them (array elements each on its own), ended jobs included as long as slurmctld keeps them
    (MinJobAge). Needs no accounting. Where squeue cannot answer, the states are unknown for the
    round, and submitit's own watch (sacct) is all there is."""

    def __init__(self, command: str = "squeue"):
        self.command = command
        self.states: Optional[dict[str, str]] = None
        self.missing: dict[str, int] = {}  # job -> rounds in a row squeue answered without it

    def update(self, job_ids: Any) -> None:
        wanted = {str(job_id) for job_id in job_ids}
        self.states = squeue_states(wanted, self.command)
        if self.states is None:
            return
        for job_id in wanted:
            self.missing[job_id] = 0 if job_id in self.states else self.missing.get(job_id, 0) + 1
        for job_id in set(self.missing) - wanted:
            del self.missing[job_id]

    def state(self, job_id: str) -> Optional[str]:
        """The job's state this round; None where unknown; "" where Slurm no longer knows the job."""
        if self.states is None:
            return None
        if job_id in self.states:
            return self.states[job_id]
        return "" if self.missing.get(job_id, 0) >= MISSING_ROUNDS else None


def squeue_states(job_ids: set[str], command: str = "squeue") -> Optional[dict[str, str]]:
    """{job id (an array element as "<array>_<index>"): its state} for the jobs of `job_ids` slurmctld
    still holds; None where squeue does not answer."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    try:
        done = subprocess.run([command, "--noheader", "--array", "--states=all", "--format=%i|%T",
                               "--jobs=" + ",".join(arrays)],
                              capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        # A single job slurmctld no longer holds is an error of its own; any other failure says nothing.
        return {} if "Invalid job id" in done.stderr else None
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state:
            states[job_id] = state.split()[0].rstrip("+")  # "CANCELLED by 0", "CANCELLED+": the state alone
    return states


def _settled(handle: Any, watch: Optional[SlurmWatch]) -> Any:
    """What the element came to: what it returned, or the loss of its attempt; None while it is on its way."""
    state = watch.state(str(handle.job_id)) if watch is not None else None
    if _has_result(handle):  # after the state: a result written before an scancel is still the result
        return _outcome(handle)
    if state in LOST_STATES:
        _cancel_quietly(handle)  # one Slurm requeues (a preempted or failed node's) is not graded twice
        return JobOutcome.lost(f"{_origin(handle)} ended {state} without a result{_log_tail(handle)}")
    if state in ENDED_STATES or state == "":
        return _outcome(handle)  # its result may still be on its way through a shared file system
    if state is None and _done(handle):
        return _outcome(handle)
    return None


def _has_result(handle: Any) -> bool:
    try:
        return bool(handle.paths.result_pickle.exists())
    except Exception:  # noqa: BLE001 - not submitit's job as we know it: done() tells
        return False


def _log_tail(handle: Any, lines: int = 20) -> str:
    try:
        log = handle.stderr()
    except Exception:  # noqa: BLE001 - no log to show
        return ""
    tail = "\n".join((log or "").strip().splitlines()[-lines:])
    return f"; its log ends:\n{tail}" if tail else ""


def _cancel_quietly(handle: Any) -> None:
    try:
        subprocess.run(["scancel", str(handle.job_id)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        pass


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
