"""Grading one Gradescope submission: what `run_autograder` of an exported autograder runs.

Gradescope lays out `/autograder` as `source/` (the autograder zip, extracted), `submission/` (the
student's files), `submission_metadata.json` and `results/`; this module finds the student's files
in `submission/`, grades them in official mode with `grader grade` (a child process, so that even a
grader that dies leaves this one to report it), reads the child's result back and writes
`results/results.json` with a leaderboard and what the metadata says of the submission, through
grader.report.gradescope like every result. Whatever happens, it leaves a valid `results.json`: a
submission that cannot be graded is a result too, scoring 0 with the reason in `output`.

Before grading it proves the sandbox: `grader selfcheck --sandbox LEVEL` for each level that keeps
the reference and the network out of the worker's reach, strongest first, and grades at the first
whose promises all hold (`extra_data.sandbox`). Where none holds, or the grader itself refuses,
nothing is graded: the result scores 0, its `output` says what the course staff must fix,
`extra_data.sandbox` is null and `extra_data.refused` the reason. It never grades unprotected.

    python -m grader.delivery.gradescope_runner --assignment A [--device auto|cpu|cuda] [--data synthetic|auto]
                                       [--time-limit SECONDS] [--prepare-data]

Environment:
  AUTOGRADER_ROOT   the folder laid out as Gradescope's /autograder (default /autograder)
  GRADER_ONLY       grade only the tasks whose id matches this glob (testing, self-hosted use)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from grader import __version__
from grader.cli import EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE
from grader.files import find_student_files
from grader.options import DEVICES, EXPORT_DATA_CHOICES, EXPORT_GPU_TASKS
from grader.report.gradescope import LeaderboardEntry, read_results_json, to_results_json, write_results_json
from grader.results import GradingResult, Outcome, TaskResult

DEFAULT_ROOT = "/autograder"
STAFF = "Please tell the course staff; this is a problem of the autograder, not of your work."
# The sandbox levels that keep reference/ unreadable and the network closed (grader.sandbox.levels), strongest
# first. `process` and `none` keep neither: official grading here never runs at them.
PROTECTING_LEVELS = ("bwrap", "restricted")
# What the course staff does when a level cannot be proven (the selfcheck's table says which promise broke).
LEVEL_FIXES = {
    "bwrap": "bwrap needs bubblewrap (setup.sh installs it) and a container that allows unprivileged "
             "user namespaces, which Gradescope's containers usually do not",
    "restricted": "restricted needs the autograder to run as root (so that student code runs as an "
                  "unprivileged user), a kernel with Landlock (Linux 5.13 or newer, with Landlock "
                  "enabled), and libseccomp2 (setup.sh installs it)",
}
SELFCHECK_TIMEOUT_S = 120
REFUSED = "official grading refused"   # how grader.engine.grading's ConfigError begins when it refuses


class Unusable(Exception):
    """The submission cannot be graded; the message says why, to the student."""


@dataclass
class Layout:
    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def submission(self) -> Path:
        return self.root / "submission"

    @property
    def metadata(self) -> Path:
        return self.root / "submission_metadata.json"

    @property
    def results(self) -> Path:
        return self.root / "results" / "results.json"

    @property
    def data_dir(self) -> Path:
        """CIFAR-10 for `--data auto`: shipped in the zip or downloaded there when the image is built."""
        return self.source / "data"

    @property
    def cache(self) -> Path:
        """The grader's dataset cache (the synthetic stand-in is generated there once, by setup.sh)."""
        return self.root / "cache"


# --- submission metadata --------------------------------------------------------------------------

@dataclass
class Metadata:
    """What Gradescope's submission_metadata.json says that grading uses; every field optional."""

    submission_id: Any = None
    created_at: Optional[str] = None
    submitters: list[Any] = field(default_factory=list)
    assignment_id: Any = None
    due_date: Optional[str] = None
    previous_scores: list[float] = field(default_factory=list)
    problem: Optional[str] = None   # why the file could not be used, where it could not

    def extra_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "submission_id": self.submission_id,
            "created_at": self.created_at,
            "submitters": self.submitters,
            "gradescope_assignment_id": self.assignment_id,
            "previous_submissions": len(self.previous_scores),
        }
        if self.previous_scores:
            data["best_previous_score"] = max(self.previous_scores)
        late = self.late()
        if late is not None:
            data["late"] = late
        if self.problem:
            data["metadata_problem"] = self.problem
        return data

    def late(self) -> Optional[bool]:
        created, due = _parse_time(self.created_at), _parse_time(self.due_date)
        if created is None or due is None:
            return None
        try:
            return created > due
        except TypeError:  # one with a time zone, one without
            return None

    def seed(self, assignment_id: str) -> Optional[int]:
        """A seed drawn from the submission's id: a regrade of the same submission checks the same
        inputs, while each new submission gets new ones."""
        if self.submission_id is None or isinstance(self.submission_id, bool):
            return None
        digest = hashlib.sha256(f"{assignment_id}:{self.submission_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % 2**31


def _parse_time(text: Any) -> Optional[datetime.datetime]:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_metadata(path: Path) -> Metadata:
    """Gradescope's submission metadata; a missing or malformed file (or field) is recorded, never raised."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Metadata(problem=f"{path.name} is missing")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return Metadata(problem=f"{path.name} is not readable JSON ({exc})")
    if not isinstance(raw, dict):
        return Metadata(problem=f"{path.name} holds a {type(raw).__name__}, not an object")
    meta = Metadata()
    problems = []
    if _scalar(raw.get("id")):
        meta.submission_id = raw["id"]
    if isinstance(raw.get("created_at"), str):
        meta.created_at = raw["created_at"]
    users = raw.get("users")
    if isinstance(users, list):
        meta.submitters = [u["id"] for u in users if isinstance(u, dict) and _scalar(u.get("id"))]
        if len(meta.submitters) != len(users):
            problems.append("a user without an id")
    elif users is not None:
        problems.append("users is not a list")
    assignment = raw.get("assignment")
    if isinstance(assignment, dict):
        meta.assignment_id = assignment.get("id") if _scalar(assignment.get("id")) else None
        meta.due_date = assignment.get("due_date") if isinstance(assignment.get("due_date"), str) else None
    elif assignment is not None:
        problems.append("assignment is not an object")
    previous = raw.get("previous_submissions")
    if isinstance(previous, list):
        for entry in previous:
            score = entry.get("score") if isinstance(entry, dict) else None
            try:
                meta.previous_scores.append(float(score))
            except (TypeError, ValueError):
                continue
    elif previous is not None:
        problems.append("previous_submissions is not a list")
    if problems:
        meta.problem = f"{path.name}: " + "; ".join(problems)
    return meta


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


# --- finding the student's files ------------------------------------------------------------------

@dataclass(frozen=True)
class Located:
    path: Path     # a folder holding the student files at its top, or a zip
    note: str      # for the student, where the files were taken from ("" for the submission's top)


def locate_submission(folder: Path, assignment_id: str, student_files: list[str]) -> Located:
    """Where in Gradescope's submission folder the student's files are (grader.files.find_student_files:
    its top, else the folder named after the assignment, else the one folder holding the most of them);
    else a single zip archive (the grader's submission zip)."""
    if not folder.is_dir():
        raise Unusable("the submission folder is missing: nothing was submitted")
    found = find_student_files(folder, student_files, assignment_id)
    if found.ambiguous:
        raise Unusable(f"the files to submit ({', '.join(student_files)}) are in several folders "
                       f"({found.listing()}): submit one copy of them")
    if found.where:
        return Located(found.folder, f"Graded the files in the folder {found.where}/ of your submission.")
    if found.present or not found.archives:
        return Located(folder, "")   # where the files are missing, the grader says which
    if len(found.archives) > 1:
        listing = ", ".join(z.relative_to(folder).as_posix() for z in found.archives)
        raise Unusable(f"the submission holds several zip archives ({listing}) and none of the files to "
                       f"submit ({', '.join(student_files)}): submit the files themselves, or one archive")
    name = found.archives[0].relative_to(folder).as_posix()
    return Located(found.archives[0], f"Graded the files in the archive {name} of your submission.")


# --- the sandbox ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LevelCheck:
    """`grader selfcheck --sandbox LEVEL`, run before grading: its exit status (None when it did not
    finish) and what it printed (the table of promises, or why the level cannot run here)."""

    level: str
    status: Optional[int]
    log: str

    @property
    def held(self) -> bool:
        return self.status == EXIT_OK

    def why_not(self) -> str:
        if self.status is None:
            return f"its selfcheck did not finish within {SELFCHECK_TIMEOUT_S} s"
        return f"its selfcheck failed with exit status {self.status}"


@dataclass(frozen=True)
class SandboxProof:
    """The selfchecks run before grading, strongest level first, up to the first whose promises held."""

    checks: tuple[LevelCheck, ...]

    @property
    def level(self) -> Optional[str]:
        """The level to grade at; None where no level that protects the reference holds here."""
        return next((c.level for c in self.checks if c.held), None)

    def refusal(self) -> str:
        tried = "; ".join(f"{c.level}: {c.why_not()}" for c in self.checks) or "this grader has no such level"
        return (f"{REFUSED}: no sandbox level that keeps the reference solution and the network out of "
                f"reach holds here ({tried})")

    def fixes(self) -> list[str]:
        return [LEVEL_FIXES[c.level] for c in self.checks if c.level in LEVEL_FIXES]

    def log(self) -> str:
        return "\n".join(c.log for c in self.checks)


def protecting_levels() -> list[str]:
    """The levels of PROTECTING_LEVELS this grader offers (a newer or older grader may lack one)."""
    from grader.sandbox.levels import LEVELS

    return [level for level in PROTECTING_LEVELS if level in LEVELS]


def prove_sandbox(env: dict[str, str], cwd: Path) -> SandboxProof:
    """Runs the selfcheck of each protecting level, strongest first, until one holds."""
    checks = []
    for level in protecting_levels():
        checks.append(run_selfcheck(level, env, cwd))
        if checks[-1].held:
            break
    return SandboxProof(tuple(checks))


def run_selfcheck(level: str, env: dict[str, str], cwd: Path) -> LevelCheck:
    """The command line's selfcheck in a child process, whose exit status is all that is relied on
    (EXIT_OK: every promise of the level held; any other: one did not, or the level cannot run here):
    the same verdict an instructor gets from `grader selfcheck`, and a crash of the probes costs this
    run nothing."""
    command = [sys.executable, "-m", "grader", "selfcheck", "--sandbox", level]
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=SELFCHECK_TIMEOUT_S)
        status: Optional[int] = process.returncode
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        output, _ = process.communicate()
        status = None
    text = output.decode("utf-8", "replace").rstrip()
    shown = "did not finish" if status is None else f"exit status {status}"
    return LevelCheck(level, status, f"$ grader selfcheck --sandbox {level}   ({shown})\n{text}")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# --- results.json ---------------------------------------------------------------------------------

NOT_GRADED = "not graded: the submission could not be graded (see the message above the tests)"


@dataclass(frozen=True)
class RunResult:
    """What this run reports: a grading result, and what Gradescope's results.json adds to it."""

    result: GradingResult
    extra: dict[str, Any]      # the run's facts beside the result's own in extra_data (graded, gradescope, ...)
    leaderboard: tuple[LeaderboardEntry, ...] = ()

    def results_json(self) -> dict[str, Any]:
        return to_results_json(self.result, extra=self.extra, leaderboard=self.leaderboard)

    def write(self, path: Path) -> None:
        write_results_json(self.result, path, extra=self.extra, leaderboard=self.leaderboard)


def failure_results(message: str, tasks: list[Any], elapsed_s: float, extra: dict[str, Any], *,
                    assignment: str = "", sandbox: Optional[str] = None) -> RunResult:
    """Score 0 with the reason, each task listed at 0 (where the assignment could be read)."""
    result = GradingResult(
        assignment=assignment, mode="official", seed=None,
        tasks=tuple(TaskResult(t.id, t.title, float(t.points), 0.0, Outcome.ERROR, NOT_GRADED,
                               kind="check" if t.training is None else "training", visibility=t.visibility)
                    for t in tasks),
        execution_time_s=elapsed_s, grader_version=__version__, output=message, sandbox=sandbox)
    return RunResult(result, {"graded": False, **extra})


def refusal_results(reason: str, fixes: list[str], details: str, tasks: list[Any], elapsed_s: float,
                    extra: dict[str, Any], *, assignment: str = "") -> RunResult:
    """Score 0 and nothing graded, because no sandbox could be proven: the output tells the student
    it is not their doing, and the course staff what broke and what to fix."""
    lines = [f"This submission was not graded: the autograder runs student code only in a sandbox that "
             f"keeps the reference solution and the network out of its reach, and none holds on this "
             f"machine. {STAFF}", "", f"For the course staff: {reason.rstrip('.')}."]
    lines += [f"To fix: {fix}." for fix in fixes]
    if details:
        lines += ["", "What the selfchecks found:", details]
    return failure_results("\n".join(lines), tasks, elapsed_s, {**extra, "refused": reason}, assignment=assignment)


def leaderboard(result: GradingResult, spec: Any) -> tuple[LeaderboardEntry, ...]:
    """One entry per training task that measured a validation accuracy (on held-out images, not the
    training images an overfit task is scored on), in Gradescope's leaderboard format."""
    evaluated_on = {t.id: t.training.evaluate_on for t in spec.tasks if t.training is not None} if spec else {}
    entries = []
    for task in result.tasks:
        accuracy = task.training.accuracy if task.training is not None else None
        if accuracy is None or not math.isfinite(accuracy) or evaluated_on.get(task.task_id, "held_out") != "held_out":
            continue
        data = task.training.data_source
        what = "CIFAR-10 validation accuracy" if data == "cifar10" else f"validation accuracy ({data or 'unknown'} data)"
        entries.append(LeaderboardEntry(f"{task.task_id}: {what}", round(float(accuracy), 4)))
    return tuple(entries)


def complete_results(result: GradingResult, spec: Any, located: Optional[Located], extra: dict[str, Any],
                     sandbox: str) -> RunResult:
    """The grader's result with what Gradescope adds: the leaderboard, the metadata's facts, the note
    on where the files were found, and the level graded at (the grader's own record, where it has one)."""
    note = located.note if located is not None else ""
    output = "\n".join(p for p in (note, result.output) if p)
    result = dataclasses.replace(result, output=output, sandbox=result.sandbox or sandbox)
    return RunResult(result, {"graded": True, **extra}, leaderboard(result, spec))


# --- running ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader.delivery.gradescope_runner",
                                     description="Grade the submission of a Gradescope autograder run.")
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--device", choices=list(DEVICES), default="auto")
    parser.add_argument("--data", choices=list(EXPORT_DATA_CHOICES), default=EXPORT_DATA_CHOICES[0])
    parser.add_argument("--time-limit", type=float, default=0.0, metavar="SECONDS",
                        help="stop grading after this long and report it (0: no limit)")
    parser.add_argument("--memory", type=int, metavar="MB", help="the memory the submission's worker may use")
    parser.add_argument("--gpu-tasks", choices=list(EXPORT_GPU_TASKS), default=EXPORT_GPU_TASKS[0],
                        help="GPU training tasks here (no GPU): a 0 with the reason, or left out")
    parser.add_argument("--prepare-data", action="store_true",
                        help="only prepare the training data (setup.sh runs this when the image is built)")
    return parser


def grader_environment(layout: Layout) -> dict[str, str]:
    env = dict(os.environ)
    env["GRADER_ROOT"] = str(layout.source)   # assignments/ and reference/ from the autograder's copy
    env["PYTHONPATH"] = str(layout.source)    # and the grader package too
    env["XDG_CACHE_HOME"] = str(layout.cache)
    env.setdefault("NO_COLOR", "1")
    return env


def prepare_data(layout: Layout, data: str) -> int:
    os.environ["XDG_CACHE_HOME"] = str(layout.cache)
    from grader.data import DatasetError
    from grader.engine.grading import GradeOptions
    from grader.engine.training import load_training_dataset

    options = GradeOptions(data=data, data_dir=layout.data_dir if data == "auto" else None)
    try:
        dataset = load_training_dataset(options)
    except DatasetError as exc:
        print(f"training data not prepared: {exc}\nTraining tasks will try again when grading, and are "
              "skipped with this message when the data cannot be had.")
        return EXIT_OK
    print(f"training data ready: {dataset.source}, {len(dataset.train_images)} training images")
    return EXIT_OK


def grade_command(args: argparse.Namespace, layout: Layout, located: Located, seed: Optional[int],
                  sandbox: str) -> list[str]:
    """`grader grade` at the sandbox level the selfcheck proved, named explicitly: `auto` would choose
    again, and might choose differently from what was proven."""
    command = [sys.executable, "-m", "grader", "grade", args.assignment, "--submission", str(located.path),
               "--mode", "official", "--json", str(layout.results), "--no-zip", "--quiet",
               "--device", args.device, "--data", args.data, "--sandbox", sandbox]
    if args.data == "auto":
        command += ["--data-dir", str(layout.data_dir)]
    command += ["--without-gpu", args.gpu_tasks]
    if args.memory:
        command += ["--memory", str(args.memory)]
    if seed is not None:
        command += ["--seed", str(seed)]
    only = os.environ.get("GRADER_ONLY")
    if only:
        command += ["--only", only]
    return command


def run_grader(command: list[str], env: dict[str, str], cwd: Path,
               time_limit: float) -> tuple[Optional[int], str]:
    """(exit status or None when stopped at the time limit, what it wrote to stderr); its standard
    output goes to ours (Gradescope shows that to instructors only)."""
    sys.stdout.flush()
    try:
        stdout: Any = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        stdout = None
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=time_limit or None)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        _, stderr = process.communicate()
        text = stderr.decode("utf-8", "replace")
        sys.stdout.write(text)
        return None, text
    text = stderr.decode("utf-8", "replace")
    sys.stdout.write(text)
    return process.returncode, text


def _stderr_reason(text: str, prefix: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            return " ".join([line[len(prefix):].strip(), *lines[i + 1:]])
    return lines[-1] if lines else ""


def grade_submission(args: argparse.Namespace, layout: Layout, start: float) -> RunResult:
    import grader
    from grader.assignment import load_assignment

    extra: dict[str, Any] = {"autograder": {"grader_package": str(Path(grader.__file__).resolve().parent),
                                            "device": args.device, "data": args.data}}
    meta = read_metadata(layout.metadata)
    extra["gradescope"] = meta.extra_data()
    if meta.problem:
        print(f"submission metadata: {meta.problem} (graded without it)")
    tasks: list[Any] = []
    try:
        assignment = load_assignment(args.assignment, layout.source)
    except Exception as exc:  # noqa: BLE001 - a broken autograder still answers with a result
        print(f"the assignment could not be loaded: {exc}")
        return failure_results(f"The autograder could not load the assignment {args.assignment}. {STAFF}",
                               tasks, time.monotonic() - start, extra, assignment=args.assignment)
    spec = assignment.spec
    tasks = spec.select(os.environ.get("GRADER_ONLY") or None)
    if args.gpu_tasks == "leave-out" and args.device == "auto":  # Gradescope's machines have no GPU
        tasks = [t for t in tasks if t.training is None or t.training.device != "cuda"]
    env = grader_environment(layout)
    proof = prove_sandbox(env, layout.source)
    print(proof.log())
    if proof.level is None:
        return refusal_results(proof.refusal(), proof.fixes(), proof.log(), tasks, time.monotonic() - start, extra,
                               assignment=spec.id)
    print(f"grading at the sandbox level {proof.level}")

    def failed(message: str) -> RunResult:
        return failure_results(message, tasks, time.monotonic() - start, extra, assignment=spec.id,
                               sandbox=proof.level)

    try:
        located = locate_submission(layout.submission, spec.id, spec.student_files)
    except Unusable as exc:
        return failed(f"Your submission could not be graded: {exc}.")
    print(f"grading {located.path}")
    layout.results.unlink(missing_ok=True)
    # The time limit covers the whole run, the selfchecks included.
    time_left = max(1.0, args.time_limit - (time.monotonic() - start)) if args.time_limit else 0.0
    status, stderr = run_grader(grade_command(args, layout, located, meta.seed(spec.id), proof.level),
                                env, layout.source, time_left)
    if status is None:
        return failed(f"Grading was stopped after {args.time_limit:g} seconds, the time this autograder "
                      "allows. Look for code that runs much longer than it should.")
    if status == EXIT_UNUSABLE:
        reason = _stderr_reason(stderr, "grader: unusable submission:") or "no reason was given"
        return failed("\n".join(p for p in (located.note, f"Your submission could not be graded: {reason}") if p))
    if status == EXIT_USAGE and REFUSED in stderr:   # the grader's own quick selfcheck did not hold
        reason = _stderr_reason(stderr, "grader: configuration error:") or REFUSED
        return refusal_results(reason, [LEVEL_FIXES[proof.level]] if proof.level in LEVEL_FIXES else [],
                               "", tasks, time.monotonic() - start, extra, assignment=spec.id)
    if status == EXIT_USAGE:
        return failed(f"The autograder could not grade this submission ({_stderr_reason(stderr, 'grader:')}). {STAFF}")
    try:
        result = read_results_json(layout.results, spec)
    except (OSError, ValueError) as exc:
        print(f"grader exited with status {status} and no usable {layout.results} ({exc})")
        return failed(f"The autograder stopped before it finished grading (status {status}). {STAFF}")
    return complete_results(result, spec, located, extra, proof.level)


def main(argv: Optional[list[str]] = None) -> int:
    start = time.monotonic()
    args = build_parser().parse_args(argv)
    layout = Layout(Path(os.environ.get("AUTOGRADER_ROOT") or DEFAULT_ROOT))
    if args.prepare_data:
        return prepare_data(layout, args.data)
    try:
        run = grade_submission(args, layout, start)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, Gradescope gets a result
        import traceback

        traceback.print_exc(file=sys.stdout)
        run = failure_results(f"The autograder failed while grading this submission ({type(exc).__name__}). "
                              f"{STAFF}", [], time.monotonic() - start,
                              {"autograder_error": f"{type(exc).__name__}: {exc}"}, assignment=args.assignment)
    run.write(layout.results)
    print(f"score {run.result.score:g}; results in {layout.results}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
