"""Stand-ins for a submission's grading, run by the local executor in its grading processes, so the
scheduling (lending training slots, retries, aborts) is tested in seconds without grading anything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from grader.batch.executor import JobOutcome
from grader.batch.local import SlotMessage, SlotStep, slot_from_coordinator


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
    with slot_from_coordinator(connection, "cuda") as place:
        granted = time.time()
        time.sleep(0.4)
        released = time.time()
    trace.write_text(json.dumps({"gpu": place.env["CUDA_VISIBLE_DEVICES"], "wanted": wanted, "granted": granted,
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
    from grader.engine.training_place import TrainingPlace

    connection.send(SlotMessage.lent("cuda", TrainingPlace(env={"CUDA_VISIBLE_DEVICES": "0"})))
    connection.send(JobOutcome.done(_record(job)))


def _unchecked(**fields) -> SlotMessage:
    """A malformed message, as unpickling would deliver it (no __post_init__ on the way)."""
    message = object.__new__(SlotMessage)
    for name in ("step", "device", "env", "cores", "alongside"):
        object.__setattr__(message, name, fields.get(name))
    return message


def asks_for_a_gpu_naming_one(job, connection, options) -> None:
    connection.send(_unchecked(step=SlotStep.WANTED, device="cuda", env={"CUDA_VISIBLE_DEVICES": "0"}))
    connection.send(JobOutcome.done(_record(job)))


def asks_for_a_slot_of_no_device(job, connection, options) -> None:
    connection.send(_unchecked(step=SlotStep.WANTED, device="tpu"))
    connection.send(JobOutcome.done(_record(job)))


def asks_for_a_gpu_in_a_bare_tuple(job, connection, options) -> None:
    connection.send(("gpu-wanted",))
    connection.send(JobOutcome.done(_record(job)))


def asks_twice(job, connection, options) -> None:
    """Wants the CPU slot, and again before it returned it: a slot lent twice would be held twice."""
    connection.send(SlotMessage.wanted("cpu"))
    connection.recv()
    connection.send(SlotMessage.wanted("cpu"))
    connection.send(JobOutcome.done(_record(job)))


def returns_what_it_was_not_lent(job, connection, options) -> None:
    connection.send(SlotMessage.returned())
    connection.send(JobOutcome.done(_record(job)))


def trains_on_the_cpu(job, connection, options) -> None:
    """Does a little CPU work, then trains on the CPU for a while as child_main's grading would (on
    its check cores, in the place the coordinator lends where it lends one), tracing when it started,
    asked, got and gave the slot back, and the cores it ran on while training and after."""
    from contextlib import nullcontext

    from grader.batch.local import pin_to, training_lease
    from grader.engine.training_place import TrainingPlace

    started = time.time()
    pin_to(options.check_cores)
    lease = training_lease(connection, options.lends)
    time.sleep(0.05)
    wanted = time.time()
    with (lease("cpu") if lease else nullcontext(TrainingPlace())) as place, place.pinned():
        granted = time.time()
        cores = sorted(os.sched_getaffinity(0))
        time.sleep(0.3)
        released = time.time()
    trace = trace_dir(job) / f"{job.submission_id}.json"
    trace.write_text(json.dumps({"cores": cores, "lent_cores": place.cores, "alongside": place.alongside,
                                 "started": started, "wanted": wanted, "granted": granted, "released": released,
                                 "check_cores": sorted(os.sched_getaffinity(0))}))
    connection.send(JobOutcome.done(_record(job)))
