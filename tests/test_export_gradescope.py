"""The Gradescope autograder zip: its listing, and run_autograder run the way Gradescope runs it
(source/ = the extracted zip, submission/, results/, submission_metadata.json), each results.json
checked against Gradescope's documented format."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import edit_file
from support import A1, PROJECT_ROOT, a1
from grader.assignment import ConfigError, load_assignment
from grader.export_gradescope import build_autograder
from grader.gradescope_runner import Metadata, Unusable, leaderboard, locate_submission, read_metadata
from grader.submission_zip import write_submission_zip

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


def run_autograder(root: Path, python: str = sys.executable, only: str = ONLY) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ROOT", "PYTHONPATH")}
    env.update(AUTOGRADER_ROOT=str(root), GRADER_PYTHON=python, GRADER_ONLY=only)
    completed = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                               text=True, timeout=120)
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
    assert {"setup.sh", "run_autograder", "pyproject.toml", "grader/__init__.py", "grader/gradescope_runner.py",
            "grader/checks.ini", f"assignments/{A1}/assignment.yaml", f"assignments/{A1}/layers.py",
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
    assert "apt-get install -y python3 python3-pip python3-venv" in setup
    assert "torch==2.13.*" in setup and "--index-url https://download.pytorch.org/whl/cpu" in setup
    assert 'pip install --no-cache-dir "$SOURCE"' in setup
    runner = (extracted / "run_autograder").read_text()
    assert runner.startswith("#!") and f"--assignment {A1} --device auto --data synthetic" in runner


def test_options_are_written_into_run_autograder(tmp_path):
    archive = build_autograder(a1(), tmp_path / "cpu.zip", device="cpu", data="auto", time_limit_s=600)
    with zipfile.ZipFile(archive) as opened:
        runner = opened.read("run_autograder").decode()
        setup = opened.read("setup.sh").decode()
    assert "--device cpu --data auto --time-limit 600" in runner
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


# --- the runner's parts ----------------------------------------------------------------------------

def test_leaderboard_holds_the_validation_accuracy_of_training_tasks():
    spec = a1().spec
    results = {"tests": [
        {"extra_data": {"task": "two_layer_net.cifar10", "kind": "training", "accuracy": 0.5123, "data": "cifar10"}},
        {"extra_data": {"task": "fc_net.overfit", "kind": "training", "accuracy": 1.0, "data": "cifar10"}},
        {"extra_data": {"task": "affine.forward", "kind": "check"}},
    ]}
    assert leaderboard(results, spec) == [
        {"name": "two_layer_net.cifar10: CIFAR-10 validation accuracy", "value": 0.5123, "order": "desc"}]
    results["tests"][0]["extra_data"].update(data="synthetic")
    assert "synthetic" in leaderboard(results, spec)[0]["name"]
    results["tests"][0]["extra_data"].update(accuracy=None)   # skipped: nothing measured
    assert leaderboard(results, spec) == []


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
