"""Stand-ins for the grading of one submission, for the tests of the Slurm and Ray executors.

They run in other processes (submitit's, Ray's workers), where a test cannot patch anything, so what
each does is read from the job itself (`job.extra`), and what it did is written to files in
`trace_dir`: `<id>.interval` holds its start and end times, `<id>.lost` says it failed once already.
The processes find this module through PYTHONPATH, which the tests set before starting them.

extra: trace_dir, sleep (seconds), mode: "ok" | "raise_once" (a grader fault on the first attempt) |
"exit_once" (the process dies on the first attempt) | "fatal" (a batch-wide problem) | "meet" (waits
for the `partner` job to have started: it finishes only where both run at once) | "untyped" (returns
a bare ("done", record) tuple instead of a JobOutcome)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from grader.batch.executor import JobOutcome

MEET_TIMEOUT_S = 20.0


def fake_job(job: Any) -> Any:
    trace = Path(job.extra["trace_dir"])
    mode = job.extra.get("mode", "ok")
    start = time.time()
    (trace / f"{job.submission_id}.started").write_text(f"{start!r}\n")
    if mode == "fatal":
        return JobOutcome.fatal("ConfigError: the assignment cannot be loaded")
    if mode == "untyped":
        return "done", {"id": job.submission_id, "status": "graded", "score": 1.0, "max_score": 1.0}
    if mode in ("raise_once", "exit_once"):
        marker = trace / f"{job.submission_id}.lost"
        if not marker.exists():
            marker.write_text(f"{os.getpid()}\n")
            if mode == "exit_once":
                os._exit(3)
            raise RuntimeError("the grader failed")
    met = None
    if mode == "meet":
        partner = trace / f"{job.extra['partner']}.started"
        deadline = time.monotonic() + MEET_TIMEOUT_S
        while not partner.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        met = partner.exists()
    time.sleep(float(job.extra.get("sleep", 0.0)))
    end = time.time()
    (trace / f"{job.submission_id}.interval").write_text(f"{start!r} {end!r}\n")
    return JobOutcome.done({"id": job.submission_id, "status": "graded", "score": 1.0, "max_score": 1.0,
                            "pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                            "met": met})
