"""Grading one Gradescope submission: what `run_autograder` of an exported autograder runs.

Gradescope lays out `/autograder` as `source/` (the autograder zip, extracted), `submission/` (the
student's files), `submission_metadata.json` and `results/`; this module finds the student's files
in `submission/`, grades them in official mode with `grader grade` (a child process, so that even a
grader that dies leaves this one to report it), and completes `results/results.json` with a
leaderboard and what the metadata says of the submission. Whatever happens, it leaves a valid
`results.json`: a submission that cannot be graded scores 0 with the reason in `output`.

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

from grader.files import find_student_files, write_atomically

DEFAULT_ROOT = "/autograder"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
# Exit statuses of `grader grade` (grader.cli).
_EXIT_USAGE, _EXIT_UNUSABLE = 2, 3
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
        return self.status == 0

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
    (0: every promise of the level held, 1: one did not, 2: the level cannot run here): the same
    verdict an instructor gets from `grader selfcheck`, and a crash of the probes costs this run nothing."""
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

def failure_results(message: str, tasks: list[Any], elapsed_s: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Score 0 with the reason, each task listed at 0 (where the assignment could be read)."""
    tests = [{
        "name": f"{t.id}: {t.title}",
        "number": str(i),
        "score": 0.0,
        "max_score": float(t.points),
        "status": "failed",
        "output": "not graded: the submission could not be graded (see the message above the tests)",
        "visibility": t.visibility,
        "extra_data": {"task": t.id, "outcome": "error", "kind": "training" if t.training else "check"},
    } for i, t in enumerate(tasks, start=1)]
    return {
        "score": 0.0,
        "execution_time": int(math.ceil(elapsed_s)),
        "output": message,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"graded": False, **extra},
    }


def refusal_results(reason: str, fixes: list[str], details: str, tasks: list[Any], elapsed_s: float,
                    extra: dict[str, Any]) -> dict[str, Any]:
    """Score 0 and nothing graded, because no sandbox could be proven: the output tells the student
    it is not their doing, and the course staff what broke and what to fix."""
    lines = [f"This submission was not graded: the autograder runs student code only in a sandbox that "
             f"keeps the reference solution and the network out of its reach, and none holds on this "
             f"machine. {STAFF}", "", f"For the course staff: {reason.rstrip('.')}."]
    lines += [f"To fix: {fix}." for fix in fixes]
    if details:
        lines += ["", "What the selfchecks found:", details]
    return failure_results("\n".join(lines), tasks, elapsed_s, {**extra, "sandbox": None, "refused": reason})


def leaderboard(results: dict[str, Any], spec: Any) -> list[dict[str, Any]]:
    """One entry per training task that measured a validation accuracy (on held-out images, not the
    training images an overfit task is scored on), in Gradescope's leaderboard format."""
    entries = []
    evaluated_on = {t.id: t.training.evaluate_on for t in spec.tasks if t.training is not None} if spec else {}
    for test in results.get("tests") or []:
        extra = test.get("extra_data") if isinstance(test, dict) else None
        if not isinstance(extra, dict) or extra.get("kind") != "training":
            continue
        accuracy = extra.get("accuracy")
        if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool) or not math.isfinite(accuracy):
            continue
        if evaluated_on.get(extra.get("task"), "held_out") != "held_out":
            continue
        data = extra.get("data")
        what = "CIFAR-10 validation accuracy" if data == "cifar10" else f"validation accuracy ({data or 'unknown'} data)"
        entries.append({"name": f"{extra.get('task')}: {what}", "value": round(float(accuracy), 4), "order": "desc"})
    return entries


def complete_results(results: dict[str, Any], spec: Any, meta: Metadata, located: Optional[Located],
                     extra: dict[str, Any]) -> dict[str, Any]:
    """The grader's results.json with what Gradescope adds: the leaderboard, the metadata's facts,
    the note on where the files were found, and each test's visibility checked against the assignment."""
    visibility = {t.id: t.visibility for t in spec.tasks} if spec else {}
    for test in results.get("tests") or []:
        task = (test.get("extra_data") or {}).get("task")
        if test.get("visibility") not in VISIBILITIES:
            test["visibility"] = visibility.get(task, "visible")
    if located is not None and located.note:
        results["output"] = "\n".join(p for p in (located.note, results.get("output") or "") if p)
    board = leaderboard(results, spec)
    if board:
        results["leaderboard"] = board
    data = results.setdefault("extra_data", {})
    if not isinstance(data, dict):
        data = results["extra_data"] = {}
    data["graded"] = True
    graded_at = data.get("sandbox")
    data.update(extra)
    if isinstance(graded_at, str):   # the grader's own record of the level it graded at, where it has one
        data["sandbox"] = graded_at
    data["gradescope"] = meta.extra_data()
    return results


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(results, indent=2) + "\n")


# --- running ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader.delivery.gradescope_runner",
                                     description="Grade the submission of a Gradescope autograder run.")
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--data", choices=["synthetic", "auto"], default="synthetic")
    parser.add_argument("--time-limit", type=float, default=0.0, metavar="SECONDS",
                        help="stop grading after this long and report it (0: no limit)")
    parser.add_argument("--memory", type=int, metavar="MB", help="the memory the submission's worker may use")
    parser.add_argument("--gpu-tasks", choices=["skip", "leave-out"], default="skip",
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
        return 0
    print(f"training data ready: {dataset.source}, {len(dataset.train_images)} training images")
    return 0


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


def grade_submission(args: argparse.Namespace, layout: Layout, start: float) -> dict[str, Any]:
    import grader
    from grader.assignment import load_assignment

    extra: dict[str, Any] = {"autograder": {"grader_package": str(Path(grader.__file__).resolve().parent),
                                            "device": args.device, "data": args.data},
                             "sandbox": None}   # the level proven below, where one is
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
                               tasks, time.monotonic() - start, extra)
    spec = assignment.spec
    tasks = spec.select(os.environ.get("GRADER_ONLY") or None)
    if args.gpu_tasks == "leave-out" and args.device == "auto":  # Gradescope's machines have no GPU
        tasks = [t for t in tasks if t.training is None or t.training.device != "cuda"]
    env = grader_environment(layout)
    proof = prove_sandbox(env, layout.source)
    print(proof.log())
    if proof.level is None:
        return refusal_results(proof.refusal(), proof.fixes(), proof.log(), tasks, time.monotonic() - start, extra)
    extra["sandbox"] = proof.level
    print(f"grading at the sandbox level {proof.level}")
    try:
        located = locate_submission(layout.submission, spec.id, spec.student_files)
    except Unusable as exc:
        return failure_results(f"Your submission could not be graded: {exc}.", tasks,
                               time.monotonic() - start, extra)
    print(f"grading {located.path}")
    layout.results.unlink(missing_ok=True)
    # The time limit covers the whole run, the selfchecks included.
    time_left = max(1.0, args.time_limit - (time.monotonic() - start)) if args.time_limit else 0.0
    status, stderr = run_grader(grade_command(args, layout, located, meta.seed(spec.id), proof.level),
                                env, layout.source, time_left)
    elapsed = time.monotonic() - start
    if status is None:
        return failure_results(f"Grading was stopped after {args.time_limit:g} seconds, the time this "
                               "autograder allows. Look for code that runs much longer than it should.",
                               tasks, elapsed, extra)
    if status == _EXIT_UNUSABLE:
        reason = _stderr_reason(stderr, "grader: unusable submission:") or "no reason was given"
        message = f"Your submission could not be graded: {reason}"
        if located.note:
            message = f"{located.note}\n{message}"
        return failure_results(message, tasks, elapsed, extra)
    if status == _EXIT_USAGE and REFUSED in stderr:   # the grader's own quick selfcheck did not hold
        reason = _stderr_reason(stderr, "grader: configuration error:") or REFUSED
        return refusal_results(reason, [LEVEL_FIXES[proof.level]] if proof.level in LEVEL_FIXES else [],
                               "", tasks, elapsed, extra)
    if status == _EXIT_USAGE:
        reason = _stderr_reason(stderr, "grader:")
        return failure_results(f"The autograder could not grade this submission ({reason}). {STAFF}",
                               tasks, elapsed, extra)
    try:
        results = json.loads(layout.results.read_text(encoding="utf-8"))
        if not isinstance(results, dict) or not isinstance(results.get("tests"), list):
            raise ValueError("not a results object")
    except (OSError, ValueError) as exc:
        print(f"grader exited with status {status} and no usable {layout.results} ({exc})")
        return failure_results(f"The autograder stopped before it finished grading (status {status}). {STAFF}",
                               tasks, elapsed, extra)
    return complete_results(results, spec, meta, located, extra)


def main(argv: Optional[list[str]] = None) -> int:
    start = time.monotonic()
    args = build_parser().parse_args(argv)
    layout = Layout(Path(os.environ.get("AUTOGRADER_ROOT") or DEFAULT_ROOT))
    if args.prepare_data:
        return prepare_data(layout, args.data)
    try:
        results = grade_submission(args, layout, start)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, Gradescope gets a result
        import traceback

        traceback.print_exc(file=sys.stdout)
        results = failure_results(f"The autograder failed while grading this submission "
                                  f"({type(exc).__name__}). {STAFF}", [], time.monotonic() - start,
                                  {"autograder_error": f"{type(exc).__name__}: {exc}", "sandbox": None})
    write_json(layout.results, results)
    print(f"score {results.get('score')}; results in {layout.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
