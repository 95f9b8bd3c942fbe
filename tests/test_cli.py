"""The command line: exit statuses, the submission zip, the student bundle and the Gradescope export."""

import argparse
import dataclasses
import json
import subprocess
import sys
import zipfile

import pytest

from grader.cli import build_parser, main
from grader.options import DEVICES, GradingChoices, choices_from_arguments, grading_choices
from support import PROJECT_ROOT, a1, make_submission


def run_cli(*args, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                           timeout=300)


def test_release_and_export_write_what_they_say(tmp_path, capsys):
    assert main(["release", "a1_fc_numpy", "--out", str(tmp_path / "bundle")]) == 0
    assert "wrote the student bundle" in capsys.readouterr().out
    assert (tmp_path / "bundle" / "grade.sh").is_file() and not (tmp_path / "bundle" / "reference").exists()
    assert main(["export", "gradescope", "a1_fc_numpy", "--out", str(tmp_path / "autograder.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "autograder.zip") as archive:
        assert {"setup.sh", "run_autograder"} <= set(archive.namelist())
    assert main(["release", "no_such_assignment", "--out", str(tmp_path / "other")]) == 2
    assert "no_such_assignment" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["grade"])
    assert stop.value.code == 2
    assert main(["grade", "no_such_assignment", "--no-zip"]) == 2
    assert "no_such_assignment" in capsys.readouterr().err


def test_a_failure_of_the_grader_itself_exits_4_not_the_fail_under_status(monkeypatch, capsys):
    import grader.cli

    def broken(args):
        raise RuntimeError("a bug of the grader")

    monkeypatch.setattr(grader.cli, "_validate", broken)
    assert main(["validate", "a1_fc_numpy"]) == grader.cli.EXIT_INTERNAL == 4
    err = capsys.readouterr().err
    assert "RuntimeError: a bug of the grader" in err and "grader: internal error (exit status 4)" in err


def test_grade_writes_json_junit_and_zip_and_fail_under_sets_the_status(tmp_path):
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    out = tmp_path / "out"
    completed = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "affine.*",
                        "--json", str(out / "results.json"), "--junit", str(out / "junit.xml"),
                        "--zip", str(out / "submission.zip"), "--mode", "official", "--fail-under", "6")
    assert completed.returncode == 1, completed.stdout + completed.stderr  # 5 points < 6
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == 5 and results["extra_data"]["mode"] == "official"
    assert (out / "junit.xml").read_bytes().startswith(b"<?xml")
    with zipfile.ZipFile(out / "submission.zip") as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("MANIFEST.json"))
    assert names == ["MANIFEST.json", "layers.py", "models.py", "optim.py", "results.json"]
    assert manifest["assignment"] == "a1_fc_numpy" and set(manifest["files"]) == {"layers.py", "models.py", "optim.py"}
    assert {"python", "numpy"} <= set(manifest["versions"]) and manifest["grader_version"]
    passing = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "affine.*", "--no-zip",
                      "--mode", "official", "--fail-under", "5")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    beyond = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "affine.*", "--no-zip",
                     "--mode", "official", "--fail-under", "88")
    assert beyond.returncode == 1 and "more than the 5 points the tasks graded here can give" in beyond.stdout


def test_a_result_file_that_cannot_be_written_is_not_a_passing_run(tmp_path):
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    (tmp_path / "taken").write_text("a file where a folder is needed")
    done = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "relu.forward", "--no-zip",
                   "--mode", "official", "--json", str(tmp_path / "taken" / "results.json"))
    assert done.returncode == 2 and "results.json" in done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_a_missing_or_empty_student_file_is_named_and_no_zip_is_written(tmp_path, problem):
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    if problem == "missing":
        (folder / "optim.py").unlink()
    else:
        (folder / "optim.py").write_text("")
    destination = tmp_path / "submission.zip"
    completed = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "affine.forward",
                        "--zip", str(destination), "--mode", "official")
    assert completed.returncode == 3
    assert "optim.py" in completed.stderr and problem in completed.stderr
    assert not destination.exists()


def test_a_submission_without_any_student_file_is_unusable(tmp_path):
    (tmp_path / "empty").mkdir()
    completed = run_cli("grade", "a1_fc_numpy", "--submission", str(tmp_path / "empty"), "--no-zip")
    assert completed.returncode == 3 and "none of the files" in completed.stderr


def test_a_zip_submission_is_graded_and_its_results_are_not_trusted(tmp_path):
    folder = make_submission(tmp_path / "sub", a1(), "stubs")
    archive_path = tmp_path / "forged.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name in ("layers.py", "optim.py", "models.py"):
            archive.write(folder / name, f"a1_fc_numpy/{name}")
        archive.writestr("results.json", json.dumps({"score": 1000}))
    completed = run_cli("grade", "a1_fc_numpy", "--submission", str(archive_path), "--only", "affine.*",
                        "--json", str(tmp_path / "results.json"), "--mode", "official")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 0


def test_validate_and_fixtures_check_exit_0_on_the_shipped_assignment():
    assert run_cli("validate", "a1_fc_numpy").returncode == 0
    checked = run_cli("fixtures", "a1_fc_numpy", "--check")
    assert checked.returncode == 0 and "current" in checked.stdout


def test_selfcheck_prints_the_promises_and_exits_0_when_they_hold(capsys):
    from grader.cli import main

    assert main(["selfcheck", "--sandbox", "process"]) == 0
    out = capsys.readouterr().out
    assert "a fork bomb is stopped" in out and "every promise of the process level holds" in out


def test_only_that_matches_no_task_is_a_usage_error_listing_the_tasks(tmp_path):
    for command in (["grade", "a1_fc_numpy", "--no-zip"], ["batch", "a1_fc_numpy", str(tmp_path), "--out",
                                                           str(tmp_path / "out")]):
        done = run_cli(*command, "--only", "nosuchtask")
        assert done.returncode == 2, done.stderr
        assert "--only 'nosuchtask' matches no task of a1_fc_numpy" in done.stderr
        assert "affine.forward" in done.stderr and "fc_net.overfit" in done.stderr
        assert "Score" not in done.stdout
    assert run_cli("grade", "a1_fc_numpy", "--no-zip", "--only", "relu.forward", "--mode", "public").returncode == 0
    # One mistyped glob among several is named, rather than grading less than was asked.
    done = run_cli("grade", "a1_fc_numpy", "--no-zip", "--only", "relu.forward,afine.*", "--mode", "public")
    assert done.returncode == 2 and "'afine.*' of --only 'relu.forward,afine.*' matches no task" in done.stderr


def test_only_given_twice_grades_the_tasks_of_both():
    # argparse keeps the last of a repeated option: the first glob's tasks went ungraded, silently.
    for command in (["grade", "a1_fc_numpy"], ["batch", "a1_fc_numpy", "subs", "--out", "out"]):
        args = build_parser().parse_args([*command, "--only", "relu.*", "--only", "affine.forward,sigmoid.*"])
        assert args.only == "relu.*,affine.forward,sigmoid.*"
    assert build_parser().parse_args(["grade", "a1_fc_numpy"]).only is None


def test_grade_sh_help_prints_the_usage_once():
    done = subprocess.run([str(PROJECT_ROOT / "grade.sh"), "--help"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("usage: grader grade") == 1
    assert "./grade.sh --selftest" in done.stdout


def test_ctrl_c_prints_one_line_exits_130_and_leaves_nothing_behind(tmp_path):
    import os
    import signal
    import time

    scratch_parent = tmp_path / "tmp"
    scratch_parent.mkdir()
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    # A model whose forward pass sleeps keeps the grading busy until the interrupt arrives.
    with open(folder / "layers.py", "a") as layers:
        layers.write("\n_affine = affine_forward\n\n\ndef affine_forward(x, w, b):\n"
                     "    import time\n    time.sleep(30)\n    return _affine(x, w, b)\n")
    grading = subprocess.Popen(
        [sys.executable, "-m", "grader", "grade", "a1_fc_numpy", "--submission", str(folder), "--mode", "public",
         "--no-zip", "--only", "affine.forward"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "TMPDIR": str(scratch_parent)})
    deadline = time.monotonic() + 60
    while not list(scratch_parent.glob("grader-scratch-*/submission/layers.py")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the worker is inside the sleeping forward pass
    grading.send_signal(signal.SIGINT)
    out, err = grading.communicate(timeout=60)
    assert grading.returncode == 130, err
    assert err.strip() == "grader: interrupted", err
    assert "Traceback" not in out + err
    assert not list(scratch_parent.glob("grader-scratch-*")), list(scratch_parent.iterdir())


def test_plain_pytest_on_the_checks_says_to_use_the_grader():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(PROJECT_ROOT / "assignments" / "a1_fc_numpy" / "checks")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error
    assert "use ./grade.sh a1_fc_numpy" in done.stdout + done.stderr
    assert "fixture 'student' not found" not in done.stdout + done.stderr


# -- grade and batch take the options they share alike ------------------------------------------------

SHARED_FLAGS = {"--mode", "--seed", "--device", "--data", "--data-dir", "--only", "--skip-training", "--sandbox"}
GIVEN = ["--mode", "official", "--seed", "7", "--device", "cpu", "--data", "synthetic", "--data-dir", "cifar",
         "--only", "affine.*", "--skip-training", "--sandbox", "process"]


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_grade_and_batch_declare_each_option_they_share_alike():
    parsers = commands_of(build_parser())
    grade, batch = flags_of(parsers["grade"]), flags_of(parsers["batch"])
    shared = (set(grade) & set(batch)) - {"-h", "--help", "--quiet"}   # --quiet silences different things
    assert shared == SHARED_FLAGS
    for flag in shared:
        ours, theirs = grade[flag], batch[flag]
        assert ((type(ours), ours.dest, ours.default, ours.choices, ours.type, ours.metavar, ours.required)
                == (type(theirs), theirs.dest, theirs.default, theirs.choices, theirs.type, theirs.metavar,
                    theirs.required)), flag
        if flag != "--seed":  # a batch's seed is every submission's: each command says what it is
            assert ours.help == theirs.help, flag


def test_grade_and_batch_turn_the_same_arguments_into_the_same_choices():
    parser = build_parser()
    grade = parser.parse_args(["grade", "a1_fc_numpy"])
    batch = parser.parse_args(["batch", "a1_fc_numpy", "subs", "--out", "out"])
    defaults = grading_choices(GradingChoices())
    assert set(defaults) - set(choices_from_arguments(grade)) == {"hints"}   # no flag: grading explains failures
    assert choices_from_arguments(grade) == choices_from_arguments(batch) == {
        name: value for name, value in defaults.items() if name != "hints"}
    grade = parser.parse_args(["grade", "a1_fc_numpy", *GIVEN])
    batch = parser.parse_args(["batch", "a1_fc_numpy", "subs", "--out", "out", *GIVEN])
    assert choices_from_arguments(grade) == choices_from_arguments(batch) != choices_from_arguments(
        parser.parse_args(["grade", "a1_fc_numpy"]))
    assert (grade.mode, grade.seed) == (batch.mode, batch.seed) == ("official", 7)


def test_every_options_class_keeps_the_shared_defaults():
    from grader.batch.job import JobSettings
    from grader.batch.run import BatchOptions
    from grader.engine.grading import GradeOptions

    shared = {f.name: f.default for f in dataclasses.fields(GradingChoices)}
    for options in (GradeOptions, JobSettings, BatchOptions):
        assert issubclass(options, GradingChoices)
        assert {f.name: f.default for f in dataclasses.fields(options) if f.name in shared} == shared, options


def test_the_export_offers_the_devices_grading_knows():
    gradescope = commands_of(commands_of(build_parser())["export"])["gradescope"]
    assert tuple(flags_of(gradescope)["--device"].choices) == DEVICES


def test_a_worker_memory_below_what_the_framework_needs_is_a_usage_error(tmp_path, capsys):
    # At 200 MB the torch assignment's reference itself scored 0, each task an "error" of its code.
    assert main(["grade", "a2_cnn_torch", "--no-zip", "--memory", "200", "--only", "linear.forward"]) == 2
    assert "--memory 200 is less than the 384 MB a worker of a2_cnn_torch needs" in capsys.readouterr().err
    assert main(["export", "gradescope", "a2_cnn_torch", "--memory", "100", "--out", str(tmp_path / "ag.zip")]) == 2
    assert not (tmp_path / "ag.zip").exists()


def test_grading_someone_elses_folder_officially_writes_no_zip_where_it_runs(tmp_path):
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli("grade", "a1_fc_numpy", "--submission", str(folder), "--only", "relu.forward", "--mode", "official",
                   cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(work.iterdir()) == [] and "Submission zip" not in done.stdout
