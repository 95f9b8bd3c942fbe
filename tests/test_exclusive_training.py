"""A training task never shares what it trains on with another training task of the same grader.

`grader batch --jobs 2` lends its one CPU training slot to one submission at a time, on the cores it
reserved for training, while the other submissions' checks run on the other cores; with the defence
turned off the same batch trains two submissions at once on the same cores (so the check has teeth).
The scheduling is also shown on stand-in gradings, the slot messages are checked, and a confined
worker cannot move itself off the cores it was started on."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Optional

import pytest

from grader.batch.local import CPU_SLOT, LocalExecutor
from grader.batch.run import BatchOptions, grade_batch, make_default_executor
from grader.engine.training_place import ALONE, TrainingPlace, describe_cores, usable_cores
from grader.sandbox import levels
from grader.sandbox.errors import StudentException
from grader.sandbox.remote import StudentProxy, WorkerSession
from grader.sandbox.worker_process import Limits, make_scratch_dir, remove_scratch_dir
from support import A1, a1, make_submission

CORES = usable_cores()
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="needs two CPU cores to set one apart")
TRAINING_TASK = "fc_net.overfit"
# One check task that the training does not use (the five-layer network's loss is the softmax's),
# so that what it traces is what the checks ran on.
CHECK_TASK = "svm_loss.loss"
ENTRY_SLEEP_S = 1.0   # each training lasts at least this: two that start together overlap


# -- a real batch ---------------------------------------------------------------------------------

def traced_submission(folder: Path, trace: Path) -> Path:
    """The reference, whose checked loss and training entry append the cores they run on (and when)
    to `trace`; the entry then sleeps, so that every training lasts a while."""
    assignment = a1()
    reference = assignment.reference_directory
    assert reference is not None

    def tracer(kind: str) -> str:
        return (f"    import json as _json, os as _os, time as _time\n"
                f"    with open({str(trace)!r}, 'a') as _file:\n"
                f"        _file.write(_json.dumps({{'kind': {kind!r}, 'at': _time.time(), "
                f"'cores': sorted(_os.sched_getaffinity(0))}}) + '\\n')\n")

    layers = (reference / "layers.py").read_text()
    anchor = "    correct = x[rows, y][:, None]  # (N, 1)\n"  # in svm_loss
    assert layers.count(anchor) == 1
    models = (reference / "models.py").read_text()
    entry = "    weight_scale, learning_rate = None, None\n    # BEGIN YOUR CODE\n    weight_scale = 5e-2\n"
    assert models.count(entry) == 1
    return make_submission(folder, assignment, "reference", {
        "layers.py": layers.replace(anchor, anchor + tracer("checks")),
        "models.py": models.replace(entry, entry + tracer("training") + f"    _time.sleep({ENTRY_SLEEP_S})\n")})


def run_batch(tmp_path: Path, exclusive: bool) -> tuple[list[dict], Optional[LocalExecutor], Path]:
    """Three traced submissions of a1 graded by `grader batch --jobs 2` on synthetic data, one check
    task and one short training task each, at the process level (so that the worker may write its
    trace outside its scratch directory); returns the records, the executor and the trace folder."""
    subs, traces = tmp_path / "subs", tmp_path / "traces"
    traces.mkdir()
    for name in ("s0", "s1", "s2"):
        traced_submission(subs / name, traces / f"{name}.jsonl")
    made: list[LocalExecutor] = []

    def executor(options, assignment, jobs, verdict):
        built = make_default_executor(options, assignment, jobs, verdict)
        assert isinstance(built, LocalExecutor)
        if not exclusive:  # the same executor with the defence off
            built = LocalExecutor(options.jobs, built.gpus, timeout_s=built.timeout_s, sandbox_verdict=verdict,
                                  exclusive_training=False)
        made.append(built)
        return built

    options = BatchOptions(assignment=A1, submissions=subs, out=tmp_path / "out", jobs=2, seed=7, mode="official",
                           only=f"{CHECK_TASK},{TRAINING_TASK}", data="synthetic", device="cpu", sandbox="process",
                           similarity="off")
    outcome = grade_batch(options, make_executor=executor)
    return outcome.records, made[0] if made else None, traces


def training_entry(record: dict) -> dict:
    (test,) = [t for t in record["results"]["tests"] if t["extra_data"]["task"] == TRAINING_TASK]
    return test["extra_data"]


def traced(traces: Path, kind: str) -> dict[str, list[dict]]:
    return {path.stem: [line for line in map(json.loads, path.read_text().splitlines()) if line["kind"] == kind]
            for path in sorted(traces.glob("*.jsonl"))}


def overlapping(spans: dict[str, tuple[float, float, Optional[list[int]]]]) -> list[tuple[str, str]]:
    """The pairs of trainings that ran at the same time on a core they shared (None: every core)."""
    def cores(of: Optional[list[int]]) -> set[int]:
        return set(CORES if of is None else of)

    return [(a, b) for (a, (start_a, end_a, cores_a)), (b, (start_b, end_b, cores_b)) in combinations(spans.items(), 2)
            if start_a < end_b and start_b < end_a and cores(cores_a) & cores(cores_b)]


def training_spans(records: list[dict]) -> dict[str, tuple[float, float, Optional[list[int]]]]:
    spans = {}
    for record in records:
        extra = training_entry(record)
        spans[record["id"]] = (extra["started_at"], extra["ended_at"], extra.get("cores"))
    return spans


@needs_two_cores
def test_a_batch_trains_one_submission_at_a_time_on_the_cores_it_reserved(tmp_path):
    records, executor, traces = run_batch(tmp_path, exclusive=True)
    assert executor is not None
    reserved, checks = CORES[-1:], CORES[:-1]
    assert (executor.training_cores, executor.check_cores) == (reserved, checks)
    assert [(r["id"], r["status"], r["tasks"][TRAINING_TASK]["outcome"]) for r in records] == [
        (ident, "graded", "passed") for ident in ("s0", "s1", "s2")], [r["errors"] for r in records]

    spans = training_spans(records)
    assert not overlapping(spans), spans
    for record in records:
        extra = training_entry(record)
        assert extra["cores"] == list(reserved)
        assert extra["alongside"] == f"checks of other submissions on {describe_cores(checks)}"
    # What the workers themselves ran on: the training on the reserved cores, the checks off them.
    assert {ident: [line["cores"] for line in lines] for ident, lines in traced(traces, "training").items()} == {
        ident: [list(reserved)] for ident in ("s0", "s1", "s2")}
    assert all(line["cores"] == list(checks) for lines in traced(traces, "checks").values() for line in lines)
    # The coordinator lent its one CPU slot three times, never twice at once.
    lends = held_slots(executor.training_events)
    assert [slot for slot, _, _ in lends] == [CPU_SLOT] * 3
    assert all(earlier[2] <= later[1] for earlier, later in zip(lends, lends[1:])), lends


@needs_two_cores
def test_without_the_defence_the_same_batch_trains_two_submissions_at_once_on_the_same_cores(tmp_path):
    records, executor, traces = run_batch(tmp_path, exclusive=False)
    assert executor is not None and executor.training_events == []
    spans = training_spans(records)
    assert overlapping(spans), spans
    assert all(training_entry(r).get("cores") is None for r in records)
    assert all(line["cores"] == list(CORES) for lines in traced(traces, "training").values() for line in lines)


def held_slots(events: list[tuple[str, str, str, float]]) -> list[tuple[str, float, float]]:
    """(slot, taken, returned) of each lend, in the order they were taken."""
    taken: dict[tuple[str, str], float] = {}
    held = []
    for event, submission, slot, at in events:
        if event == "take":
            taken[(submission, slot)] = at
        else:
            held.append((slot, taken.pop((submission, slot)), at))
    assert not taken, f"lent and never returned: {taken}"
    return sorted(held, key=lambda lend: lend[1])


# -- the scheduling, on stand-in gradings ------------------------------------------------------------

class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, job) -> int:
        self.events.append(("started", job.submission_id))
        return 1

    def finished(self, job, attempt, record) -> None:
        self.events.append(("finished", job.submission_id))

    def lost(self, job, attempt, why) -> bool:
        self.events.append(("lost", job.submission_id))
        return False


def stand_ins(tmp_path: Path, count: int) -> list:
    from grader.batch.job import JobSettings, SubmissionJob

    settings = JobSettings(assignment=A1, project_root=str(tmp_path), mode="public", seed=1)
    (tmp_path / "subs").mkdir(exist_ok=True)
    return [SubmissionJob(f"s{i}", str(tmp_path / "subs" / f"s{i}"), "hash", settings) for i in range(count)]


def stand_in_spans(tmp_path: Path, **executor_options) -> tuple[list[dict], LocalExecutor]:
    import batch_local_fakes

    executor = LocalExecutor(target=batch_local_fakes.trains_on_the_cpu, **executor_options)
    sink = Sink()
    executor.run(stand_ins(tmp_path, 4), sink)
    assert sorted(e for e in sink.events if e[0] == "finished") == [("finished", f"s{i}") for i in range(4)]
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "trace").glob("*.json"))], executor


def overlap_in_time(spans: list[dict]) -> bool:
    return any(a["granted"] < b["released"] and b["granted"] < a["released"] for a, b in combinations(spans, 2))


@needs_two_cores
def test_the_cpu_slot_goes_to_one_process_at_a_time_in_the_order_they_asked_and_waiting_takes_no_job(tmp_path):
    spans, executor = stand_in_spans(tmp_path, jobs=2)
    reserved, checks = list(CORES[-1:]), list(CORES[:-1])
    assert not overlap_in_time(spans), spans
    assert all(s["cores"] == reserved and s["lent_cores"] == reserved and s["check_cores"] == checks for s in spans)
    assert all(s["alongside"] == f"checks of other submissions on {describe_cores(tuple(checks))}" for s in spans)
    assert [s["wanted"] for s in sorted(spans, key=lambda s: s["granted"])] == sorted(s["wanted"] for s in spans)
    # Four processes at once with --jobs 2: those waiting for the slot, or training on its cores, took none.
    first_release = min(s["released"] for s in spans)
    assert sorted(s["started"] for s in spans)[3] < first_release, spans
    assert [slot for slot, _, _ in held_slots(executor.training_events)] == [CPU_SLOT] * 4


def test_with_one_job_a_training_has_every_core_and_nothing_else_runs_beside_it(tmp_path):
    spans, executor = stand_in_spans(tmp_path, jobs=1)
    assert executor.training_cores is None and executor.check_cores is None
    assert all(s["lent_cores"] is None and s["cores"] == list(CORES) and s["alongside"] == ALONE for s in spans)
    for span in spans:  # no other grading process started while one trained
        assert not any(span["granted"] < other["started"] < span["released"] for other in spans), spans


@needs_two_cores
def test_without_the_defence_stand_in_trainings_overlap_on_every_core(tmp_path):
    spans, executor = stand_in_spans(tmp_path, jobs=2, exclusive_training=False)
    assert overlap_in_time(spans), spans
    assert all(s["lent_cores"] is None and s["cores"] == list(CORES) for s in spans)
    assert executor.training_events == [] and executor.lends == ()


def test_training_cores_are_what_the_worker_computes_with_and_leave_one_to_the_checks(monkeypatch):
    from grader.batch.local import reserved_cores

    monkeypatch.setenv("GRADER_WORKER_THREADS", "3")
    assert LocalExecutor(jobs=1).training_cores is None
    if len(CORES) >= 2:
        expected = CORES[-min(3, len(CORES) - 1):]
        assert LocalExecutor(jobs=2).training_cores == expected
    assert reserved_cores((0, 1, 2, 3), 2, 3) == (1, 2, 3)
    assert reserved_cores((0, 1, 2, 3), 2, 8) == (1, 2, 3)
    assert reserved_cores((0, 1, 2, 3), 4, 1) == (3,)
    assert reserved_cores((5,), 4, 1) is None
    assert reserved_cores((0, 1), 1, 1) is None


@needs_two_cores
@pytest.mark.parametrize("changes, reserves", [
    (dict(device="cpu"), True), (dict(only=TRAINING_TASK), True), (dict(training=False), False),
    (dict(only=CHECK_TASK), False), (dict(device="cuda"), False)])
def test_grader_batch_sets_cores_apart_only_where_a_task_trains_on_the_cpu(tmp_path, changes, reserves):
    options = BatchOptions(**{**dict(assignment=A1, submissions=tmp_path, out=tmp_path / "out", jobs=2), **changes})
    executor = make_default_executor(options, a1(), [], ("process", ()))
    assert isinstance(executor, LocalExecutor)
    assert executor.training_cores == (CORES[-1:] if reserves else None)
    assert executor.check_cores == (CORES[:-1] if reserves else None)


@pytest.mark.parametrize("fake, why", [
    ("asks_twice", "a training slot wanted while it holds one"),
    ("returns_what_it_was_not_lent", "a training slot returned that it was not lent"),
    ("asks_for_a_slot_of_no_device", "a training slot wanted for the device 'tpu'"),
    ("asks_for_a_gpu_naming_one", "a training slot wanted that names a place"),
])
def test_a_training_slot_message_out_of_turn_or_malformed_loses_the_attempt(tmp_path, fake, why):
    import batch_local_fakes

    whys: list[str] = []

    class Recording(Sink):
        def lost(self, job, attempt, reason) -> bool:
            whys.append(reason)
            return super().lost(job, attempt, reason)

    sink = Recording()
    LocalExecutor(jobs=1, target=getattr(batch_local_fakes, fake)).run(stand_ins(tmp_path, 1), sink)
    assert sink.events == [("started", "s0"), ("lost", "s0")]
    assert whys == [f"its grading process sent {why}"]


def test_a_gpu_slot_is_wanted_only_where_the_batch_lends_gpus(tmp_path):
    import batch_local_fakes

    sink = Sink()
    LocalExecutor(jobs=1, target=batch_local_fakes.trains_on_a_gpu).run(stand_ins(tmp_path, 1), sink)
    assert sink.events == [("started", "s0"), ("lost", "s0")]


# -- a confined worker stays on its cores --------------------------------------------------------------

PINNING = '''import os


def cores():
    return sorted(os.sched_getaffinity(0))


def move_to(cores):
    os.sched_setaffinity(0, cores)
    return sorted(os.sched_getaffinity(0))
'''
CONFINED = [pytest.param("bwrap", marks=pytest.mark.skipif(levels.bwrap_problem() is not None,
                                                           reason=f"bubblewrap unusable here: {levels.bwrap_problem()}")),
            pytest.param("restricted", marks=pytest.mark.skipif(
                levels.restricted_problem() is not None,
                reason=f"the restricted level cannot run here: {levels.restricted_problem()}"))]


def pinned_worker(level: str) -> tuple[WorkerSession, Path]:
    """A worker started at `level` from a thread pinned to the last core, as a lent training's is."""
    scratch = make_scratch_dir()
    package = scratch / "pinning_package"
    package.mkdir()
    (package / "pinning.py").write_text(PINNING)
    session = WorkerSession(package, scratch, Limits(call_timeout_s=20, sandbox=level))
    with TrainingPlace(cores=CORES[-1:]).pinned():
        session.start()
    return session, scratch


def move_to_every_core(level: str) -> list[int]:
    session, scratch = pinned_worker(level)
    try:
        pinning = StudentProxy(session).pinning
        assert pinning.cores() == list(CORES[-1:])   # it inherited the training's cores
        return pinning.move_to(list(CORES))
    finally:
        session.close()
        remove_scratch_dir(scratch)


@needs_two_cores
@pytest.mark.parametrize("level", CONFINED)
def test_a_confined_worker_cannot_move_itself_onto_other_cores(level):
    with pytest.raises(StudentException) as refused:
        move_to_every_core(level)
    assert refused.value.type_name == "PermissionError", refused.value


@needs_two_cores
@pytest.mark.parametrize("level", CONFINED)
def test_without_the_seccomp_filter_a_worker_moves_itself_onto_every_core(level, monkeypatch):
    from grader.sandbox import worker_process

    original = levels.restricted_jail

    def without_seccomp(*args, **kwargs):
        jail = original(*args, **kwargs)
        return levels.WorkerJail(jail.argv, jail.user, jail.group, {**jail.confine, "seccomp": False})

    monkeypatch.setattr(levels, "_seccomp_available", lambda: False)          # bwrap
    monkeypatch.setattr(worker_process, "restricted_jail", without_seccomp)    # restricted
    assert move_to_every_core(level) == list(CORES)


@needs_two_cores
def test_at_the_process_level_a_worker_moves_itself_at_will():
    assert move_to_every_core("process") == list(CORES)
