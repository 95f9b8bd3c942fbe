"""`grader grade --ci` and what it writes under GitHub Actions: the job summary, error annotations at
the student's file and line, the GitHub Classroom result and JUnit XML; and `./grade.sh --ci`."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import pytest

from grader.cli import main
from grader.report import github
from grader.results import GradingResult, Outcome, TaskResult
from hostile_text import (HOSTILE, assert_inert_text, assert_printable, assert_valid_json, assert_valid_junit,
                          hostile_layers, unescaped_pipes)
from support import A1, PROJECT_ROOT, a1, make_submission

# relu_forward raises, with a message holding what workflow commands and markdown tables must escape.
RAISE = "    raise ValueError('bad: a|b, c\\nd 100%')\n"
WRONG_MESSAGE = "your code raised ValueError: bad: a|b, c\nd 100%"
CLASSROOM_KEYS = {"version", "status", "max_score", "tests"}
CLASSROOM_TEST_KEYS = {"name", "status", "score", "message", "test_code", "filename", "line_no", "duration"}
ANSI = re.compile(r"\x1b\[")


@dataclass
class Run:
    status: int
    stdout: str
    workspace: Path
    folder: Path
    stderr: str = ""

    @property
    def summary(self) -> str:
        path = self.workspace / "summary.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    @property
    def output(self) -> str:
        path = self.workspace / "output.txt"
        return path.read_text() if path.exists() else ""

    def commands(self, kind: Optional[str] = None) -> list[tuple[str, dict[str, str], str]]:
        return [c for c in (parse_command(line) for line in self.stdout.splitlines()) if c and kind in (None, c[0])]

    def classroom(self) -> dict:
        lines = [line for line in self.output.splitlines() if line.startswith("result=")]
        assert len(lines) == 1, self.output
        return json.loads(base64.b64decode(lines[0][len("result="):], validate=True).decode("utf-8"))


def unescape(text: str) -> str:
    return (text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",")
            .replace("%25", "%"))


def parse_command(line: str) -> Optional[tuple[str, dict[str, str], str]]:
    """A workflow command as the runner reads it: properties end at the first `::`, split at `,`."""
    match = re.fullmatch(r"::(\w+)(?: ([^:]*))?::(.*)", line)
    if not match:
        return None
    properties = dict(p.split("=", 1) for p in match.group(2).split(",")) if match.group(2) else {}
    return match.group(1), properties, match.group(3)


def grade_in_actions(workspace: Path, folder: Path, *arguments: str, ci_flag: bool = True, ci_env: bool = False,
                     actions: bool = True) -> Run:
    """Runs `grader grade` in this process with the environment of a GitHub Actions step."""
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_WORKSPACE", "NO_COLOR"):
            patch.delenv(name, raising=False)
        patch.setenv("FORCE_COLOR", "1")  # a CI log that claims colours: --ci must still write none
        if ci_env:
            patch.setenv("CI", "true")
        if actions:
            patch.setenv("GITHUB_ACTIONS", "true")
            patch.setenv("GITHUB_STEP_SUMMARY", str(workspace / "summary.md"))
            patch.setenv("GITHUB_OUTPUT", str(workspace / "output.txt"))
            patch.setenv("GITHUB_WORKSPACE", str(workspace))
        patch.chdir(workspace)
        argv = ["grade", A1, "--submission", str(folder), "--mode", "official", "--no-zip", "--seed", "7",
                *arguments, *(["--ci"] if ci_flag else [])]
        stderr = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(argv)
    return Run(status, stdout.getvalue(), workspace, folder, stderr.getvalue())


def wrong_layers() -> str:
    text = (a1().reference_directory / "layers.py").read_text()
    anchor = "    out = np.maximum(x, 0)\n"
    assert text.count(anchor) == 1
    return text.replace(anchor, anchor + RAISE)


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


@pytest.fixture(scope="module")
def wrong(tmp_path_factory) -> Run:
    """affine.* pass (5 points), relu.* raise (3 points lost); the folder's name holds a comma."""
    workspace = tmp_path_factory.mktemp("wrong")
    folder = make_submission(workspace / "work, 1" / A1, a1(), "reference", {"layers.py": wrong_layers()})
    return grade_in_actions(workspace, folder, "--only", "[ar][fe]*", "--fail-under", "6")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Run:
    """Twelve tasks not implemented: more than GitHub shows annotations of."""
    workspace = tmp_path_factory.mktemp("stubs")
    folder = make_submission(workspace / "student", a1(), "stubs")
    return grade_in_actions(workspace, folder, "--only", "[adrs][feiorv]*")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Run:
    workspace = tmp_path_factory.mktemp("reference")
    folder = make_submission(workspace / "student", a1(), "reference")
    return grade_in_actions(workspace, folder, "--only", "relu.*")


# --- the job summary -------------------------------------------------------------------------------

def test_the_job_summary_has_the_score_and_a_row_per_task_with_its_points_outcome_and_reason(wrong, reference):
    summary = wrong.summary
    assert summary.startswith(f"## {A1}: 5 / 8 points\n")
    rows = [line for line in summary.splitlines() if line.startswith("| ")][2:]  # past the header
    reason = "your code raised ValueError: bad: a\\|b, c d 100%"  # | escaped, the newline gone
    assert rows == [
        "| affine.forward | 2/2 | passed | 4 checks passed |",
        "| affine.backward | 3/3 | passed | 4 checks passed |",
        f"| relu.forward | 0/1 | error | {reason} |",
        f"| relu.backward | 0/2 | error | {reason} |",
    ]
    assert "### Failures" in summary and "#### relu.backward: error (0/2)" in summary
    assert "affine.forward: " not in summary.split("### Failures")[1]  # details of failures only
    assert reference.summary.startswith(f"## {A1}: 3 / 3 points\n") and "### Failures" not in reference.summary


def _result_with_detail(detail: str, tasks: int = 1) -> GradingResult:
    task = TaskResult("relu.forward", "ReLU, forward pass", 1.0, 0.0, Outcome.FAILED, "out differs", detail=detail)
    return GradingResult(A1, "official", 1, tuple(replace(task, task_id=f"t{i}") for i in range(tasks)), 1.0, "test")


@pytest.mark.parametrize("character", ["x", "é"])
def test_a_huge_failure_detail_is_cut_with_a_visible_line_under_the_limit(tmp_path, character):
    huge = character * (2 * github.SUMMARY_LIMIT_BYTES)
    summary_path = tmp_path / "summary.md"
    github.write_job_summary(_result_with_detail(huge, tasks=3), summary_path)
    written = summary_path.read_bytes()
    assert len(written) < github.SUMMARY_LIMIT_BYTES
    text = written.decode("utf-8")  # cut on a character boundary
    assert text.rstrip().splitlines()[-1].startswith("... truncated")
    assert text.count("#### t0: failed") == 1 and "#### t1" not in text
    assert text.count(character) > github.SUMMARY_LIMIT_BYTES // 4 // len(character.encode())  # filled, not dropped
    # a small detail is shown whole, without the line
    small = github.job_summary(_result_with_detail("the worst element"))
    assert "the worst element" in small and "truncated" not in small


def test_what_the_step_already_wrote_counts_toward_the_limit(tmp_path):
    summary_path = tmp_path / "summary.md"
    summary_path.write_text("x" * (github.SUMMARY_LIMIT_BYTES - 5000))
    github.write_job_summary(_result_with_detail("y" * 10000), summary_path)
    text = summary_path.read_text()
    assert len(text.encode()) < github.SUMMARY_LIMIT_BYTES and "truncated" in text
    assert f"## {A1}: 0 / 1 points" in text


# --- error annotations -----------------------------------------------------------------------------

def test_failures_are_annotated_at_the_students_file_and_line_relative_to_the_workspace(wrong):
    errors = wrong.commands("error")
    assert [unescape(p["title"]) for _, p, _ in errors] == [  # most points lost first
        "relu.backward: error (0/2 points)", "relu.forward: error (0/1 points)"]
    layers = wrong.folder / "layers.py"
    for _, properties, message in errors:
        assert properties["file"] == "work%2C 1/a1_fc_numpy/layers.py"
        assert (wrong.workspace / unescape(properties["file"])).samefile(layers)
        assert int(properties["line"]) == line_of(layers, "raise ValueError('bad")
        assert unescape(message) == WRONG_MESSAGE
        assert "\n" not in message and "%0A" in message and "100%25" in message
    assert not wrong.commands("notice")  # nothing left out


def test_at_most_ten_errors_are_annotated_and_a_notice_counts_the_rest(stubs):
    errors, notices = stubs.commands("error"), stubs.commands("notice")
    assert len(errors) == github.MAX_ERROR_ANNOTATIONS and len(notices) == 1
    assert notices[0][2].startswith("2 more tasks lost points")
    lost = [float(re.search(r"\(0/(\d+) points\)", unescape(p["title"])).group(1)) for _, p, _ in errors]
    assert lost == sorted(lost, reverse=True)
    for _, properties, _ in errors:  # the stub's raise NotImplementedError in the student's copy
        path = stubs.workspace / unescape(properties["file"])
        assert path.parent == stubs.folder
        assert "NotImplementedError" in path.read_text().splitlines()[int(properties["line"]) - 1]


def test_a_submission_that_loses_no_points_gets_no_annotation(reference):
    assert reference.status == 0 and reference.commands() == []


def test_a_file_that_does_not_compile_is_annotated_at_its_line(tmp_path):
    text = (a1().reference_directory / "layers.py").read_text().replace(
        "    out = np.maximum(x, 0)\n", "    out = np.maximum(x, 0\n")
    folder = make_submission(tmp_path / "student", a1(), "reference", {"layers.py": text})
    run = grade_in_actions(tmp_path, folder, "--only", "relu.forward", "--fail-under", "0")
    assert run.status == 0  # 0 points is not under 0
    [(_, properties, message)] = run.commands("error")
    assert "SyntaxError" in unescape(message)
    assert properties["file"] == "student/layers.py"
    assert int(properties["line"]) == line_of(folder / "layers.py", "out = np.maximum(x, 0")


def test_workflow_command_escaping_follows_the_toolkit():
    assert github.escape_data("50%\r\nnext: a, b") == "50%25%0D%0Anext: a, b"
    assert github.escape_property("a: b, 50%\n") == "a%3A b%2C 50%25%0A"
    assert github.workflow_command("error", "m", file=None, line=None, title="") == "::error::m"


# --- the GitHub Classroom result ------------------------------------------------------------------

def test_the_classroom_result_has_the_reporters_schema_and_partial_points(wrong):
    result = wrong.classroom()
    assert set(result) == CLASSROOM_KEYS and result["version"] == 1
    assert result["status"] == "error" and result["max_score"] == 8
    tests = result["tests"]
    assert all(set(t) == CLASSROOM_TEST_KEYS for t in tests)
    assert [(t["name"].split(":")[0], t["status"], t["score"]) for t in tests] == [
        ("affine.forward", "pass", 2), ("affine.backward", "pass", 3),
        ("relu.forward", "error", 0), ("relu.backward", "error", 0)]
    assert sum(t["score"] for t in tests) == 5  # what the reporter adds up
    relu = tests[2]
    assert relu["message"] == f"error: {WRONG_MESSAGE}"
    assert relu["filename"] == f"work, 1/{A1}/layers.py"
    assert relu["line_no"] == line_of(wrong.folder / "layers.py", "raise ValueError('bad")
    assert tests[0]["filename"] == "" and tests[0]["line_no"] == 0
    assert all(isinstance(t["duration"], int) and t["duration"] >= 0 for t in tests)
    assert relu["test_code"] == f"grader grade {A1} --only 'relu.forward'"


def test_the_classroom_status_is_pass_only_when_every_task_passed(reference, stubs):
    passed = reference.classroom()
    assert passed["status"] == "pass" and passed["max_score"] == 3
    assert [(t["status"], t["score"]) for t in passed["tests"]] == [("pass", 1), ("pass", 2)]
    missing = stubs.classroom()
    assert missing["status"] == "fail" and len(missing["tests"]) == 12
    assert {(t["status"], t["score"]) for t in missing["tests"]} == {("fail", 0)}


# --- CI mode ---------------------------------------------------------------------------------------

def test_ci_writes_junit_by_default_plain_text_and_keeps_fail_under(wrong):
    assert wrong.status == 1  # 5 points under --fail-under 6
    assert (wrong.workspace / "grader-junit.xml").read_bytes().startswith(b"<?xml")
    assert not ANSI.search(wrong.stdout), "colour codes under --ci"
    assert "Score: 5 / 8" in wrong.stdout


def test_ci_true_alone_switches_ci_mode_and_without_it_nothing_is_written(tmp_path):
    folder = make_submission(tmp_path / "student", a1(), "reference")
    on = tmp_path / "on"
    on.mkdir()
    run = grade_in_actions(on, folder, "--only", "relu.forward", ci_flag=False, ci_env=True)
    assert (on / "grader-junit.xml").is_file() and run.summary.startswith(f"## {A1}: 1 / 1 points")
    assert run.classroom()["status"] == "pass" and not ANSI.search(run.stdout)
    off = tmp_path / "off"
    off.mkdir()
    run = grade_in_actions(off, folder, "--only", "relu.forward", ci_flag=False, ci_env=False)
    assert not (off / "grader-junit.xml").exists() and run.summary == "" and run.output == ""
    assert ANSI.search(run.stdout)  # FORCE_COLOR does colour a run that is not for CI


def test_ci_outside_github_actions_writes_junit_where_asked_and_nothing_for_github(tmp_path):
    folder = make_submission(tmp_path / "student", a1(), "reference")
    run = grade_in_actions(tmp_path, folder, "--only", "relu.forward", "--junit", "reports/j.xml", actions=False)
    assert (tmp_path / "reports" / "j.xml").is_file() and not (tmp_path / "grader-junit.xml").exists()
    assert run.commands() == [] and not ANSI.search(run.stdout)


# --- ./grade.sh --ci ---------------------------------------------------------------------------------

@pytest.fixture()
def fake_checkout(tmp_path) -> Path:
    """grade.sh next to a set-up .venv whose python records the arguments of `python -m grader` and
    lists two started assignments for `python -m grader.delivery.touched`."""
    shutil.copy(PROJECT_ROOT / "grade.sh", tmp_path / "grade.sh")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(
        '#!/bin/sh\n'
        'if [ "$*" = "-m grader.delivery.touched" ]; then printf "a1_fc_numpy\\na2_cnn_torch\\n"; exit 0; fi\n'
        '[ "$1 $2" = "-m grader" ] || exit 9\n'
        'shift 2\necho "$*" >> "$(dirname "$0")/../../calls.txt"\n')
    (bin_dir / "python").chmod(0o755)
    stamp = tmp_path / ".venv" / ".installed"
    stamp.write_text("test\n")
    past = os.stat(tmp_path / "pyproject.toml").st_mtime - 100
    os.utime(tmp_path / "pyproject.toml", (past, past))
    return tmp_path


def run_grade_sh(checkout: Path, *arguments: str) -> list[str]:
    calls = checkout / "calls.txt"
    calls.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_EXTRAS", "CI")}
    completed = subprocess.run(["bash", str(checkout / "grade.sh"), *arguments], env=env, capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "Setting up" not in completed.stderr  # the fake .venv counts as set up
    return calls.read_text().splitlines()


@pytest.mark.parametrize("arguments, expected", [
    (["--ci"], ["grade a1_fc_numpy --ci", "grade a2_cnn_torch --ci"]),
    (["--ci", "--only", "relu.*"], ["grade a1_fc_numpy --only relu.* --ci", "grade a2_cnn_torch --only relu.* --ci"]),
    (["a1_fc_numpy", "--ci"], ["grade a1_fc_numpy --ci"]),
    (["--ci", "a1_fc_numpy", "--fail-under", "5"], ["grade a1_fc_numpy --fail-under 5 --ci"]),
    (["a1_fc_numpy"], ["grade a1_fc_numpy"]),
    ([], ["grade a1_fc_numpy", "grade a2_cnn_torch"]),
])
def test_grade_sh_passes_ci_on_wherever_it_is_given(fake_checkout, arguments, expected):
    assert run_grade_sh(fake_checkout, *arguments) == expected


# --- a student's text that tries to break them ------------------------------------------------------

def test_a_hostile_exception_leaves_every_report_written_valid_and_inert(tmp_path):
    """relu_forward prints and raises text with a lone surrogate, terminal escapes, control characters,
    markup, HTML and workflow commands, from a class whose name holds a command too."""
    folder = make_submission(tmp_path / "student", a1(), "reference", {"layers.py": hostile_layers(a1())})
    run = grade_in_actions(tmp_path, folder, "--only", "relu.*,affine.forward", "--json", "results.json")
    assert run.status == 0, run.stderr
    assert run.stderr == ""  # no writer failed
    # The log: the report and the annotations, whose only commands are the grader's own two.
    commands = [line for line in run.stdout.splitlines() if line.lstrip().startswith("::")]
    assert [parse_command(line)[0] for line in commands] == ["error", "error"], commands
    assert_inert_text("\n".join(line for line in run.stdout.splitlines() if line not in commands), "stdout")
    for _, properties, message in run.commands("error"):
        assert_inert_text(unescape(message), "annotation")
        assert unescape(properties["title"]).startswith("relu.")
    assert "\\::error::forged" in run.stdout and "[bold]x[/] [/]" in run.stdout  # shown, as text
    # The job summary: two rows of four cells for the relu tasks, no HTML outside the fenced details.
    summary = run.summary
    rows = [line for line in summary.splitlines() if line.startswith("| relu.")]
    assert len(rows) == 2 and all(unescaped_pipes(row) == 5 for row in rows), rows
    assert "<img" not in re.sub(r"(?ms)^(`{3,})text$.*?^\1$", "", summary), summary
    assert_printable(summary, "summary")  # a summary is no log: `::` and `##[` are only text there
    # The Classroom result, the JUnit XML and the JSON result: valid, with the student's words.
    for test in run.classroom()["tests"]:
        assert_inert_text(test["message"], "classroom")
    junit = assert_valid_junit(tmp_path / "grader-junit.xml")
    assert "::error::forged" in junit.find("testcase[@name='relu.forward']/error").text
    results = assert_valid_json(tmp_path / "results.json")
    relu = next(t for t in results["tests"] if t["extra_data"]["task"] == "relu.forward")
    assert HOSTILE.replace("\ud800", "\ufffd").splitlines()[0] in relu["output"]  # raw, but valid
    assert results["score"] == 2


def test_a_report_that_cannot_be_written_is_noted_and_the_others_are_written(tmp_path):
    folder = make_submission(tmp_path / "student", a1(), "reference", {"layers.py": wrong_layers()})
    (tmp_path / "taken").mkdir()  # --junit names a folder: that writer fails
    run = grade_in_actions(tmp_path, folder, "--only", "relu.forward", "--json", "results.json", "--junit", "taken")
    assert run.status == 2  # a step that reads the JUnit XML must not pass on a run that wrote none
    assert "grader: could not write the JUnit XML taken: IsADirectoryError" in run.stderr
    assert assert_valid_json(tmp_path / "results.json")["tests"][0]["extra_data"]["outcome"] == "error"
    assert run.summary.startswith(f"## {A1}: 0 / 1 points") and run.classroom()["status"] == "error"
    assert len(run.commands("error")) == 1 and "Score: 0 / 1" in run.stdout


def test_a_skipped_task_is_no_failure_in_the_classroom_result():
    from grader.report.github import classroom_result

    passed = TaskResult("relu.forward", "ReLU", 2, 2, Outcome.PASSED, "2 checks passed")
    skipped = TaskResult("net.cifar10", "GPU net", 5, 0, Outcome.SKIPPED,
                         "this task trains on a GPU and this machine has none: it is not graded here", kind="training")
    result = GradingResult(A1, "public", 0, (passed, skipped), 1.0, "test")
    shown = classroom_result(result, Path("."))
    assert shown["status"] == "pass" and shown["max_score"] == 2
    assert [t["name"].split(":")[0] for t in shown["tests"]] == ["relu.forward"]
    failed = replace(passed, points=0, outcome=Outcome.FAILED)  # teeth: a real failure still fails
    assert classroom_result(replace(result, tasks=(failed, skipped)), Path("."))["status"] == "fail"
