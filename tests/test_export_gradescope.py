"""The Gradescope autograder zip: its listing, and run_autograder run the way Gradescope runs it
(source/ = the extracted zip, submission/, results/, submission_metadata.json), each results.json
checked against Gradescope's documented format."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from grader.cli import EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE, main

from conftest import edit_file
from no_landlock import landlock_abi
from support import A1, PROJECT_ROOT, a1
from grader.sandbox import levels
from grader.assignment import ConfigError, load_assignment
from grader.delivery.gradescope_export import build_autograder
from grader.delivery.gradescope_runner import (
    LevelCheck, Metadata, SandboxProof, Unusable, leaderboard, locate_submission, read_metadata, refusal_results,
)
from grader.delivery.submission_zip import write_submission_zip
from grader.report.gradescope import LeaderboardEntry
from grader.results import GradingResult, Outcome, TaskResult, TrainingMeasurement

ONLY = "affine.*"            # the tasks graded in these runs: 2 + 3 points
ONLY_POINTS = 5.0
MARKED_VERSION = "0.1.0+from-the-autograder-zip"
METADATA = {
    "id": 123456,
    "created_at": "2026-07-01T14:22:32.365935-07:00",
    "assignment": {"due_date": "2026-07-31T23:00:00.000000-07:00", "group_size": 2, "group_submission": True,
                   "id": 25828, "course_id": 1234, "late_due_date": None,
                   "release_date": "2026-07-02T00:00:00.000000-07:00", "title": "A1", "total_points": "96.0"},
    "submission_method": "upload",
    "users": [{"email": "a@example.com", "id": 1234, "name": "Student A"},
              {"email": "b@example.com", "id": 5678, "name": "Student B"}],
    "previous_submissions": [{"submission_time": "2026-07-01T10:00:00.000000-07:00", "score": 3.0, "results": {}}],
}


# --- Gradescope's results.json format ----------------------------------------------------------------

VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
NUMBER, TEXT = "number", "text"
TOP_LEVEL = {"score": NUMBER, "execution_time": NUMBER, "output": TEXT, "output_format": FORMATS,
             "test_output_format": FORMATS, "test_name_format": FORMATS, "visibility": VISIBILITIES,
             "stdout_visibility": VISIBILITIES, "extra_data": dict, "tests": list, "leaderboard": list}
TEST = {"score": NUMBER, "max_score": NUMBER, "status": {"passed", "failed"}, "name": TEXT,
        "name_format": FORMATS, "number": TEXT, "output": TEXT, "output_format": FORMATS, "tags": list,
        "visibility": VISIBILITIES, "extra_data": dict}
LEADERBOARD = {"name": TEXT, "value": (NUMBER, TEXT), "order": {"asc", "desc"}}


def _check_fields(where: str, obj, allowed: dict) -> None:
    assert isinstance(obj, dict), f"{where}: not an object"
    for key, value in obj.items():
        assert key in allowed, f"{where}: {key!r} is not a field of Gradescope's format"
        kinds = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
        ok = False
        for kind in kinds:
            if kind == NUMBER:
                ok |= isinstance(value, (int, float)) and not isinstance(value, bool)
            elif kind == TEXT:
                ok |= isinstance(value, str)
            elif isinstance(kind, set):
                ok |= value in kind
            else:
                ok |= isinstance(value, kind)
        assert ok, f"{where}: {key} = {value!r} is not valid"


def validate_results(text: str) -> dict:
    """Gradescope's autograder specification, as far as it states it: strict JSON, known fields with
    their types, a score at the top or on every test."""
    def no_constant(name):
        raise AssertionError(f"{name} is not JSON")

    results = json.loads(text, parse_constant=no_constant)
    _check_fields("results", results, TOP_LEVEL)
    tests = results.get("tests", [])
    for i, test in enumerate(tests):
        _check_fields(f"tests[{i}]", test, TEST)
        assert all(isinstance(tag, str) for tag in test.get("tags", []))
    assert "score" in results or (tests and all("score" in t for t in tests)), "no score anywhere"
    for i, entry in enumerate(results.get("leaderboard", [])):
        _check_fields(f"leaderboard[{i}]", entry, LEADERBOARD)
        assert {"name", "value"} <= entry.keys()
    return results


# --- building and running ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The zip of a1 from a copy of the project where one task is visible only after the due date,
    and the zip extracted (permission bits applied, as Gradescope's unzip does) with a marked grader."""
    base = tmp_path_factory.mktemp("gradescope")
    project = base / "project"
    for part in ("assignments", "reference"):
        shutil.copytree(PROJECT_ROOT / part / A1, project / part / A1)
    edit_file(project / "assignments" / A1 / "assignment.yaml",
              '{id: affine.backward, title: "Affine layer, backward pass", points: 3}',
              '{id: affine.backward, title: "Affine layer, backward pass", points: 3, visibility: after_due_date}')
    archive = build_autograder(load_assignment(A1, project), base / "autograder.zip")
    extracted = base / "extracted"
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            path = opened.extract(info, extracted)
            if info.external_attr >> 16:
                os.chmod(path, (info.external_attr >> 16) & 0o777)
    edit_file(extracted / "grader" / "__init__.py", '__version__ = "0.1.0"', f'__version__ = "{MARKED_VERSION}"')
    return archive, extracted


def gradescope_root(tmp_path: Path, extracted: Path, metadata=METADATA) -> Path:
    root = tmp_path / "autograder"
    shutil.copytree(extracted, root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope's image build does
    (root / "submission").mkdir()
    (root / "results").mkdir()
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        (root / "submission_metadata.json").write_text(text)
    return root


def student_files(folder: Path, base: str = "reference") -> Path:
    assignment = a1()
    source = assignment.reference_directory if base == "reference" else assignment.directory
    folder.mkdir(parents=True, exist_ok=True)
    for name in assignment.spec.student_files:
        shutil.copyfile(source / name, folder / name)
    return folder


def run_autograder(root: Path, python: str = sys.executable, only: str = ONLY, path_first: Path | None = None,
                   launcher: tuple[str, ...] = ()) -> dict:
    """results.json of run_autograder run on `root`; `path_first` is put first on PATH (fake programs),
    `launcher` runs it (the launcher of tests/no_landlock.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ROOT", "PYTHONPATH")}
    env.update(AUTOGRADER_ROOT=str(root), GRADER_PYTHON=python, GRADER_ONLY=only)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', os.defpath)}"
    completed = subprocess.run([*launcher, str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                               text=True, timeout=240)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results_file = root / "results" / "results.json"
    assert results_file.is_file(), completed.stdout + completed.stderr
    return validate_results(results_file.read_text())


def by_task(results: dict) -> dict[str, dict]:
    return {t["extra_data"]["task"]: t for t in results["tests"]}


# --- the zip -----------------------------------------------------------------------------------------

def test_zip_holds_the_scripts_at_its_root_the_grader_and_the_reference(built):
    archive, extracted = built
    with zipfile.ZipFile(archive) as opened:
        infos = {i.filename: i for i in opened.infolist()}
    names = set(infos)
    assert {"setup.sh", "run_autograder", "pyproject.toml", "grader/__init__.py", "grader/delivery/gradescope_runner.py",
            "grader/engine/checks.ini", f"assignments/{A1}/assignment.yaml", f"assignments/{A1}/layers.py",
            f"assignments/{A1}/solver.py", f"reference/{A1}/layers.py", f"reference/{A1}/mistakes.yaml"} <= names
    assert any(n.startswith(f"assignments/{A1}/checks/test_") for n in names)
    assert any(n.startswith(f"assignments/{A1}/fixtures/") for n in names)
    assert any(n.startswith(f"reference/{A1}/hidden_checks/test_") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "assignments/a2", "reference/a2", ".venv"))]
    for script in ("run_autograder", "setup.sh"):
        mode = infos[script].external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, f"{script} is not executable in the zip"
    assert not (infos["pyproject.toml"].external_attr >> 16) & 0o111
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(extracted / script)], check=True)
    setup = (extracted / "setup.sh").read_text()
    assert "apt-get install -y python3 python3-pip python3-venv bubblewrap libseccomp2" in setup
    # A Python and an environment that the worker's unprivileged uid can run, proven so.
    assert 'PYTHON=/usr/bin/python3' in setup and '"$PYTHON" -m venv "$VENV"' in setup
    assert "VENV=/opt/grader-venv" in setup and "setpriv --reuid=65534" in setup
    assert "torch==2.13.*" in setup and "--index-url https://download.pytorch.org/whl/cpu" in setup
    assert 'pip install --no-cache-dir "$SOURCE" pyseccomp' in setup
    runner = (extracted / "run_autograder").read_text()
    assert runner.startswith("#!") and f"--assignment {A1} --device auto --data synthetic" in runner


def test_options_are_written_into_run_autograder(tmp_path):
    archive = build_autograder(a1(), tmp_path / "cpu.zip", device="cpu", data="auto", time_limit_s=600)
    with zipfile.ZipFile(archive) as opened:
        runner = opened.read("run_autograder").decode()
        setup = opened.read("setup.sh").decode()
    assert "--device cpu --data auto --gpu-tasks skip --time-limit 600" in runner
    assert main(["export", "gradescope", A1, "--out", str(tmp_path / "cli.zip"), "--time-limit", "500",
                 "--memory", "450", "--gpu-tasks", "leave-out"]) == 0
    with zipfile.ZipFile(tmp_path / "cli.zip") as opened:
        assert "--gpu-tasks leave-out --time-limit 500 --memory 450" in opened.read("run_autograder").decode()
    with pytest.raises(ConfigError, match="gpu_tasks"):
        build_autograder(a1(), tmp_path / "x.zip", gpu_tasks="cpu")
    assert "--data auto" in setup and "--prepare-data" in setup
    with pytest.raises(ConfigError, match="data"):
        build_autograder(a1(), tmp_path / "x.zip", data="cifar10")
    with pytest.raises(ConfigError, match="device"):
        build_autograder(a1(), tmp_path / "x.zip", device="tpu")
    with pytest.raises(ConfigError, match="data='auto'"):
        build_autograder(a1(), tmp_path / "x.zip", cifar10_archive=tmp_path / "cifar-10-python.tar.gz")
    public = load_assignment(A1, PROJECT_ROOT)
    public = type(public)(public.spec, public.directory, None)
    with pytest.raises(ConfigError, match="reference"):
        build_autograder(public, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


# --- run_autograder, as Gradescope runs it ---------------------------------------------------------

def test_reference_gets_full_points_graded_by_the_zips_own_copy(built, tmp_path):
    root = gradescope_root(tmp_path, built[1])
    student_files(root / "submission")
    results = run_autograder(root)
    assert results["score"] == ONLY_POINTS
    tasks = by_task(results)
    assert set(tasks) == {"affine.forward", "affine.backward"}
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in tasks.values())
    assert tasks["affine.backward"]["visibility"] == "after_due_date"   # from the zip's assignment.yaml
    assert tasks["affine.forward"]["visibility"] == "visible"
    extra = results["extra_data"]
    assert extra["mode"] == "official" and extra["graded"] is True
    assert extra["sandbox"] in ("bwrap", "restricted") and "refused" not in extra   # proven before grading
    assert extra["grader_version"] == MARKED_VERSION   # written by the grader process of the zip's copy
    assert Path(extra["autograder"]["grader_package"]) == (root / "source" / "grader").resolve()
    gradescope = extra["gradescope"]
    assert gradescope["submitters"] == [1234, 5678] and gradescope["submission_id"] == 123456
    assert gradescope["previous_submissions"] == 1 and gradescope["late"] is False
    assert extra["seed"] == Metadata(submission_id=123456).seed(A1)  # a regrade checks the same inputs
    assert "leaderboard" not in results   # no training task was graded


def test_stubs_get_no_points(built, tmp_path):
    root = gradescope_root(tmp_path, built[1])
    student_files(root / "submission", base="stubs")
    results = run_autograder(root)
    assert results["score"] == 0
    assert {t["extra_data"]["outcome"] for t in results["tests"]} == {"not_implemented"}
    assert all(t["status"] == "failed" and t["max_score"] > 0 for t in results["tests"])


def test_files_nested_in_a_folder_are_found(built, tmp_path):
    root = gradescope_root(tmp_path, built[1])
    student_files(root / "submission" / "my homework")
    (root / "submission" / "__MACOSX" / "my homework").mkdir(parents=True)
    (root / "submission" / "__MACOSX" / "my homework" / "layers.py").write_text("junk")
    results = run_autograder(root)
    assert results["score"] == ONLY_POINTS
    assert "my homework/" in results["output"]


def test_the_graders_own_submission_zip_is_graded(built, tmp_path):
    root = gradescope_root(tmp_path, built[1])
    files = student_files(tmp_path / "work")
    write_submission_zip(a1(), files, root / "submission" / f"{A1}_submission.zip", None)
    results = run_autograder(root)
    assert results["score"] == ONLY_POINTS
    assert f"{A1}_submission.zip" in results["output"]


def test_an_empty_submission_scores_zero_with_the_reason(built, tmp_path):
    root = gradescope_root(tmp_path, built[1])
    results = run_autograder(root)
    assert results["score"] == 0 and results["extra_data"]["graded"] is False
    assert "none of the files to submit" in results["output"] and "layers.py" in results["output"]
    assert {t["extra_data"]["task"] for t in results["tests"]} == {"affine.forward", "affine.backward"}
    assert by_task(results)["affine.backward"]["visibility"] == "after_due_date"


def test_invalid_metadata_does_not_stop_grading(built, tmp_path):
    root = gradescope_root(tmp_path, built[1], metadata='{"id": 1, "users": [')
    student_files(root / "submission")
    results = run_autograder(root)
    assert results["score"] == ONLY_POINTS
    assert "not readable JSON" in results["extra_data"]["gradescope"]["metadata_problem"]
    assert results["extra_data"]["gradescope"]["submitters"] == []


def test_a_broken_autograder_still_leaves_a_result(built, tmp_path):
    root = gradescope_root(tmp_path, built[1], metadata=None)
    student_files(root / "submission")
    results = run_autograder(root, python=str(tmp_path / "no-such-python"))   # no Python at all
    assert results["score"] == 0 and "course staff" in results["output"]

    (root / "source" / "assignments" / A1 / "assignment.yaml").write_text("id: [")   # the grader's own failure
    results = run_autograder(root)
    assert results["score"] == 0 and "could not load the assignment" in results["output"]
    assert results["extra_data"]["gradescope"]["metadata_problem"] == "submission_metadata.json is missing"


# --- the sandbox proven before grading ------------------------------------------------------------

REFERENCE_THIEF = """

def affine_forward(x, w, b):
    # Answers with the reference solution's own affine_forward, read from the autograder's files;
    # zeros where the reference cannot be read.
    import numpy as np
    try:
        with open({path!r}) as source:
            code = source.read()
    except OSError:
        return np.zeros((x.shape[0], w.shape[1])), (x, w, b)
    namespace = {{"__name__": "stolen_reference"}}
    exec(compile(code, "stolen_reference", "exec"), namespace)
    return namespace["affine_forward"](x, w, b)
"""


@pytest.fixture
def open_tmp():
    """A folder every user can traverse (pytest's own are root's only), as Gradescope's /autograder
    is: what an unprivileged worker reads in it is decided by the sandbox, not by a parent folder."""
    folder = Path(tempfile.mkdtemp(prefix="grader-gradescope-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _hidden_from_others(path: Path) -> bool:
    """Whether a folder on the way to `path` lets only its owner in (/root, where pyenv puts Python)."""
    return any(not folder.stat().st_mode & stat.S_IXOTH for folder in path.resolve().parents)


@pytest.fixture(scope="module")
def python_for_everyone():
    """A Python with this one's packages that every user can run: as root, the restricted level runs
    the worker as an unprivileged uid, which cannot reach a Python under /root (on Gradescope, setup.sh
    uses /usr/bin/python3). This Python where it is reachable; else a virtual environment of the
    system's Python of the same version, holding copies of what the worker imports (Landlock lets it
    read its own installation only) and reaching the rest, for the grader, through a .pth file."""
    if not (os.geteuid() == 0 and _hidden_from_others(Path(sys.executable))):
        yield sys.executable
        return
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.is_file() or _hidden_from_others(system):
        pytest.skip(f"{sys.executable} is out of an unprivileged user's reach, and {system} is not there")
    import numpy

    packages = Path(numpy.__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="grader-python-"))
    folder.chmod(0o755)
    try:
        subprocess.run([str(system), "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
        [target] = (folder / "venv" / "lib").glob("python*/site-packages")
        for name in ("numpy", "numpy.libs", *(p.name for p in packages.glob("numpy-*.dist-info"))):
            if (packages / name).is_dir():
                shutil.copytree(packages / name, target / name, symlinks=True)
        shutil.copy2(packages / "pyseccomp.py", target / "pyseccomp.py")
        (target / "zz_grader_tests.pth").write_text(f"import site; site.addsitedir({str(packages)!r})\n")
        yield str(folder / "venv" / "bin" / "python")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def broken_bwrap(open_tmp) -> Path:
    """A folder holding a `bwrap` that fails as bubblewrap does where user namespaces are not allowed
    (Docker, Gradescope, GitHub's ubuntu-24.04 runners): put first on PATH, the bwrap level cannot run."""
    folder = open_tmp / "bin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    return folder


def thief_submission(root: Path) -> Path:
    """The reference's files, but affine_forward answers with the autograder's own reference/."""
    folder = student_files(root / "submission")
    stolen = root / "source" / "reference" / A1 / "layers.py"
    with (folder / "layers.py").open("a") as layers:
        layers.write(REFERENCE_THIEF.format(path=str(stolen)))
    return folder


def grade_unprotected(root: Path, submission: Path, json_path: Path, python: str) -> dict:
    """affine.forward graded by the autograder's own grader with the sandbox off (`--sandbox process`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ROOT", "PYTHONPATH")}
    env.update(GRADER_ROOT=str(root / "source"), PYTHONPATH=str(root / "source"), NO_COLOR="1")
    completed = subprocess.run([python, "-m", "grader", "grade", A1, "--submission", str(submission),
                                "--mode", "official", "--sandbox", "process", "--only", "affine.forward", "--json",
                                str(json_path), "--no-zip", "--quiet"], cwd=root / "source", env=env,
                               capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(json_path.read_text())


@pytest.mark.skipif("restricted" not in levels.LEVELS, reason="this grader has no restricted sandbox level yet")
@pytest.mark.skipif(not landlock_abi(), reason="the restricted level needs Landlock, which this kernel lacks")
def test_without_bubblewrap_it_grades_at_the_restricted_level_and_the_reference_stays_out_of_reach(
        built, open_tmp, broken_bwrap, python_for_everyone):
    root = gradescope_root(open_tmp, built[1])
    submission = thief_submission(root)

    unprotected = grade_unprotected(root, submission, open_tmp / "unprotected.json", python_for_everyone)
    assert by_task(unprotected)["affine.forward"]["score"] == 2, "the attack does not work even without a sandbox"

    results = run_autograder(root, python=python_for_everyone, only="affine.forward", path_first=broken_bwrap)
    assert results["extra_data"]["sandbox"] == "restricted", results["output"]
    assert results["extra_data"]["graded"] is True and "refused" not in results["extra_data"]
    forward = by_task(results)["affine.forward"]
    assert forward["score"] == 0 and forward["status"] == "failed" and forward["extra_data"]["outcome"] == "failed"


def test_with_no_level_that_holds_it_refuses_to_grade(built, open_tmp, broken_bwrap, python_for_everyone):
    root = gradescope_root(open_tmp, built[1])
    student_files(root / "submission")   # work that earns every point where it is graded
    # Neither bubblewrap nor Landlock (hidden from the whole run where this kernel has it): the
    # restricted level's worker (an unprivileged uid, when the grader is root) could read the
    # world-readable reference/, so that level is not proven either.
    launcher: tuple[str, ...] = ()
    if landlock_abi():
        pytest.importorskip("pyseccomp", reason="the launcher that hides Landlock needs pyseccomp")
        launcher = (sys.executable, str(Path(__file__).with_name("no_landlock.py")))
    results = run_autograder(root, python=python_for_everyone, path_first=broken_bwrap, launcher=launcher)
    extra = results["extra_data"]
    assert results["score"] == 0 and extra["graded"] is False
    assert extra["sandbox"] is None
    assert extra["refused"].startswith("official grading refused") and "bwrap" in extra["refused"]
    if "restricted" in levels.LEVELS:
        assert "restricted" in extra["refused"]
    assert "not graded" in results["output"] and "For the course staff" in results["output"]
    assert "To fix:" in results["output"] and "grader selfcheck --sandbox bwrap" in results["output"]
    assert {t["extra_data"]["task"] for t in results["tests"]} == {"affine.forward", "affine.backward"}
    assert all(t["score"] == 0 for t in results["tests"])


# --- the runner's parts ----------------------------------------------------------------------------

def test_leaderboard_holds_the_validation_accuracy_of_training_tasks():
    spec = a1().spec

    def result(accuracy, data="cifar10") -> GradingResult:
        def training(task_id, accuracy):
            measured = TrainingMeasurement(accuracy, 12.0, "cpu", data, 0.5, None)
            return TaskResult(task_id, task_id, 5, 5, Outcome.PASSED, "", kind="training", training=measured)
        return GradingResult(A1, "official", 1, (training("two_layer_net.cifar10", accuracy),
                                                  training("fc_net.overfit", 1.0),
                                                  TaskResult("affine.forward", "x", 2, 2, Outcome.PASSED, "")), 1.0, "0")

    assert leaderboard(result(0.51234), spec) == (
        LeaderboardEntry("two_layer_net.cifar10: CIFAR-10 validation accuracy", 0.5123, "desc"),)
    assert "synthetic" in leaderboard(result(0.5, data="synthetic"), spec)[0].name
    assert leaderboard(result(None), spec) == ()   # skipped: nothing measured


def test_a_sandbox_is_proven_by_the_strongest_level_that_holds_and_a_refusal_says_what_to_fix():
    proof = SandboxProof((LevelCheck("bwrap", 1, "bwrap table"), LevelCheck("restricted", 0, "restricted table")))
    assert proof.level == "restricted"
    refused = SandboxProof((LevelCheck("bwrap", 1, "bwrap table"), LevelCheck("restricted", None, "")))
    assert refused.level is None
    reason = refused.refusal()
    assert reason.startswith("official grading refused") and "bwrap: its selfcheck failed with exit status 1" in reason
    assert "restricted: its selfcheck did not finish" in reason and len(refused.fixes()) == 2
    results = refusal_results(reason, refused.fixes(), refused.log(), a1().spec.select("affine.*"), 2.5,
                              {"sandbox": "bwrap"}).results_json()
    validate_results(json.dumps(results))
    assert results["score"] == 0 and results["extra_data"]["sandbox"] is None
    assert results["extra_data"]["refused"] == reason and "bwrap table" in results["output"]
    assert [t["score"] for t in results["tests"]] == [0.0, 0.0]


def test_metadata_is_read_field_by_field(tmp_path):
    path = tmp_path / "submission_metadata.json"
    path.write_text(json.dumps(METADATA))
    meta = read_metadata(path)
    assert meta.problem is None and meta.submitters == [1234, 5678] and meta.previous_scores == [3.0]
    path.write_text(json.dumps({**METADATA, "created_at": "2026-08-02T00:00:00-07:00"}))
    assert read_metadata(path).late() is True
    path.write_text(json.dumps({"users": "nobody", "previous_submissions": 3, "assignment": []}))
    meta = read_metadata(path)
    assert meta.submitters == [] and "users" in meta.problem and meta.seed(A1) is None
    path.write_text("[]")
    assert "not an object" in read_metadata(path).problem


def test_two_copies_of_the_files_are_refused(tmp_path):
    names = a1().spec.student_files
    student_files(tmp_path / "sub" / "one")
    student_files(tmp_path / "sub" / "two")
    with pytest.raises(Unusable, match="several folders"):
        locate_submission(tmp_path / "sub", A1, names)
    student_files(tmp_path / "repo" / "assignments" / A1)   # a student's repository
    student_files(tmp_path / "repo" / "copy")
    assert locate_submission(tmp_path / "repo", A1, names).path == tmp_path / "repo" / "assignments" / A1


def test_the_runner_takes_exactly_the_choices_and_defaults_the_export_writes_into_it():
    from grader.cli import build_parser
    from grader.delivery.gradescope_runner import build_parser as runner_parser
    from grader.options import DEVICES, EXPORT_DATA_CHOICES, EXPORT_GPU_TASKS

    def flags(parser):
        return {flag: action for action in parser._actions for flag in action.option_strings}

    def command(parser, name):
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return commands.choices[name]

    runner, export = flags(runner_parser()), flags(command(command(build_parser(), "export"), "gradescope"))
    for flag, choices in (("--device", DEVICES), ("--data", EXPORT_DATA_CHOICES), ("--gpu-tasks", EXPORT_GPU_TASKS)):
        assert tuple(runner[flag].choices) == tuple(export[flag].choices) == choices, flag
        assert runner[flag].default == export[flag].default, flag


@pytest.mark.parametrize("status, stderr, expected", [
    (EXIT_UNUSABLE, "grader: unusable submission: layers.py is empty\n",
     "Your submission could not be graded: layers.py is empty"),
    (EXIT_USAGE, "grader: configuration error: official grading refused: a promise broke\n",
     "none holds on this machine"),
    (EXIT_USAGE, "grader: error: something the grader did not expect\n",
     "could not grade this submission (error: something the grader did not expect)"),
])
def test_the_runner_reads_the_exit_status_of_grader_grade_as_grader_cli_defines_it(
        tmp_path, monkeypatch, status, stderr, expected):
    from grader.delivery import gradescope_runner as runner

    (tmp_path / "autograder").mkdir()
    (tmp_path / "autograder" / "source").symlink_to(PROJECT_ROOT)
    student_files(tmp_path / "autograder" / "submission")
    monkeypatch.setenv("GRADER_ONLY", ONLY)
    monkeypatch.setattr(runner, "prove_sandbox", lambda env, cwd: SandboxProof((LevelCheck("bwrap", EXIT_OK, ""),)))
    monkeypatch.setattr(runner, "run_grader", lambda command, env, cwd, time_limit: (status, stderr))
    args = runner.build_parser().parse_args(["--assignment", A1])
    run = runner.grade_submission(args, runner.Layout(tmp_path / "autograder"), 0.0)
    assert expected in run.result.output and run.extra["graded"] is False
    assert ("refused" in run.extra) == ("refused" in stderr)
