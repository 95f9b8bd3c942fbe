"""The result in GitHub Actions: the job summary, error annotations and a GitHub Classroom result.

`grader grade A --ci` (on by itself where the environment has `CI=true`, as every GitHub Actions
job has) writes these when `GITHUB_ACTIONS=true`:

- the job summary: markdown appended to the file `$GITHUB_STEP_SUMMARY` names: the score, a table
  of the tasks and, while the summary stays under GitHub's 1 MiB per step, the failures' details;
- error annotations on stdout (`::error file=...,line=...,title=...::message`) for the worst
  failures, at most 10, at the student's file and line where the failure has one, then a
  `::notice::` counting the failures left out;
- a GitHub Classroom result: the step's output `result` (a line `result=<base64>` appended to
  `$GITHUB_OUTPUT`), base64 of the JSON that Classroom's grading reporter
  (`classroom-resources/autograding-grading-reporter`) reads from each grading step, in the shape
  its own graders (`autograding-io-grader`, `autograding-command-grader`) write::

      {"version": 1, "status": "pass" | "fail" | "error", "max_score": <points>,
       "tests": [{"name", "status", "score", "message", "test_code", "filename", "line_no",
                  "duration"}]}

  with one test per task: `score` the points it earned (partial points add up to the grade),
  `duration` in milliseconds, `filename`/`line_no` the student's file and line where known ("" and
  0 otherwise). The reporter adds the `score` of every test and shows the total out of `max_score`;
  it marks the job failed when the status is `fail` or `error`.

Wiring the result to the reporter: give the grading step an `id`, pass its output to the reporter in
an environment variable named after that id in capitals followed by `_RESULTS`, and list the id in
the reporter's input `runners` (comma-separated, one per grading step). GitHub Classroom reads the
points only from a workflow named `Autograding Tests` whose single job is `run-autograding-tests`.
`checks: write` is the one write permission, and the reporter's: it writes the points into the
job's check run, which is where Classroom reads them; the grading step itself needs none (the
student's own workflow, `.github/workflows/grade.yml` of the bundle, asks for no permission):

    name: Autograding Tests
    on: [push, workflow_dispatch]
    permissions:
      checks: write
      actions: read
      contents: read
    jobs:
      run-autograding-tests:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - name: Grade a1_fc_numpy
            id: a1
            run: ./grade.sh a1_fc_numpy --ci --no-zip
          - name: Autograding Reporter
            uses: classroom-resources/autograding-grading-reporter@v1
            env:
              A1_RESULTS: "${{ steps.a1.outputs.result }}"
            with:
              runners: a1

One grading step per assignment: a step that grades several assignments (`./grade.sh --ci` alone)
writes one `result` line each, and the step's output keeps the last.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from grader.report.markdown import code_fence, table_cell
from grader.results import CheckResult, GradingResult, Outcome, TaskResult
from grader.untrusted_text import log_safe, printable

SUMMARY_LIMIT_BYTES = 1024 * 1024   # GitHub's limit on one step's job summary
MAX_ERROR_ANNOTATIONS = 10          # GitHub shows at most 10 error annotations of a step
TRUNCATED_LINE = "\n... truncated: a step's job summary is limited to 1 MiB; the log has every detail\n"
_CLASSROOM_MESSAGE_CHARS = 1000     # the reporter gets the result in an environment variable: keep it small
_REASON_CHARS = 300
_MESSAGE_CHARS = 4000

# Failures that are the student's code doing something wrong come before the ones not written yet.
_WORST = (Outcome.ERROR, Outcome.TIMEOUT, Outcome.FAILED)
_CLASSROOM_STATUS = {
    Outcome.PASSED: "pass", Outcome.FAILED: "fail", Outcome.NOT_IMPLEMENTED: "fail",
    Outcome.ERROR: "error", Outcome.TIMEOUT: "error",
}


def ci_mode(flag: bool, env: Mapping[str, str]) -> bool:
    """`--ci`, or a CI service that says so (GitHub Actions, GitLab CI and others set CI=true)."""
    return flag or env.get("CI", "").strip().lower() == "true"


def in_github_actions(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS", "").strip().lower() == "true"


# --- where a failure is in the student's files ---------------------------------------------------

@dataclass(frozen=True)
class StudentFiles:
    """Where the checks imported the student's files from (a scratch copy) and where they are in the
    repository, so that a location in the copy names the file the student edits."""

    graded: Optional[Path]        # the scratch folder the worker imported them from
    source: Optional[Path]        # the student's folder; None for a zip
    names: tuple[str, ...]        # the assignment's student files

    def locate(self, check: CheckResult) -> Optional[tuple[Path, int]]:
        if self.source is None:
            return None
        if check.location is not None:
            path, line = Path(check.location[0]), int(check.location[1])
            if path.name in self.names and self._is_graded_copy(path.parent):
                return self.source / path.name, line
            if path.name in self.names and _same_directory(path.parent, self.source):
                return path, line
        # A file that does not compile fails in the importer: its message names the file and line.
        match = _SYNTAX_ERROR.search(check.message)
        if match and match.group(1) in self.names:
            return self.source / match.group(1), int(match.group(2))
        return None

    def _is_graded_copy(self, directory: Path) -> bool:
        return self.graded is not None and _same_directory(directory, self.graded)


_SYNTAX_ERROR = re.compile(r"(?:SyntaxError|IndentationError|TabError): .*\(([^()/\\]+\.py), line (\d+)\)\s*$")


def _same_directory(a: Path, b: Path) -> bool:
    if str(a) == str(b):
        return True
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def task_location(task: TaskResult, files: Optional[StudentFiles]) -> Optional[tuple[Path, int]]:
    """The student's file and line of the task's worst check that has one."""
    if files is None:
        return None
    failed = [c for c in task.checks if c.outcome is not Outcome.PASSED]
    ordered = [c for c in failed if c.outcome is task.outcome] + [c for c in failed if c.outcome is not task.outcome]
    for check in ordered:
        where = files.locate(check)
        if where is not None:
            return where
    return None


def relative_to_workspace(path: Path, workspace: Path) -> Optional[str]:
    """The path as GitHub places annotations: relative to the repository root, with `/`."""
    for candidate, root in ((path, workspace), (Path(os.path.realpath(path)), Path(os.path.realpath(workspace)))):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


# --- failures, worst first ------------------------------------------------------------------------

def failures(result: GradingResult) -> list[TaskResult]:
    """Tasks that lost points through the submission (a skipped task could not run here), worst
    first: errors, timeouts and failures before tasks not implemented, most points lost first."""
    lost = [(i, t) for i, t in enumerate(result.tasks) if t.outcome not in (Outcome.PASSED, Outcome.SKIPPED)]
    lost.sort(key=lambda it: (it[1].outcome not in _WORST, -(it[1].max_points - it[1].points), it[0]))
    return [t for _, t in lost]


# --- error annotations ----------------------------------------------------------------------------

def escape_data(text: str) -> str:
    """A workflow command's message: `%`, CR and LF are encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as a message, and `:` and `,` too (they delimit)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: Any) -> str:
    """One line: the student's text in it is printable and escaped, so it neither ends the line nor
    colours the log; the message is also `log_safe` (grader.untrusted_text), so that nothing in it
    reads as a command should the runner ever look past the line's own."""
    shown = [f"{k}={escape_property(printable(str(v)))}" for k, v in properties.items() if v not in (None, "")]
    return f"::{command}{' ' + ','.join(shown) if shown else ''}::{escape_data(log_safe(message))}"


def annotations(result: GradingResult, workspace: Path, files: Optional[StudentFiles] = None,
                limit: int = MAX_ERROR_ANNOTATIONS) -> list[str]:
    """Workflow commands, one a line: an error annotation for each of the `limit` worst failures,
    then a notice counting the others. Nothing for a submission that lost no points."""
    lines = []
    ranked = failures(result)
    for task in ranked[:limit]:
        title = f"{task.task_id}: {task.outcome.value} ({task.points:g}/{task.max_points:g} points)"
        where = task_location(task, files)
        file = relative_to_workspace(where[0], workspace) if where is not None else None
        lines.append(workflow_command("error", _annotation_message(task), file=file,
                                      line=where[1] if file is not None else None, title=title))
    rest = len(ranked) - limit
    if rest > 0:
        lines.append(workflow_command(
            "notice", f"{rest} more task{'s' * (rest > 1)} lost points; the job summary and the log list them all",
            title=f"{result.assignment}: {rest} more failing task{'s' * (rest > 1)}"))
    return lines


def _annotation_message(task: TaskResult) -> str:
    message = task.message or task.outcome.value
    hints = sorted({c.hint for c in task.checks if c.hint})
    text = "\n".join([message, *(f"hint: {h}" for h in hints)])
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + " ..."


# --- the job summary ------------------------------------------------------------------------------

def _detail_block(task: TaskResult, text: str, fence: str) -> str:
    return (f"\n#### {table_cell(task.task_id)}: {task.outcome.value} ({task.points:g}/{task.max_points:g})\n\n"
            f"{fence}text\n{text}\n{fence}\n")


def _cut_to_bytes(text: str, size: int) -> str:
    return text.encode("utf-8")[:max(size, 0)].decode("utf-8", errors="ignore")


def job_summary(result: GradingResult, limit: int = SUMMARY_LIMIT_BYTES) -> str:
    """Markdown under `limit` bytes: heading with the score, the table of tasks, then the details of
    the failures for as long as they fit, cut with a visible line where they do not."""
    counts = ", ".join(f"{result.count(o)} {o.value}" for o in Outcome if result.count(o))
    head = [f"## {table_cell(result.assignment)}: {result.score:g} / {result.max_score:g} points\n\n",
            f"{result.mode} mode, seed {result.seed}, graded in {result.execution_time_s:.1f} s"
            f"{': ' + counts if counts else ''}\n\n",
            "| task | points | outcome | reason |\n| --- | ---: | --- | --- |\n"]
    head += [f"| {table_cell(t.task_id)} | {t.points:g}/{t.max_points:g} | {t.outcome.value} "
             f"| {table_cell(t.message, _REASON_CHARS)} |\n" for t in result.tasks]
    if result.output:
        head.append(f"\n{table_cell(result.output, _MESSAGE_CHARS)}\n")
    text = "".join(head)
    room = limit - len(TRUNCATED_LINE.encode()) - 1
    if len(text.encode()) > room:
        return _cut_to_bytes(text, room - 1).rsplit("\n", 1)[0] + "\n" + TRUNCATED_LINE
    detailed = [t for t in failures(result) if t.detail]
    if not detailed:
        return text
    parts, used = [text, "\n### Failures\n"], len(text.encode()) + len("\n### Failures\n")
    for task in detailed:
        detail = printable(task.detail)  # inside a fence Markdown shows it as it is: no HTML, no escapes
        fence = code_fence(detail)
        block = _detail_block(task, detail, fence)
        size = len(block.encode())
        if used + size <= room:
            parts.append(block)
            used += size
            continue
        space = room - used - len(_detail_block(task, "", fence).encode())
        if space > 0:
            parts.append(_detail_block(task, _cut_to_bytes(detail, space), fence))
        parts.append(TRUNCATED_LINE)
        break
    return "".join(parts)


def write_job_summary(result: GradingResult, path: Path, limit: int = SUMMARY_LIMIT_BYTES) -> None:
    """Appends to the step's summary file, keeping what is already there within the limit."""
    existing = path.stat().st_size if path.exists() else 0
    separator = "\n" if existing else ""
    text = job_summary(result, limit=max(limit - existing - len(separator), 0))
    with path.open("a", encoding="utf-8") as summary:
        summary.write(separator + text)


# --- the GitHub Classroom result ------------------------------------------------------------------

def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _task_milliseconds(task: TaskResult) -> int:
    if task.training is not None and task.training.train_seconds is not None:
        return int(round(task.training.train_seconds * 1000))
    return int(round(sum(c.duration_s for c in task.checks) * 1000))


def classroom_result(result: GradingResult, workspace: Path, files: Optional[StudentFiles] = None) -> dict[str, Any]:
    """The JSON a grading step of GitHub Classroom's reporter hands over: one test per task graded.
    A task skipped here (a GPU task on a CPU runner, training data this runner cannot have) is no
    failure: the reporter knows only pass, fail and error, so it is left out, its points too, and the
    job summary says why."""
    tests = []
    graded = [t for t in result.tasks if t.outcome is not Outcome.SKIPPED]
    for task in graded:
        status = _CLASSROOM_STATUS[task.outcome]
        where = task_location(task, files) if status != "pass" else None
        filename = relative_to_workspace(where[0], workspace) if where is not None else None
        message = f"{task.outcome.value}: {task.message}" if task.message else task.outcome.value
        hints = sorted({c.hint for c in task.checks if c.hint})
        # The reporter prints the message in its own step's log.
        message = log_safe("\n".join([message, *(f"hint: {h}" for h in hints)]))
        if len(message) > _CLASSROOM_MESSAGE_CHARS:
            message = message[:_CLASSROOM_MESSAGE_CHARS] + " ..."
        tests.append({
            "name": f"{task.task_id}: {task.title}",
            "status": status,
            "score": _number(task.points),
            "message": message,
            "test_code": f"grader grade {result.assignment} --only '{task.task_id}'",
            "filename": filename or "",
            "line_no": where[1] if filename else 0,
            "duration": _task_milliseconds(task),
        })
    statuses = {t["status"] for t in tests}
    status = "error" if "error" in statuses else "fail" if "fail" in statuses or not tests else "pass"
    return {"version": 1, "status": status, "max_score": _number(sum(t.max_points for t in graded)), "tests": tests}


def encode_classroom_result(result: dict[str, Any]) -> str:
    """Base64 of the compact JSON, as the reporter decodes it (UTF-8, standard alphabet, one line)."""
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def write_classroom_output(result: GradingResult, path: Path, workspace: Path,
                           files: Optional[StudentFiles] = None) -> str:
    """Appends `result=<base64>` to the step's output file; returns the value."""
    value = encode_classroom_result(classroom_result(result, workspace, files))
    with path.open("a", encoding="utf-8") as output:
        output.write(f"result={value}\n")
    return value


# --- all of it ------------------------------------------------------------------------------------

def workspace_of(env: Mapping[str, str], default: Path) -> Path:
    return Path(env["GITHUB_WORKSPACE"]) if env.get("GITHUB_WORKSPACE") else default


def github_writers(result: GradingResult, env: Mapping[str, str], *, files: Optional[StudentFiles] = None,
                   default_workspace: Path = Path("."),
                   print_line: Callable[[str], None] = print) -> list[tuple[str, Callable[[], None]]]:
    """The job summary and the Classroom result where the environment names their files, and the
    annotation commands, printed with `print_line`: each a writer of its own (grader.report.write_each)."""
    workspace = workspace_of(env, default_workspace)
    writers: list[tuple[str, Callable[[], None]]] = []
    if env.get("GITHUB_STEP_SUMMARY"):
        summary = Path(env["GITHUB_STEP_SUMMARY"])
        writers.append((f"the job summary {summary}", lambda: write_job_summary(result, summary)))
    if env.get("GITHUB_OUTPUT"):
        output = Path(env["GITHUB_OUTPUT"])
        writers.append((f"the GitHub Classroom result {output}",
                        lambda: write_classroom_output(result, output, workspace, files)))

    def print_annotations() -> None:
        for line in annotations(result, workspace, files):
            print_line(line)

    return writers + [("the error annotations", print_annotations)]
