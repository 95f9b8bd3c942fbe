"""The Slurm and Ray executors keep the executor contract: each job handed out is reported started,
then finished with its record, or lost and handed out again; a batch-wide problem stops the batch.

No cluster or GPU is needed: Slurm's array runs through submitit's local cluster (its script is
checked as text), Ray runs a local instance that declares one logical GPU. The jobs are stand-ins
(batch_fake_jobs) that sleep, leave their start and end times in files, or fail as asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import pytest

import batch_fake_jobs
from grader.batch.executor import BatchAborted, JobOutcome, OutcomeKind, report
from grader.batch.job import JobSettings, SubmissionJob

TESTS_DIR = Path(batch_fake_jobs.__file__).resolve().parent
RAY_RESOURCES = dict(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
SETTINGS = JobSettings(assignment="fake", project_root="/nonexistent", mode="public", seed=0)


class FakeSink:
    """Records what an executor reported; tries a lost job again up to `max_attempts` times."""

    def __init__(self, max_attempts: int = 2):
        self.max_attempts = max_attempts
        self.events: list[tuple[str, str, int]] = []
        self.attempts: dict[str, int] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.why: dict[str, list[str]] = {}

    def started(self, job: SubmissionJob) -> int:
        attempt = self.attempts[job.submission_id] = self.attempts.get(job.submission_id, 0) + 1
        self.events.append(("started", job.submission_id, attempt))
        return attempt

    def finished(self, job: SubmissionJob, attempt: int, record: dict[str, Any]) -> None:
        self.events.append(("finished", job.submission_id, attempt))
        self.records[job.submission_id] = record

    def lost(self, job: SubmissionJob, attempt: int, why: str) -> bool:
        self.events.append(("lost", job.submission_id, attempt))
        self.why.setdefault(job.submission_id, []).append(why)
        return attempt < self.max_attempts

    def of(self, submission_id: str) -> list[tuple[str, int]]:
        return [(kind, attempt) for kind, sid, attempt in self.events if sid == submission_id]


def fake(trace: Path, submission_id: str, mode: str = "ok", sleep: float = 0.0,
         partner: Optional[str] = None) -> SubmissionJob:
    extra = {"trace_dir": str(trace), "mode": mode, "sleep": sleep}
    if partner:
        extra["partner"] = partner
    return SubmissionJob(submission_id, f"/submissions/{submission_id}", "0" * 64, SETTINGS, extra=extra)


def intervals(trace: Path) -> dict[str, tuple[float, float]]:
    return {p.stem: tuple(float(x) for x in p.read_text().split())  # type: ignore[misc]
            for p in trace.glob("*.interval")}


@pytest.fixture(scope="module", autouse=True)
def fake_jobs_importable():
    """The executors' processes import batch_fake_jobs: set before any of them (or Ray) starts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "trace"
    path.mkdir()
    return path


# -- the outcome every executor reports, checked in one place --------------------------------------

def unchecked(kind, record=None, message="") -> JobOutcome:
    """An outcome as unpickling rebuilds one (in the coordinator, from another process): unchecked."""
    outcome = object.__new__(JobOutcome)
    for name, value in (("kind", kind), ("record", record), ("message", message)):
        object.__setattr__(outcome, name, value)
    return outcome


RECORD = {"id": "s1", "status": "graded", "score": 1.0, "max_score": 1.0}


@pytest.mark.parametrize("received, named", [
    (("done", RECORD), "tuple"),                              # the bare tuple of old
    (None, "NoneType"),
    (unchecked("done", RECORD), "an outcome of kind 'done'"),
    (unchecked(OutcomeKind.DONE, None), "a done outcome whose record is a NoneType"),
    (unchecked(OutcomeKind.DONE, ["s1"]), "a done outcome whose record is a list"),
    (unchecked(OutcomeKind.FATAL, RECORD, "stop"), "a fatal outcome with a record"),
    (unchecked(OutcomeKind.FATAL, None, 7), "a fatal outcome whose message is a int"),
    (JobOutcome.done({**RECORD, "id": "s2"}), "the record of 's2', not of 's1'"),
], ids=["tuple", "none", "untyped-kind", "done-without-record", "record-not-a-dict", "fatal-with-record",
        "message-not-text", "another-submission"])
def test_a_malformed_outcome_is_refused_as_the_loss_of_the_attempt(tmp_path, received, named):
    sink = FakeSink()
    assert report(received, fake(tmp_path, "s1"), 1, sink, "its grading process") is True  # handed out again
    assert sink.of("s1") == [("lost", 1)] and not sink.records
    assert sink.why["s1"] == [f"its grading process returned {named}"]


def test_an_outcome_is_checked_when_it_is_made():
    with pytest.raises(ValueError, match="record is a NoneType"):
        JobOutcome(OutcomeKind.DONE)
    with pytest.raises(ValueError, match="fatal outcome with a record"):
        JobOutcome(OutcomeKind.FATAL, record=RECORD, message="stop")


def test_a_well_formed_outcome_reaches_the_sink(tmp_path):
    sink = FakeSink()
    job = fake(tmp_path, "s1")
    assert report(JobOutcome.done(RECORD), job, 1, sink, "here") is False
    assert report(JobOutcome.lost("x" * 5000), job, 2, sink, "here") is False   # FakeSink: 2 attempts at most
    assert report(JobOutcome.crashed("Traceback"), job, 1, sink, "here") is True
    assert sink.records == {"s1": RECORD}
    assert len(sink.why["s1"][0]) <= 2000 and sink.why["s1"][1] == "the grader failed: Traceback"
    with pytest.raises(BatchAborted, match="ConfigError"):
        report(JobOutcome.fatal("ConfigError: tasks: missing"), job, 3, sink, "here")


# -- Slurm ----------------------------------------------------------------------------------------

def local_slurm(tmp_path: Path, **options: Any):
    pytest.importorskip("submitit")
    from grader.batch.slurm import SlurmExecutor

    return SlurmExecutor(folder=tmp_path / "slurm", cluster="local", time_limit_s=120, parallelism=4,
                         cpus_per_job=1, poll_s=0.05, target=batch_fake_jobs.fake_job, **options)


def test_slurm_array_grades_each_job_and_retries_a_lost_one(tmp_path, trace, monkeypatch):
    executor = local_slurm(tmp_path)
    # A job that left no result is waited for (a shared file system may be slow to show it): not here.
    monkeypatch.setattr("submitit.core.core.Job._results_timeout_s", 1)
    sink = FakeSink()
    executor.run([fake(trace, "s1"), fake(trace, "s2", "raise_once"), fake(trace, "s3", "exit_once")], sink)

    assert sink.of("s1") == [("started", 1), ("finished", 1)]
    for retried in ("s2", "s3"):
        assert sink.of(retried) == [("started", 1), ("lost", 1), ("started", 2), ("finished", 2)]
    assert "the grader failed" in sink.why["s2"][0]
    assert {sid: r["id"] for sid, r in sink.records.items()} == {"s1": "s1", "s2": "s2", "s3": "s3"}
    assert set(intervals(trace)) == {"s1", "s2", "s3"}


def test_slurm_gives_up_on_a_job_the_sink_does_not_retry(tmp_path, trace):
    sink = FakeSink(max_attempts=1)
    local_slurm(tmp_path).run([fake(trace, "s1", "raise_once")], sink)
    assert sink.of("s1") == [("started", 1), ("lost", 1)]


def test_slurm_batch_wide_problem_aborts(tmp_path, trace):
    sink = FakeSink()
    with pytest.raises(BatchAborted, match="ConfigError"):
        local_slurm(tmp_path).run([fake(trace, "s1", "fatal")], sink)
    assert ("finished", "s1", 1) not in sink.events


def test_slurm_refuses_an_untyped_outcome(tmp_path, trace):
    sink = FakeSink(max_attempts=1)
    local_slurm(tmp_path).run([fake(trace, "s1", "untyped")], sink)
    assert sink.of("s1") == [("started", 1), ("lost", 1)] and not sink.records
    assert re.fullmatch(r"Slurm job \S+ returned tuple", sink.why["s1"][0]), sink.why


def test_slurm_script_asks_for_the_array_gpus_time_and_partition(tmp_path):
    pytest.importorskip("submitit")
    from grader.batch.slurm import SlurmExecutor

    executor = SlurmExecutor(folder=tmp_path / "slurm", partition="gpu", gpus_per_job=1, cpus_per_job=4,
                             time_limit_s=7205, parallelism=4, mem_gb=16)
    script = executor.script_for(20)

    flags = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script, re.MULTILINE))
    assert flags["array"] == "0-19%4"
    assert flags["gpus-per-node"] == "1"
    assert flags["time"] == "121"           # 7205 s, in whole minutes rounded up
    assert flags["partition"] == "gpu"
    assert flags["cpus-per-task"] == "4"
    assert flags["mem"] == "16GB"
    assert "submitit.core._submit" in script
    assert not (tmp_path / "slurm").exists() or not any((tmp_path / "slurm").iterdir())  # nothing submitted


def test_slurm_script_asks_for_no_gpu_where_jobs_need_none(tmp_path):
    pytest.importorskip("submitit")
    from grader.batch.slurm import SlurmExecutor

    script = SlurmExecutor(folder=tmp_path, time_limit_s=1, parallelism=8).script_for(3)
    assert "--array=0-2%3" in script
    assert "--time=1" in script
    assert "gpus" not in script and "gres" not in script and "--partition" not in script


# -- Ray ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_module(fake_jobs_importable):
    ray = pytest.importorskip("ray")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_instance(ray_module):
    """One Ray instance for the module's tests (started again if a test shut it down)."""
    if not ray_module.is_initialized():
        ray_module.init(**RAY_RESOURCES)
    return ray_module


def ray_executor(**options: Any):
    from grader.batch.ray_executor import RayExecutor

    return RayExecutor(target=batch_fake_jobs.fake_job, **options)


def test_ray_gpu_jobs_hold_the_gpu_one_at_a_time(ray_module, trace):
    if ray_module.is_initialized():
        ray_module.shutdown()  # this executor starts its own instance, and stops it
    sink = FakeSink()
    jobs = [fake(trace, f"g{i}", sleep=0.5) for i in range(4)]
    ray_executor(init_kwargs=RAY_RESOURCES, gpus_per_job=1).run(jobs, sink)

    assert not ray_module.is_initialized()
    assert sorted(sink.events) == sorted([("started", j.submission_id, 1) for j in jobs]
                                         + [("finished", j.submission_id, 1) for j in jobs])
    assert {r["cuda_visible_devices"] for r in sink.records.values()} == {"0"}
    spans = sorted(intervals(trace).values())
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"two jobs held the one GPU at once: {spans}"


def test_ray_cpu_jobs_run_at_once(ray_instance, trace):
    sink = FakeSink()
    ray_executor(gpus_per_job=0).run([fake(trace, "c1", "meet", partner="c2"),
                                      fake(trace, "c2", "meet", partner="c1")], sink)
    assert {sid: r["met"] for sid, r in sink.records.items()} == {"c1": True, "c2": True}
    assert ray_instance.is_initialized()  # not started by the executor: not stopped by it either


def test_ray_lost_jobs_are_handed_out_again(ray_instance, trace):
    sink = FakeSink()
    ray_executor(max_in_flight=1).run([fake(trace, "r1", "raise_once"), fake(trace, "r2", "exit_once"),
                                       fake(trace, "r3")], sink)
    for retried in ("r1", "r2"):
        assert sink.of(retried) == [("started", 1), ("lost", 1), ("started", 2), ("finished", 2)]
    assert sink.of("r3") == [("started", 1), ("finished", 1)]
    assert "the grader failed" in sink.why["r1"][0]
    # max_in_flight=1: each job is handed out once the one before it is settled, a lost one first.
    assert [(kind, sid) for kind, sid, _ in sink.events] == [
        ("started", "r1"), ("lost", "r1"), ("started", "r1"), ("finished", "r1"),
        ("started", "r2"), ("lost", "r2"), ("started", "r2"), ("finished", "r2"),
        ("started", "r3"), ("finished", "r3")]


def test_ray_batch_wide_problem_aborts(ray_instance, trace):
    with pytest.raises(BatchAborted, match="ConfigError"):
        ray_executor().run([fake(trace, "f1", "fatal")], FakeSink())


def test_ray_refuses_an_untyped_outcome(ray_instance, trace):
    sink = FakeSink(max_attempts=1)
    ray_executor().run([fake(trace, "u1", "untyped")], sink)
    assert sink.of("u1") == [("started", 1), ("lost", 1)] and not sink.records
    assert sink.why["u1"] == ["Ray task returned tuple"]
