"""`grader batch`: a folder of submissions graded in parallel into a gradebook that matches grading
each alone, resumed after SIGKILL without losing or regrading anything, and the local executor's
scheduling (lending training slots, retries of lost gradings, aborts) on stand-in gradings."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from filelock import FileLock

from batch_submissions import SUBMISSION_COUNT, build_submissions
from grader.assignment import ConfigError
from grader.batch.discover import discover
from grader.batch.executor import BatchAborted
from grader.batch.local import LocalExecutor
from grader.batch.run import BatchBusy, BatchOptions, grade_batch
from grader.batch.store import BatchStore
from grader.engine.submission import UnusableSubmission
from hostile_text import (assert_inert_text, assert_printable, assert_valid_json, hostile_layers,
                          unescaped_pipes)
from support import A1, PROJECT_ROOT, a1, grade_checks, make_submission

SEED = 20261122
# The tasks the 20-submission batches grade: those of the catalogued mistakes and of the hostile
# submissions (the optimizers), not the models', to keep the suite quick.
BATCH_TASKS = "affine.*,relu.*,sigmoid.*,softmax_loss.*,svm_loss.*,dropout.*,optim.*"


def batch_options(subs: Path, out: Path, **changes) -> BatchOptions:
    options = dict(assignment=A1, submissions=subs, out=out, jobs=2, seed=SEED, training=False, mode="official",
                   only=BATCH_TASKS)
    options.update(changes)
    return BatchOptions(**options)


def read_gradebook(path: Path, subs: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:  # the errors of an unusable archive name it by its path
        row["errors"] = row["errors"].replace(str(subs), "<subs>")
    return rows


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory, worker_id) -> Path:
    """One uninterrupted batch of the 20 submissions, shared by the processes running the tests."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "batch_uninterrupted"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            kinds = build_submissions(root / "subs", a1())
            grade_batch(batch_options(root / "subs", root / "out"))
            (root / "kinds.json").write_text(json.dumps(kinds))
            (root / "done").write_text("")
    return root


@pytest.mark.slow
def test_the_gradebook_matches_grading_each_submission_alone(uninterrupted):
    subs, out = uninterrupted / "subs", uninterrupted / "out"
    kinds = json.loads((uninterrupted / "kinds.json").read_text())
    rows = {row["id"]: row for row in read_gradebook(out / "gradebook.csv", subs)}
    assert set(rows) == set(kinds) and len(rows) == SUBMISSION_COUNT
    found, passed_over = discover(A1, subs)
    assert passed_over == ["notes.txt: neither a folder, a .zip nor a notebook (.ipynb), not graded"]
    tasks = [t.id for t in a1().spec.select(BATCH_TASKS) if t.training is None]
    for submission in found:
        row = rows[submission.id]
        assert row["seed"] == str(SEED)
        if submission.problem:
            assert row["status"] == "unusable" and row["total"] == "0", row
            continue
        try:
            alone = grade_checks(a1(), submission.path, seed=SEED, only=BATCH_TASKS)
        except UnusableSubmission as exc:
            assert row["status"] == "unusable" and str(exc).replace(str(subs), "<subs>") in row["errors"], row
            continue
        assert row["status"] == "graded", row
        assert float(row["total"]) == alone.score, submission.id
        assert {t: float(row[t]) for t in tasks} == {t.task_id: t.points for t in alone.tasks}, submission.id
        written = json.loads((out / "submissions" / submission.id / "results.json").read_text())
        assert written["score"] == alone.score and written["extra_data"]["seed"] == SEED
        assert (out / "submissions" / submission.id / "feedback.txt").read_text().strip()
    full = float(rows["ref_folder"]["max"])
    assert float(rows["ref_folder"]["total"]) == float(rows["ref_zip"]["total"]) == full
    assert rows["stubs"]["total"] == "0"
    for ident, kind in kinds.items():
        if kind.startswith("mistake"):
            assert 0 < float(rows[ident]["total"]) < full, ident
    assert float(rows["exits_at_import"]["total"]) < full and "optim.sgd" in rows["exits_at_import"]["errors"]
    assert "SyntaxError" in rows["syntax_error"]["errors"]
    assert "made for a2_cnn_torch" in rows["other_assignment"]["errors"]
    summary = (out / "summary.md").read_text()
    assert "| affine.forward |" in summary and "## Score distribution" in summary
    # An entry that is no submission has no row: the summary says so, not only the batch's stderr.
    assert "## Entries of the folder not graded" in summary and "| notes.txt | neither a folder" in summary
    store = BatchStore(out)
    try:
        assert sorted(a[0] for a in store.attempts()) == sorted(rows)  # each graded once, in one attempt
    finally:
        store.close()


def _done_in(database: Path) -> set[str]:
    if not database.exists():
        return set()
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:  # being created
        return set()
    try:
        return {r[0] for r in connection.execute("SELECT id FROM submissions WHERE state = 'done'")}
    except sqlite3.OperationalError:  # its tables not created yet
        return set()
    finally:
        connection.close()


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes():
                found.append(entry.name)
        except OSError:
            continue
    return found


def kill_batch_midway(subs: Path, out: Path) -> tuple[set[str], int]:
    """Runs `grader batch` on `subs` into `out` and kills it with SIGKILL at a random point after a
    random number of submissions finished; returns those committed by then, and that number."""
    chooser = random.Random(os.environ.get("GRADER_KILL_SEED") or time.time_ns())
    stop_after = chooser.randint(1, SUBMISSION_COUNT - 3)
    # The batch's temporary files go to a folder of their own, which names its processes too; a short
    # path, since the fork server's socket lives there (AF_UNIX paths have ~100 bytes).
    scratch = Path(tempfile.mkdtemp(prefix="gbk-", dir="/tmp"))
    marker = scratch.name
    env = {**os.environ, "TMPDIR": str(scratch), "GRADER_TEST_MARKER": marker, "GRADER_ROOT": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "grader", "batch", A1, str(subs), "--out", str(out), "--jobs", "2",
               "--seed", str(SEED), "--skip-training", "--mode", "official", "--only", BATCH_TASKS, "--quiet"]
    batch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_done_in(out / "batch.sqlite")) < stop_after and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(chooser.uniform(0, 1.0))  # anywhere: in a grading, in a commit, between two
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    assert batch.returncode == -signal.SIGKILL, f"the batch ended before it was killed: {batch.stderr.read()}"
    deadline = time.monotonic() + 20
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "processes of the killed batch still run"
    done_before = _done_in(out / "batch.sqlite")
    assert len(done_before) < SUBMISSION_COUNT, "killed after it finished"
    shutil.rmtree(scratch, ignore_errors=True)
    return done_before, stop_after


def test_a_batch_stopped_by_sigterm_closes_its_processes_says_so_and_resumes(tmp_path):
    """SIGTERM (a cluster's time limit, a container stopped) is taken as Ctrl-C: the grading processes
    are stopped rather than left to finish into a closed pipe, each printing a traceback."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    reference = a1().reference_directory
    for number in range(6):
        shutil.copytree(reference, subs / f"student{number}", ignore=shutil.ignore_patterns("*.yaml", "hidden_*"))
    scratch = Path(tempfile.mkdtemp(prefix="gbt-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(scratch), "GRADER_ROOT": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "grader", "batch", A1, str(subs), "--out", str(out), "--jobs", "2",
               "--skip-training", "--only", "affine.*", "--quiet"]
    batch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _done_in(out / "batch.sqlite") and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    batch.send_signal(signal.SIGTERM)
    _, errors = batch.communicate(timeout=60)
    assert batch.returncode == 143, f"ended with {batch.returncode} before or despite SIGTERM: {errors}"
    assert "stopped by SIGTERM" in errors and "the same command grades the rest" in errors, errors
    deadline = time.monotonic() + 20
    while (left := _processes_with(scratch.name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "processes of the stopped batch still run"
    assert "Traceback" not in errors, errors
    done_before = _done_in(out / "batch.sqlite")
    assert 0 < len(done_before) < 6
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert len(_done_in(out / "batch.sqlite")) == 6
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.slow
def test_a_batch_killed_at_a_random_point_resumes_to_the_same_gradebook(uninterrupted, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    build_submissions(subs, a1())
    done_before, stop_after = kill_batch_midway(subs, out)

    outcome = grade_batch(batch_options(subs, out))
    assert set(outcome.skipped) == done_before
    store = BatchStore(out)
    try:
        after_restart = [a for a in store.attempts(outcome.run)]
    finally:
        store.close()
    graded_after = sorted(a[0] for a in after_restart)
    assert graded_after == sorted(set(outcome.graded)), "a submission was graded more than once after the restart"
    assert set(graded_after) | done_before == {r["id"] for r in outcome.records}
    assert not set(graded_after) & done_before
    expected = read_gradebook(uninterrupted / "out" / "gradebook.csv", uninterrupted / "subs")
    assert read_gradebook(out / "gradebook.csv", subs) == expected, f"killed after {stop_after} finished"


# -- a submission whose text tries to break the batch's outputs -----------------------------------

@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory) -> tuple[Path, Path]:
    """The 20 submissions, one of them (in place of patches_numpy) printing and raising text with a lone
    surrogate, terminal escapes, control characters, markup and workflow commands; graded uninterrupted."""
    root = tmp_path_factory.mktemp("hostile_batch")
    subs = root / "subs"
    build_submissions(subs, a1())
    shutil.rmtree(subs / "patches_numpy")
    make_submission(subs / "hostile_text", a1(), "reference", {"layers.py": hostile_layers(a1())})
    grade_batch(batch_options(subs, root / "out"))
    return subs, root / "out"


@pytest.mark.slow
def test_a_hostile_submission_leaves_the_gradebook_summary_and_every_result_complete_and_valid(hostile_batch):
    subs, out = hostile_batch
    found, _ = discover(A1, subs)
    gradebook = (out / "gradebook.csv").read_bytes().decode("utf-8")
    rows = {row["id"]: row for row in csv.DictReader(gradebook.splitlines())}
    assert sorted(rows) == sorted(s.id for s in found) and len(rows) == SUBMISSION_COUNT
    assert len(gradebook.splitlines()) == SUBMISSION_COUNT + 1  # one line a submission: no cell spans two
    assert_printable(gradebook.replace("\n", ""), "gradebook")
    hostile = rows["hostile_text"]
    assert hostile["status"] == "graded" and hostile["relu.forward"] == "0" and hostile["affine.forward"] == "2"
    assert "your code raised Evil" in hostile["errors"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert_printable(summary, "summary.md")
    assert "<img" not in summary
    for line in summary.splitlines():
        if line.startswith("| "):  # every table of the summary has two or three columns
            assert unescaped_pipes(line) in (3, 4), line
    for submission in found:
        folder = out / "submissions" / submission.id
        results = assert_valid_json(folder / "results.json")
        assert results["tests"] and results["score"] == float(rows[submission.id]["total"])
        assert_inert_text((folder / "feedback.txt").read_text(encoding="utf-8"), f"{submission.id}/feedback.txt")
    assert "\\::error::forged" in (out / "submissions" / "hostile_text" / "feedback.txt").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_killed_batch_with_a_hostile_submission_resumes_to_a_byte_identical_gradebook(hostile_batch, tmp_path):
    subs, uninterrupted = hostile_batch
    out = tmp_path / "out"
    done_before, stop_after = kill_batch_midway(subs, out)
    outcome = grade_batch(batch_options(subs, out))
    assert set(outcome.skipped) == done_before and not outcome.unwritten
    assert (out / "gradebook.csv").read_bytes() == (uninterrupted / "gradebook.csv").read_bytes(), \
        f"killed after {stop_after} finished"
    for record in outcome.records:
        assert_valid_json(out / "submissions" / record["id"] / "results.json")


def test_a_submission_whose_files_cannot_be_written_stops_neither_the_others_nor_a_resume(small_batch):
    subs, out = small_batch
    (out / "submissions").mkdir(parents=True)
    (out / "submissions" / "alice").write_text("a file where alice's folder goes")
    first = grade_batch(small(subs, out))
    assert sorted(first.graded) == ["alice", "bob"] and [line.split(":")[0] for line in first.unwritten] == ["alice"]
    assert (out / "submissions" / "bob" / "results.json").is_file()
    assert [row["id"] for row in csv.DictReader((out / "gradebook.csv").read_text().splitlines())] == ["alice", "bob"]
    (out / "submissions" / "alice").unlink()
    resumed = grade_batch(small(subs, out))
    assert resumed.graded == [] and resumed.unwritten == []
    assert assert_valid_json(out / "submissions" / "alice" / "results.json")["score"] == 2.0


# -- resuming, regrading and settings on a small batch ------------------------------------------

@pytest.fixture
def small_batch(tmp_path) -> tuple[Path, Path]:
    subs = tmp_path / "subs"
    make_submission(subs / "alice", a1(), "reference")
    make_submission(subs / "bob", a1(), "stubs")
    return subs, tmp_path / "out"


def small(subs: Path, out: Path, **changes) -> BatchOptions:
    return batch_options(subs, out, **{"only": "affine.forward", "jobs": 1, **changes})


def test_unchanged_submissions_are_not_graded_again_changed_ones_are(small_batch):
    subs, out = small_batch
    first = grade_batch(small(subs, out))
    assert sorted(first.graded) == ["alice", "bob"]
    again = grade_batch(small(subs, out))
    assert again.graded == [] and sorted(again.skipped) == ["alice", "bob"]
    (subs / "bob" / "layers.py").write_text((a1().reference_directory / "layers.py").read_text())
    changed = grade_batch(small(subs, out))
    assert changed.graded == ["bob"]
    assert {r["id"]: r["score"] for r in changed.records} == {"alice": 2.0, "bob": 2.0}
    everything = grade_batch(small(subs, out, regrade=True))
    assert sorted(everything.graded) == ["alice", "bob"]


def test_a_submission_gone_from_the_folder_since_an_earlier_run_is_not_in_the_lms_grades(small_batch):
    # A platform names a resubmission anew (`bob-1.zip` replaced by `bob-2.zip`): the download holds
    # the new one only, and the grades exported are those of the submissions the latest run found.
    from grader.batch.lms import export_grades

    subs, out = small_batch
    grade_batch(small(subs, out))
    (subs / "bob").rename(subs / "bob-2")
    outcome = grade_batch(small(subs, out))
    # Said at once, and kept in summary.md: another folder graded into the same --out would look alike.
    assert any(note.startswith(f"1 submission(s) graded into this --out by an earlier run are not in {subs} now "
                               "(bob)") for note in outcome.notes), outcome.notes
    assert "## Graded earlier, not in the folder now" in (out / "summary.md").read_text()
    export = export_grades(out, "csv")
    assert [row.split(",")[0] for row in export.path.read_text().splitlines()[1:]] == ["alice", "bob-2"]
    assert export.warnings == ["bob: graded by an earlier run but no longer in the submissions folder, left out"]


def test_a_batch_keeps_its_settings_and_its_folder(small_batch):
    subs, out = small_batch
    grade_batch(small(subs, out, seed=1))
    with pytest.raises(ConfigError, match="seed 1, not seed 2"):
        grade_batch(small(subs, out, seed=2))
    assert grade_batch(small(subs, out, seed=None)).records[0]["seed"] == 1  # resumed with its own seed
    assert grade_batch(small(subs, out, seed=2, regrade=True)).records[0]["seed"] == 2
    # Options are named as they were given, with the ways on.
    with pytest.raises(ConfigError, match=r"graded with --only 'affine.forward', not every task \(no --only\): "
                                          r"resume it with the options it was started with, grade everything again "
                                          r"with the new ones \(--regrade\)"):
        grade_batch(small(subs, out, seed=2, only=None))
    with FileLock(str(out / ".batch.lock")):
        with pytest.raises(BatchBusy, match="another batch"):
            grade_batch(small(subs, out))


def test_the_command_line_grades_a_folder_and_refuses_what_is_not_one(small_batch, capsys):
    from grader.cli import main

    subs, out = small_batch
    assert main(["batch", A1, str(subs), "--out", str(out), "--only", "affine.forward", "--jobs", "1",
                 "--quiet", "--seed", "3"]) == 0
    assert "2 graded now" in capsys.readouterr().out
    assert (out / "gradebook.csv").read_text().splitlines()[0] == "id,total,max,affine.forward,status,seed,errors"
    assert main(["batch", A1, str(subs / "alice" / "layers.py"), "--out", str(out)]) == 2
    assert "is not a folder of submissions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["batch", A1, str(subs), "--out", str(out), "--jobs", "0"])
    assert usage.value.code == 2 and "--jobs: must be at least 1" in capsys.readouterr().err


def test_a_folder_holding_no_submission_is_a_usage_error_saying_what_it_holds(tmp_path, capsys):
    from grader.cli import main

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("layers.py", "optim.py"):   # one student's files, loose, named by no platform
        (subs / name).write_text("x = 1\n")
    out = tmp_path / "out"
    assert main(["batch", A1, str(subs), "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "holds no submission" in error and "put each student's files in a folder of their own" in error
    assert "passed over layers.py" in error
    assert not out.exists()


# -- finding submissions ------------------------------------------------------------------------

def test_submissions_are_named_by_their_export(tmp_path):
    subs = tmp_path / "subs"
    make_submission(subs / "submission_101", a1())
    make_submission(subs / "submission_102", a1())
    (subs / "submission_metadata.yml").write_text(
        "submission_101:\n  :submitters:\n  - :name: Ada\n    :sid: '2024001'\n    :email: ada@uni.edu\n"
        "submission_102:\n  :submitters:\n  - :name: Bo\n    :email: bo@uni.edu\n  - :name: Cy\n    :sid: '2024003'\n"
        "submission_103:\n  :submitters:\n  - :name: Di\n    :sid: 0034567\n")   # unquoted: text, not octal
    make_submission(subs / "submission_103", a1())
    make_submission(subs / "hw-dana" / "assignments" / A1, a1())  # a clone of the course repository
    with zipfile.ZipFile(subs / "upload.zip", "w") as archive:
        archive.writestr("MANIFEST.json", json.dumps({"assignment": A1, "student": "eve/../x"}))
        archive.writestr("layers.py", "x = 1\n")
    (subs / "link").symlink_to(subs / "hw-dana")
    found, passed_over = discover(A1, subs)
    names = {s.id: s for s in found}
    assert sorted(names) == ["0034567", "2024001", "bo@uni.edu+2024003", "hw-dana", "upload"]  # not its MANIFEST's
    assert names["bo@uni.edu+2024003"].members == ("bo@uni.edu", "2024003") and names["2024001"].members == ()
    assert names["hw-dana"].path == subs / "hw-dana" / "assignments" / A1
    assert passed_over == ["link: a symbolic link, not graded"]
    make_submission(subs / "upload", a1())
    assert sorted(s.id for s in discover(A1, subs)[0]) == ["0034567", "2024001", "bo@uni.edu+2024003", "hw-dana",
                                                           "upload", "upload-2"]


def test_no_two_submissions_share_an_id_whatever_their_names(tmp_path):
    # A numbered id must not be the name of another submission, and ids that differ only in letter
    # case would share a folder where the output lives on a file system that ignores case.
    subs = tmp_path / "subs"
    for name in ("bob", "bob!", "bob-2", "Bob", "bob-3.zip"):
        if name.endswith(".zip"):
            subs.mkdir(exist_ok=True)
            with zipfile.ZipFile(subs / name, "w") as archive:
                archive.writestr("layers.py", "x = 1\n")
        else:
            make_submission(subs / name, a1())
    found = {s.path.name: s.id for s in discover(A1, subs)[0]}
    assert len({ident.casefold() for ident in found.values()}) == 5
    assert found["bob-2"] == "bob-2" and found["bob-3.zip"] == "bob-3"  # their own names
    assert found["Bob"] == "Bob" and found["bob"] == "bob-4" and found["bob!"] == "bob-5"


def test_a_name_that_comes_out_as_anothers_id_cannot_take_it(tmp_path):
    # `alice!.zip` sorts before `alice.zip`: were the first to come to keep the id, it would take
    # alice's row of the gradebook (and her login in an LMS export).
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice!.zip", "alice.zip"):
        with zipfile.ZipFile(subs / name, "w") as archive:
            archive.writestr("layers.py", "x = 1\n")
    found = {s.path.name: s for s in discover(A1, subs)[0]}
    assert found["alice.zip"].id == "alice" and found["alice!.zip"].id == "alice-2"
    assert found["alice!.zip"].notes == ("alice!.zip is graded as alice-2: its name comes out as alice, the id of "
                                         "alice.zip",)


def test_ids_keep_the_letters_of_every_script_and_notebooks_are_submissions(tmp_path):
    # Names that lost their letters became "submission", "submission-2", ... in the order of the
    # folder: a later arrival shifted every id after it, and a roster then gave one student another's grade.
    subs = tmp_path / "subs"
    for name in ("张伟", "李娜", "José", "Jose\u0301 Luis"):
        make_submission(subs / name, a1())
    (subs / "dana.ipynb").write_text("{}")
    found = {s.path.name: s.id for s in discover(A1, subs)[0]}
    assert found == {"张伟": "张伟", "李娜": "李娜", "José": "José", "Jose\u0301 Luis": "José_Luis", "dana.ipynb": "dana"}


def test_a_zip_beside_the_folder_of_its_name_is_graded_twice_with_a_note(tmp_path):
    subs = tmp_path / "subs"
    make_submission(subs / "carl", a1())
    with zipfile.ZipFile(subs / "carl.zip", "w") as archive:
        archive.writestr("layers.py", "x = 1\n")
    make_submission(subs / "dora", a1())
    make_submission(subs / "Dora", a1())  # another student whose name only comes out alike: numbered
    found = {s.id: s for s in discover(A1, subs)[0]}
    assert sorted(found) == ["Dora", "carl", "carl-2", "dora-2"]
    assert found["dora-2"].notes == ("dora is graded as dora-2: its name comes out as dora, the id of Dora",)
    assert found["Dora"].notes == ()
    assert "carl.zip (graded as carl-2)" in found["carl"].notes[0]
    assert "carl (graded as carl)" in found["carl-2"].notes[0]


# -- the local executor's scheduling, on stand-in gradings ----------------------------------------

class RecordingSink:
    def __init__(self, retry: bool = True):
        self.events: list[tuple[str, str, int]] = []
        self.attempts: dict[str, int] = {}
        self.retry = retry

    def started(self, job) -> int:
        self.attempts[job.submission_id] = self.attempts.get(job.submission_id, 0) + 1
        self.events.append(("started", job.submission_id, self.attempts[job.submission_id]))
        return self.attempts[job.submission_id]

    def finished(self, job, attempt, record) -> None:
        self.events.append(("finished", job.submission_id, attempt))

    def lost(self, job, attempt, why) -> bool:
        self.events.append(("lost", job.submission_id, attempt))
        return self.retry and attempt < 3


def stand_in_jobs(tmp_path: Path, count: int) -> list:
    from grader.batch.job import JobSettings, SubmissionJob

    settings = JobSettings(assignment=A1, project_root=str(PROJECT_ROOT), mode="public", seed=1)
    (tmp_path / "subs").mkdir(exist_ok=True)
    return [SubmissionJob(f"s{i}", str(tmp_path / "subs" / f"s{i}"), "hash", settings) for i in range(count)]


def traces(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "trace").glob("*.json"))]


@pytest.mark.parametrize("gpus", [1, 2])
def test_gpu_training_holds_one_gpu_each_and_no_gpu_idles_while_training_waits(tmp_path, gpus):
    import batch_local_fakes

    executor = LocalExecutor(jobs=2, gpus=[str(i) for i in range(gpus)], target=batch_local_fakes.trains_on_a_gpu)
    sink = RecordingSink()
    executor.run(stand_in_jobs(tmp_path, 5), sink)
    assert sorted(e[1] for e in sink.events if e[0] == "finished") == [f"s{i}" for i in range(5)]
    spans = traces(tmp_path)
    assert {s["gpu"] for s in spans} == {str(i) for i in range(gpus)}
    for gpu in {s["gpu"] for s in spans}:  # one holder at a time per GPU
        held = sorted((s["granted"], s["released"]) for s in spans if s["gpu"] == gpu)
        assert all(earlier[1] <= later[0] for earlier, later in zip(held, held[1:])), held
    for span in spans:  # waited only while every GPU was held
        if span["granted"] - span["wanted"] > 0.3:
            releases = [s["released"] for s in spans if s["released"] <= span["granted"]]
            assert releases and span["granted"] - max(releases) < 0.3, span
            holders_while_waiting = [s for s in spans if s is not span and s["granted"] <= span["wanted"] + 0.1
                                     and s["released"] >= span["wanted"] + 0.1]
            assert len(holders_while_waiting) >= gpus, span


def test_a_training_slot_message_is_one_of_three_steps_and_only_lent_names_a_place():
    from grader.batch.local import FROM_GRADING, SlotMessage, SlotStep, accepted_slot_message
    from grader.engine.training_place import TrainingPlace

    gpu = TrainingPlace(env={"CUDA_VISIBLE_DEVICES": "1"})
    assert accepted_slot_message(SlotMessage.lent("cuda", gpu), (SlotStep.LENT,), "cuda").place() == gpu
    cpu = TrainingPlace(cores=(1,), alongside="checks of other submissions on core 0")
    assert accepted_slot_message(SlotMessage.lent("cpu", cpu), (SlotStep.LENT,), "cpu").place() == cpu
    assert accepted_slot_message(SlotMessage.wanted("cpu"), FROM_GRADING).step is SlotStep.WANTED
    for malformed in (lambda: SlotMessage(SlotStep.LENT, "cuda"), lambda: SlotMessage.lent("cuda", TrainingPlace()),
                      lambda: SlotMessage(SlotStep.RETURNED, "cpu"), lambda: SlotMessage("wanted", "cpu"),
                      lambda: SlotMessage.wanted("gpu"), lambda: SlotMessage(SlotStep.WANTED, "cpu", cores=(0,)),
                      lambda: SlotMessage.lent("cpu", TrainingPlace(cores=())),
                      lambda: SlotMessage.lent("cpu", TrainingPlace(cores=([0],)))):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            malformed()
    unpickled = object.__new__(SlotMessage)   # as pickle rebuilds one: no __post_init__
    for name, value in (("step", SlotStep.LENT), ("device", "cpu"), ("env", {}), ("cores", (0, -1)),
                        ("alongside", "nothing")):
        object.__setattr__(unpickled, name, value)
    for message, steps, device, why in (
            (unpickled, (SlotStep.LENT,), "cpu", r"lent on the cores \(0, -1\)"),
            (("gpu", "0"), (SlotStep.LENT,), "cuda", "a tuple instead of a training-slot message"),
            (SlotMessage.lent("cuda", gpu), FROM_GRADING, None, "lent where wanted or returned was due"),
            (SlotMessage.lent("cpu", cpu), (SlotStep.LENT,), "cuda", "slot of cpu lent where one of cuda was wanted")):
        with pytest.raises(ValueError, match=why):
            accepted_slot_message(message, steps, device)


@pytest.mark.parametrize("fake", ["lends_a_gpu_itself", "asks_for_a_gpu_naming_one", "asks_for_a_gpu_in_a_bare_tuple",
                                  "asks_for_a_slot_of_no_device"])
def test_a_malformed_training_slot_message_from_a_grading_process_loses_its_attempt(tmp_path, fake):
    import batch_local_fakes

    sink = RecordingSink(retry=False)
    LocalExecutor(jobs=1, gpus=["0"], target=getattr(batch_local_fakes, fake)).run(stand_in_jobs(tmp_path, 1), sink)
    assert sink.events == [("started", "s0", 1), ("lost", "s0", 1)]


def test_a_lost_grading_is_tried_again_and_a_students_result_never_is(tmp_path):
    import batch_local_fakes

    sink = RecordingSink()
    LocalExecutor(jobs=2, target=batch_local_fakes.dies_on_first_attempt).run(stand_in_jobs(tmp_path, 2), sink)
    for ident in ("s0", "s1"):
        mine = [e[0] for e in sink.events if e[1] == ident]
        assert mine == ["started", "lost", "started", "finished"], sink.events


def test_a_grading_that_keeps_dying_is_recorded_as_not_graded(tmp_path):
    import batch_local_fakes

    subs = tmp_path / "subs"
    make_submission(subs / "alice", a1())
    outcome = grade_batch(batch_options(subs, tmp_path / "out", only="affine.forward"),
                        make_executor=lambda *a: LocalExecutor(jobs=1, target=batch_local_fakes.always_dies))
    (record,) = outcome.records
    assert record["status"] == "error" and record["score"] == 0
    assert "not graded: its grading process exited with code 9 (tried 3 times)" in record["errors"]
    store = BatchStore(tmp_path / "out")
    try:
        assert [a[2:] for a in store.attempts()] == [(1, "its grading process exited with code 9"),
                                                     (2, "its grading process exited with code 9"),
                                                     (3, "its grading process exited with code 9")]
    finally:
        store.close()


def test_an_untyped_outcome_from_a_grading_process_is_refused(tmp_path):
    import batch_local_fakes

    sink = RecordingSink(retry=False)
    LocalExecutor(jobs=1, target=batch_local_fakes.sends_an_untyped_outcome).run(stand_in_jobs(tmp_path, 1), sink)
    assert sink.events == [("started", "s0", 1), ("lost", "s0", 1)]


def test_a_configuration_problem_stops_the_batch(tmp_path):
    import batch_local_fakes

    with pytest.raises(BatchAborted, match="tasks: missing"):
        LocalExecutor(jobs=2, target=batch_local_fakes.configuration_is_broken).run(
            stand_in_jobs(tmp_path, 3), RecordingSink())


# -- regrading some submissions, similarity and the web report, on an in-process stand-in ------------

class CountingExecutor:
    """Grades in this process: a submission scores the number of times it was graded."""

    name = "counting"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def run(self, jobs, sink) -> None:
        for job in jobs:
            attempt = sink.started(job)
            count = self.counts[job.submission_id] = self.counts.get(job.submission_id, 0) + 1
            sink.finished(job, attempt, {
                "id": job.submission_id, "source": job.path, "content_hash": job.content_hash, "status": "graded",
                "score": float(count), "max_score": 2.0, "seed": job.settings.seed,
                "tasks": {"affine.forward": {"points": float(count), "max_points": 2.0, "outcome": "passed",
                                             "message": ""}},
                "errors": "", "seconds": 0.0, "checks_s": 0.0, "results": {"score": float(count)},
                "feedback": f"graded {count} time(s)\n"})

    def __call__(self, *arguments) -> "CountingExecutor":  # as make_executor
        return self


def test_regrading_named_submissions_grades_them_again_and_keeps_every_other_row(small_batch):
    subs, out = small_batch
    executor = CountingExecutor()
    grade_batch(small(subs, out, similarity="off"), make_executor=executor)
    (subs / "alice" / "layers.py").write_text("# changed, but not named: kept as it was graded\n")
    again = grade_batch(small(subs, out, regrade=True, regrade_only=("bob",), similarity="off"), make_executor=executor)
    assert again.graded == ["bob"] and again.skipped == ["alice"]
    assert executor.counts == {"alice": 1, "bob": 2}  # bob graded again although unchanged
    rows = {row["id"]: row for row in csv.DictReader((out / "gradebook.csv").read_text().splitlines())}
    assert (rows["alice"]["total"], rows["bob"]["total"]) == ("1", "2")
    assert "Score: mean 1.50" in (out / "summary.md").read_text()
    assert (out / "submissions" / "bob" / "feedback.txt").read_text() == "graded 2 time(s)\n"
    assert (out / "submissions" / "alice" / "feedback.txt").read_text() == "graded 1 time(s)\n"


def test_regrading_some_submissions_keeps_the_batchs_settings(small_batch):
    subs, out = small_batch
    grade_batch(small(subs, out, seed=1, similarity="off"), make_executor=CountingExecutor())
    with pytest.raises(ConfigError, match="seed 1, not seed 2"):
        grade_batch(small(subs, out, seed=2, regrade=True, regrade_only=("bob",)), make_executor=CountingExecutor())


def test_regrading_an_unknown_submission_is_a_usage_error_naming_close_ones(small_batch, capsys):
    from grader.batch.run import UnknownSubmissions
    from grader.cli import build_parser, main

    subs, out = small_batch
    with pytest.raises(UnknownSubmissions, match=r"no submission 'alcie' in this batch \(did you mean alice\?\)"):
        grade_batch(small(subs, out, regrade=True, regrade_only=("alcie", "bob")), make_executor=CountingExecutor())
    assert not (out / "batch.sqlite").exists()
    assert main(["batch", A1, str(subs), "--out", str(out), "--quiet", "--regrade", "bob", "zed"]) == 2
    assert "--regrade: no submission 'zed' in this batch" in capsys.readouterr().err
    parse = build_parser().parse_args
    assert parse(["batch", A1, str(subs), "--out", str(out)]).regrade is None
    assert parse(["batch", A1, str(subs), "--out", str(out), "--regrade"]).regrade == []
    assert parse(["batch", A1, str(subs), "--regrade", "alice", "bob", "--out", str(out)]).regrade == ["alice", "bob"]
    assert parse(["batch", A1, str(subs), "--out", str(out)]).similarity == "auto"


def fake_module(monkeypatch, name: str, **functions) -> None:
    import types

    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("choice, compared", [("auto", False), ("on", True), ("off", False)])
def test_similar_pairs_are_found_after_grading_and_the_report_is_written_every_run(small_batch, monkeypatch,
                                                                                  choice, compared):
    subs, out = small_batch
    calls: dict[str, list] = {"similar": [], "report": []}

    def similar_pairs(assignment, submissions, threshold=0.5):
        calls["similar"].append(sorted(submissions))
        return ["alice~bob"]

    def write_web_report(out_dir, assignment_id, records, tasks, similarity=None):
        calls["report"].append((assignment_id, [r["id"] for r in records], [t.id for t in tasks], similarity))
        path = out_dir / "report.html"
        path.write_text("<html></html>")
        return path

    fake_module(monkeypatch, "grader.batch.similarity", similar_pairs=similar_pairs)
    fake_module(monkeypatch, "grader.batch.web_report", write_web_report=write_web_report)
    outcome = grade_batch(small(subs, out, similarity=choice), make_executor=CountingExecutor())
    pairs = ["alice~bob"] if compared else []
    assert calls["similar"] == ([[("alice", subs / "alice"), ("bob", subs / "bob")]] if compared else [])
    # None: not compared, which report.html says apart from a comparison that found no pair
    assert calls["report"] == [(A1, ["alice", "bob"], ["affine.forward"], pairs if compared else None)]
    assert outcome.similar == pairs and outcome.report == out / "report.html" and outcome.notes == []
    assert [r["score"] for r in outcome.records] == [1.0, 1.0]  # no score changed
    grade_batch(small(subs, out, similarity=choice), make_executor=CountingExecutor())  # nothing graded: written again
    assert len(calls["report"]) == 2


def test_without_the_similarity_and_report_modules_the_batch_grades_and_says_so(small_batch, monkeypatch):
    subs, out = small_batch
    monkeypatch.setitem(sys.modules, "grader.batch.similarity", None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, "grader.batch.web_report", None)
    outcome = grade_batch(small(subs, out, similarity="on"), make_executor=CountingExecutor())
    assert outcome.report is None and outcome.similar == [] and (out / "gradebook.csv").is_file()
    assert [note.split(":")[0] for note in outcome.notes] == ["similarity not compared", "report.html not written"]


def test_the_batch_calls_the_installed_similarity_and_report_modules(small_batch):
    subs, out = small_batch
    outcome = grade_batch(small(subs, out, similarity="on"), make_executor=CountingExecutor())
    assert outcome.notes == [] and outcome.report is not None and outcome.report.is_file()
    assert isinstance(outcome.similar, list)


def test_off_a_terminal_the_command_prints_progress_lines_and_the_reports_paths(small_batch, capsys):
    from grader.cli import main

    subs, out = small_batch
    assert main(["batch", A1, str(subs), "--out", str(out), "--only", "affine.forward", "--jobs", "1",
                 "--seed", "3", "--similarity", "off"]) == 0
    printed = capsys.readouterr().out
    assert "graded 1/2, " in printed and "graded 2/2, 1 failed, 0 s left" not in printed  # bob's stubs are graded
    assert "graded 2/2, 0 failed, 0 s left" in printed
    assert f"gradebook: {out / 'gradebook.csv'}" in printed and f"report: {out / 'report.html'}" in printed
    assert main(["batch", A1, str(subs), "--out", str(out), "--only", "affine.forward", "--jobs", "1",
                 "--quiet", "--regrade", "bob"]) == 0
    assert "1 graded now, 1 kept as they were" in capsys.readouterr().out


def test_an_out_that_is_a_file_is_a_usage_error_naming_it(small_batch, capsys):
    from grader.cli import main

    subs, out = small_batch
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("not a folder")
    assert main(["batch", A1, str(subs), "--out", str(out), "--skip-training"]) == 2
    assert f"--out {out} is a file, not a folder" in capsys.readouterr().err
    assert main(["batch", A1, str(subs), "--out", str(out / "below"), "--skip-training"]) == 2
    assert f"--out {out / 'below'} cannot be made a folder" in capsys.readouterr().err
