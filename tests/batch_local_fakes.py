"""Stand-ins for a submission's grading, run by the local executor in its grading processes, so the
scheduling (GPU lending, retries, aborts) is tested in seconds without grading anything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from grader.batch.executor import JobOutcome
from grader.batch.local import GpuMessage, GpuStep, gpu_from_coordinator


def _record(job, **extra) -> dict:
    return {"id": job.submission_id, "source": job.path, "content_hash": job.content_hash, "status": "graded",
            "score": 1.0, "max_score": 1.0, "seed": job.settings.seed, "tasks": {}, "errors": "", "seconds": 0.0,
            "checks_s": 0.0, "results": {}, "feedback": "", **extra}


def trace_dir(job) -> Path:
    """Next to the folder of submissions: tmp/subs/<id> -> tmp/trace."""
    folder = Path(job.path).parent.parent / "trace"
    folder.mkdir(exist_ok=True)
    return folder


def trains_on_a_gpu(job, connection, options) -> None:
    """Does a little CPU work, then holds a GPU for a while, tracing when it asked, got and gave it back."""
    trace = trace_dir(job) / f"{job.submission_id}.json"
    time.sleep(0.05)
    wanted = time.time()
    with gpu_from_coordinator(connection) as env:
        granted = time.time()
        time.sleep(0.4)
        released = time.time()
    trace.write_text(json.dumps({"gpu": env["CUDA_VISIBLE_DEVICES"], "wanted": wanted, "granted": granted,
                                 "released": released}))
    connection.send(JobOutcome.done(_record(job)))


def dies_on_first_attempt(job, connection, options) -> None:
    """Its grading process dies the first time (as on a lost node), grades on the next."""
    marker = trace_dir(job) / f"{job.submission_id}.died"
    if not marker.exists():
        marker.write_text("")
        os._exit(9)
    connection.send(JobOutcome.done(_record(job)))


def always_dies(job, connection, options) -> None:
    os._exit(9)


def grader_raises(job, connection, options) -> None:
    connection.send(JobOutcome.crashed("Traceback: RuntimeError: a fault of the grader"))


def sends_an_untyped_outcome(job, connection, options) -> None:
    connection.send(("done", _record(job)))


def configuration_is_broken(job, connection, options) -> None:
    connection.send(JobOutcome.fatal("ConfigError: assignment.yaml: tasks: missing"))


def lends_a_gpu_itself(job, connection, options) -> None:
    """Sends what only the coordinator sends, then its record: the attempt is lost all the same."""
    connection.send(GpuMessage.lent("0"))
    connection.send(JobOutcome.done(_record(job)))


def asks_for_a_gpu_naming_one(job, connection, options) -> None:
    """A malformed message, as unpickling would deliver it (no __post_init__ on the way)."""
    message = object.__new__(GpuMessage)
    object.__setattr__(message, "step", GpuStep.WANTED)
    object.__setattr__(message, "gpu", "0")
    connection.send(message)
    connection.send(JobOutcome.done(_record(job)))


def asks_for_a_gpu_in_a_bare_tuple(job, connection, options) -> None:
    connection.send(("gpu-wanted",))
    connection.send(JobOutcome.done(_record(job)))
