"""`grader batch --executor slurm` against a real Slurm: a cluster of one node, this machine, that the
tests start (slurm_cluster: munged, slurmctld and slurmd with a slurm.conf of their own, one GPU
declared as a GRES) and stop. The batch goes through sbatch as one job array, each element grading its
submission with srun on the node, exactly as on a course's cluster.

- the gradebook of six a1 submissions graded as an array is the local executor's;
- an element cancelled while it grades (scancel) is handed out again and its result arrives, its first
  attempt recorded as lost with the state Slurm gave it;
- --gpus-per-job 1 asks Slurm for gres/gpu:1, and the job is placed on the node's GPU and graded.

They skip, saying why, where Slurm is not installed (Debian: slurmctld slurmd slurm-client munge) or
its daemons cannot run here. Without a cluster, the executor's reading of Slurm's states is checked
against a stand-in squeue.
"""

from __future__ import annotations

import re
import shutil
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from batch_submissions import attempts, gradebook
from grader.batch.run import BatchOptions, grade_batch
from grader.delivery.submission_zip import write_submission_zip
from grader.oracle.mistakes import load_catalogue
from slurm_cluster import PARTITION, ClusterUnavailable, SlurmCluster, start_cluster
from support import A1, a1, make_submission

pytestmark = pytest.mark.slow  # a real Slurm cluster: ./grade.sh --selftest --all (CI) runs it

SEED = 20261122
TASKS = "affine.*,relu.*"
# Past this, a test cancels every job of the cluster, again and again, so that a batch waiting on
# Slurm forever ends (its submissions lost) and the test fails rather than hangs.
BATCH_DEADLINE_S = 300.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    pytest.importorskip("submitit")
    try:
        started = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(f"no one-node Slurm cluster: {exc}")
    try:
        with pytest.MonkeyPatch.context() as patch:  # submitit's sbatch, squeue, scancel: this cluster's
            for name in ("SLURM_CONF", "PATH"):
                patch.setenv(name, started.env[name])
            yield started
    finally:
        started.stop()


def batch_options(subs: Path, out: Path, **changes: Any) -> BatchOptions:
    options: dict[str, Any] = dict(assignment=A1, submissions=subs, out=out, jobs=2, seed=SEED, training=False,
                                   mode="official", only=TASKS, similarity="off", executor="slurm")
    options.update(changes)
    return BatchOptions(**options)


def submitted_scripts(out: Path) -> list[str]:
    return [p.read_text() for p in sorted((out / "slurm").glob("*_submission.sh"))]


def job_ids(out: Path) -> list[str]:
    """The Slurm jobs of a batch (an array element as <array>_<index>), from the logs submitit keeps
    of them (<job>_<task>_log.out)."""
    return sorted({p.name.removesuffix("_log.out").rsplit("_", 1)[0] for p in (out / "slurm").glob("*_log.out")})


def seconds(elapsed: str) -> int:
    """squeue's time used ([days-][hours:]minutes:seconds) in seconds."""
    days, _, clock = elapsed.rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total + int(days or 0) * 86400


@contextmanager
def deadline(cluster: SlurmCluster, seconds: float = BATCH_DEADLINE_S) -> Iterator[list[bool]]:
    stop, fired = threading.Event(), []

    def watch() -> None:
        if stop.wait(seconds):
            return
        fired.append(True)
        while not stop.wait(1.0):
            cluster.run("scancel", f"--partition={PARTITION}", check=False)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield fired
    finally:
        stop.set()
        watcher.join()


# -- the batch as a job array ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    """Six a1 submissions: the reference (a folder and a zip), the stubs, two catalogued mistakes of the
    graded tasks (one a zip), one that does not compile."""
    assignment = a1()
    subs = tmp_path_factory.mktemp("six") / "subs"
    reference = make_submission(subs / "ref_folder", assignment)
    write_submission_zip(assignment, reference, subs / "ref_zip.zip", None)
    make_submission(subs / "stubs", assignment, "stubs")
    mistakes = {m.id: m for m in load_catalogue(assignment)}
    for index, name in enumerate(("affine_forward_no_bias", "relu_backward_masks_on_dout")):
        mistake = mistakes[name]
        folder = make_submission(subs / f"bug_{name}", assignment, "reference", {mistake.file: mistake.source_text})
        if index:
            write_submission_zip(assignment, folder, subs / f"bug_{name}.zip", None)
            shutil.rmtree(folder)
    layers = (assignment.reference_directory / "layers.py").read_text()
    make_submission(subs / "syntax_error", assignment, "reference",
                    {"layers.py": layers.replace("    out = np.maximum(x, 0)\n", "    out = = x\n", 1)})
    return subs


def test_a_job_array_on_the_cluster_gives_the_local_executors_gradebook(cluster, six, tmp_path):
    local = grade_batch(batch_options(six, tmp_path / "local", executor="local"))
    with deadline(cluster) as fired:
        on_slurm = grade_batch(batch_options(six, tmp_path / "slurm"))
    assert not fired, "the batch did not finish on the cluster in time"

    assert len(on_slurm.records) == 6 and sorted(on_slurm.graded) == sorted(local.graded)
    assert gradebook(tmp_path / "slurm") == gradebook(tmp_path / "local")
    scores = {row["id"]: float(row["total"]) for row in gradebook(tmp_path / "slurm")}
    full = float(gradebook(tmp_path / "slurm")[0]["max"])
    assert scores["ref_folder"] == scores["ref_zip"] == full and scores["stubs"] == 0
    assert 0 < scores["bug_affine_forward_no_bias"] < full and 0 < scores["bug_relu_backward_masks_on_dout"] < full
    # One array of six, two at a time, each element graded at its first attempt.
    (script,) = submitted_scripts(tmp_path / "slurm")
    assert "#SBATCH --array=0-5%2" in script and "#SBATCH --partition" not in script
    assert all(tries == [(1, "done")] for tries in attempts(tmp_path / "slurm").values())
    (array,) = {job.split("_")[0] for job in job_ids(tmp_path / "slurm")}
    states = cluster.run("squeue", "--noheader", "--array", "--states=all", "--format=%i %T", f"--jobs={array}")
    assert sorted(states.split()) == sorted([f"{array}_{i}" for i in range(6)] + ["COMPLETED"] * 6), states


# -- an element lost while it grades --------------------------------------------------------------

def slow_layers() -> str:
    """The reference's layers with a ReLU that takes half a second a call: about ten seconds of grading."""
    text = (a1().reference_directory / "layers.py").read_text()
    old = "    out = np.maximum(x, 0)\n"
    assert old in text
    return text.replace(old, "    import time\n    time.sleep(0.5)\n" + old, 1)


def element_of(cluster: SlurmCluster, out: Path, submission_id: str, timeout_s: float = 120) -> str:
    """The running array element grading `submission_id`, once it has run for a few seconds."""
    from submitit.core.utils import pickle_load

    deadline_at = time.monotonic() + timeout_s
    while time.monotonic() < deadline_at:
        for pickled in (out / "slurm").glob("*_submitted.pkl"):
            element = pickled.name.removesuffix("_submitted.pkl")
            try:
                if pickle_load(pickled).args[0].submission_id != submission_id:
                    continue
            except Exception:  # noqa: BLE001 - being written
                continue
            running = cluster.run("squeue", "--noheader", "--array", "--states=RUNNING", "--format=%i|%M",
                                  f"--jobs={element.split('_')[0]}", check=False)
            for line in running.splitlines():
                job, _, elapsed = line.partition("|")
                if job == element and seconds(elapsed) >= 3:  # its grading under way
                    return element
        time.sleep(0.25)
    raise AssertionError(f"no element ran {submission_id} within {timeout_s:.0f} s")


def test_an_element_cancelled_while_it_grades_is_handed_out_again_and_its_result_arrives(cluster, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    make_submission(subs / "quick", a1())
    make_submission(subs / "slow", a1(), "reference", {"layers.py": slow_layers()})
    cancelled: list[str] = []
    problems: list[BaseException] = []

    def cancel_the_slow_one() -> None:
        try:
            element = element_of(cluster, out, "slow")
            cluster.run("scancel", element)
            cancelled.append(element)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            problems.append(exc)

    canceller = threading.Thread(target=cancel_the_slow_one, daemon=True)
    canceller.start()
    with deadline(cluster) as fired:
        outcome = grade_batch(batch_options(subs, out))
    canceller.join(timeout=5)
    assert not problems, problems
    assert not fired, "the batch did not finish on the cluster in time"

    (element,) = cancelled
    records = {r["id"]: r for r in outcome.records}
    assert records["slow"]["status"] == records["quick"]["status"] == "graded"
    assert records["slow"]["score"] == records["quick"]["score"] == records["quick"]["max_score"]
    tries = attempts(out)
    assert tries["quick"] == [(1, "done")]
    (first, second) = tries["slow"]
    assert first[0] == 1 and first[1].startswith(f"Slurm job {element} ended CANCELLED without a result"), first
    assert second == (2, "done")
    # The array's two elements, and the second attempt as a job of its own.
    array = element.split("_")[0]
    assert sorted(job_ids(out)) == sorted([f"{array}_0", f"{array}_1", *[j for j in job_ids(out) if "_" not in j]])
    assert len(job_ids(out)) == 3


# -- a GPU --------------------------------------------------------------------------------------

def test_gpus_per_job_asks_slurm_for_a_gpu_and_the_job_runs_on_the_nodes(cluster, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    make_submission(subs / "ref", a1())
    with deadline(cluster) as fired:
        outcome = grade_batch(batch_options(subs, out, gpus_per_job=1, only="affine.forward"))
    assert not fired, "the batch did not finish on the cluster in time"

    (record,) = outcome.records
    assert record["status"] == "graded" and record["score"] == record["max_score"] > 0
    (script,) = submitted_scripts(out)
    assert "#SBATCH --gpus-per-node=1" in script
    (job,) = job_ids(out)
    shown = cluster.run("scontrol", "--details", "show", "job", job)
    assert re.search(r"TresPerNode=gres[:/]gpu:1\b", shown), shown   # asked for
    assert re.search(r"JOB_GRES=gpu(:\w+)?:1\b", shown), shown      # and given the node's one GPU
    assert "JobState=COMPLETED" in shown


# -- Slurm's states, read without a cluster --------------------------------------------------------

class FakeHandle:
    """What the executor reads of a submitit job: its id, whether its result is there, its log."""

    def __init__(self, folder: Path, job_id: str):
        self.job_id = job_id
        self.paths = type("Paths", (), {"result_pickle": folder / f"{job_id}_result.pkl"})()

    def stderr(self) -> str:
        return "srun: error: vm: task 0: Killed\n"

    def done(self) -> bool:
        return False

    def result(self) -> Any:
        raise AssertionError("no result to read")


def stand_in(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_an_element_slurm_ended_without_a_result_is_lost_by_its_state(tmp_path, monkeypatch):
    from grader.batch.executor import OutcomeKind
    from grader.batch.slurm import SlurmWatch, _settled, squeue_states

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir, "squeue", "printf '7_0|COMPLETED\\n7_1|CANCELLED\\n7_2|RUNNING\\n7_3|NODE_FAIL\\n"
                                "7_4|PREEMPTED\\n8|PENDING\\n'\n")
    stand_in(bin_dir, "scancel", f'echo "$@" >> {tmp_path / "cancelled"}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    assert squeue_states({"7_1", "8"}) == {"7_0": "COMPLETED", "7_1": "CANCELLED", "7_2": "RUNNING",
                                           "7_3": "NODE_FAIL", "7_4": "PREEMPTED", "8": "PENDING"}
    watch = SlurmWatch()
    watch.update(["7_1", "7_2", "7_3", "7_4", "8", "9"])
    for job_id in ("7_1", "7_3", "7_4"):
        outcome = _settled(FakeHandle(tmp_path, job_id), watch)
        assert outcome.kind is OutcomeKind.LOST
        assert outcome.message.startswith(f"Slurm job {job_id} ended {watch.state(job_id)} without a result")
        assert "task 0: Killed" in outcome.message
    for job_id in ("7_2", "8", "9"):  # running, pending, and not listed once: still waited for
        assert _settled(FakeHandle(tmp_path, job_id), watch) is None
    assert (tmp_path / "cancelled").read_text().split() == ["7_1", "7_3", "7_4"]  # never to come back
    watch.update(["9"])
    assert watch.state("9") == ""  # not listed twice: ended long ago, its result (or none) is read

    stand_in(bin_dir, "squeue", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1\n")
    watch.update(["7_1"])
    assert watch.state("7_1") is None  # squeue did not answer: nothing is concluded from it
