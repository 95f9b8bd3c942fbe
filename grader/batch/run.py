"""The coordinator of `grader batch`: finds the submissions, decides which need grading, hands them
to an executor, commits each result as it arrives, and writes the gradebook and summary.

Resuming is re-running the same command: a submission already graded with the same content is not
graded again (unless `regrade`); one that was being graded when the batch died is. `regrade_only`
grades the named submissions again and leaves every other one as it is.

After grading, the batch looks for pairs of similar submissions (`similarity`; never changing a
score) and writes `report.html` (grader.batch.similarity, grader.batch.web_report); a failure of
either is a note, never a lost grade. The batch's settings (assignment, mode, seed, task selection)
are fixed on its first run, so a resumed batch grades the rest exactly as it graded the first ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from grader.assignment import Assignment, ConfigError, load_assignment
from grader.batch.discover import FoundSubmission, discover, stage_uploads
from grader.batch.executor import EXECUTORS, BatchAborted, Executor
from grader.batch.job import JobSettings, SubmissionJob, error_record
from grader.batch.outputs import TaskColumn, summarize, write_gradebook, write_submission_files, write_summary
from grader.batch.store import BatchMismatch, BatchStore
from grader.options import SIMILARITY_AUTO_ABOVE, SIMILARITY_CHOICES, GradingChoices, grading_choices

LOCK_NAME = ".batch.lock"
GONE_SHOWN = 5   # ids named in the note on submissions an earlier run graded that are gone from the folder
UPLOADS_FOLDER = ".uploads"   # loose files of a platform's download, staged one folder per student
# Infrastructure losses (a grading process that died, a lost node) are tried this often in all.
MAX_ATTEMPTS = 3
# Slack over the limits a submission's grading can take, for start-up, data loading and reports.
MARGIN_S = 300.0


@dataclass(frozen=True, kw_only=True)
class BatchOptions(GradingChoices):
    """A batch as asked for: the shared choices (grader.options), what to grade, and where."""

    assignment: str
    submissions: Path
    out: Path
    jobs: int = 1
    executor: str = "local"               # local | slurm | ray
    mode: Optional[str] = None            # None: official where the reference solution is here
    seed: Optional[int] = None            # None: the batch's own, drawn on its first run
    regrade: bool = False                 # grade every submission again, even unchanged ones
    regrade_only: tuple[str, ...] = ()    # grade only these again (even unchanged), keep the others as they are
    similarity: str = "auto"              # off | on | auto (on above SIMILARITY_AUTO_ABOVE submissions)
    gpus: Optional[int] = None            # local: GPUs to hand out (default: those visible)
    partition: Optional[str] = None       # slurm
    gpus_per_job: Optional[int] = None    # slurm / ray (default: 1 when a task trains on a GPU)
    slurm_cluster: Optional[str] = None   # submitit's cluster ("local" runs the array here)
    ray_address: Optional[str] = None
    arguments: list[str] = field(default_factory=list)  # the command line, kept with each run


@dataclass
class BatchOutcome:
    run: int
    graded: list[str]              # submissions graded in this run
    skipped: list[str]             # already graded, same content
    passed_over: list[str]         # entries of the folder that are not submissions
    records: list[dict[str, Any]]  # every submission's record, in id order
    gradebook: Path
    summary_path: Path
    summary: Any
    unwritten: list[str] = field(default_factory=list)  # "<id>: why", submissions whose files failed
    similar: list[Any] = field(default_factory=list)    # grader.batch.similarity's pairs, when compared
    report: Optional[Path] = None                       # report.html, when grader.batch.web_report is here
    notes: list[str] = field(default_factory=list)      # what the batch could not do besides grading


class BatchBusy(Exception):
    """Another batch is grading into the same --out folder."""


class NoSubmissions(Exception):
    """The submissions folder holds nothing to grade."""


def no_submissions_message(folder: Path, passed_over: Sequence[str]) -> str:
    lines = [f"{folder} holds no submission: each must be a folder, a zip or a notebook (.ipynb) directly "
             "inside it, one per student"]
    if any(line.lower().split(":")[0].endswith(".py") for line in passed_over):
        lines.append("it holds loose .py files (a platform's download of each student's files side by side?): "
                     "put each student's files in a folder of their own")
    lines += [f"passed over {line}" for line in passed_over[:10]]
    if len(passed_over) > 10:
        lines.append(f"and {len(passed_over) - 10} more entries")
    return "\n".join(lines)


class UnknownSubmissions(Exception):
    """`regrade_only` names a submission the folder does not hold."""


def unknown_submissions_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    lines = []
    for ident in unknown:
        close = difflib.get_close_matches(ident, known, n=3, cutoff=0.6)
        lines.append(f"no submission {ident!r} in this batch"
                     + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return "; ".join(lines)


def grade_batch(options: BatchOptions, progress: Any = None, make_executor: Any = None) -> BatchOutcome:
    from filelock import FileLock, Timeout

    from grader.engine.grading import grading_mode

    assignment = load_assignment(options.assignment)
    mode = grading_mode(assignment, options.mode)
    found, passed_over = discover(assignment.id, options.submissions, assignment.spec.student_files,
                                  stage_in=options.out / UPLOADS_FOLDER)
    if not found:
        raise NoSubmissions(no_submissions_message(options.submissions, passed_over))
    ids = [s.id for s in found]
    if unknown := sorted(set(options.regrade_only) - set(ids), key=list(options.regrade_only).index):
        raise UnknownSubmissions(unknown_submissions_message(unknown, ids))
    if options.out.exists() and not options.out.is_dir():
        raise ConfigError(f"--out {options.out} is a file, not a folder for the batch's results")
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {options.out} cannot be made a folder: {exc.strerror or exc}") from None
    lock = FileLock(str(options.out / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BatchBusy(f"another batch is grading into {options.out} (it holds {options.out / LOCK_NAME})") from None
    store = BatchStore(options.out)
    try:
        stage_uploads(found)
        settings = _bind_settings(store, assignment, mode, options)
        verdict = sandbox_verdict(settings)
        # Every job grades at the level proven here; one on another node proves it there again.
        settings = dataclasses.replace(settings, sandbox=verdict[0])
        run = store.begin_run(options.arguments)
        store.record_found(ids, {s.id: s.upload.canvas_id for s in found if s.upload is not None and s.upload.canvas_id},
                           {s.id: list(s.members) for s in found if s.members})
        stored = store.stored()
        jobs, skipped = [], []
        for submission in found:
            job = _job(assignment, submission, settings)
            previous = stored.get(submission.id)
            if options.regrade_only:
                wanted = submission.id in options.regrade_only
            else:
                wanted = (options.regrade or previous is None or previous.state != "done"
                          or previous.content_hash != job.content_hash)
            if not wanted:
                skipped.append(submission.id)
            else:
                jobs.append(job)
        if progress is not None:
            progress.begin(len(found), already=len(skipped))
        sink = _Sink(store, run, options.out, assignment, progress)
        executor = (make_executor or make_default_executor)(options, assignment, jobs, verdict)
        if jobs:
            executor.run(jobs, sink)
        records = [r.record for r in (store.stored().get(s.id) for s in found) if r is not None and r.record]
        graded_now = {j.submission_id for j in jobs}
        for record in records:  # the sink wrote this run's; a killed run may have committed some unwritten
            if record["id"] not in graded_now or record["id"] in sink.unwritten:
                sink.write_files(record)
        columns = [TaskColumn(t.id, t.points) for t in _selected_tasks(assignment, settings)]
        found_ids = set(ids)
        gone = sorted(ident for ident, r in stored.items() if ident not in found_ids and r.record)
        summary = summarize(assignment.id, records, columns, passed_over, gone)
        outcome = BatchOutcome(run, [j.submission_id for j in jobs], skipped, passed_over, records,
                               write_gradebook(options.out, records, columns), write_summary(options.out, summary),
                               summary, [f"{ident}: {why}" for ident, why in sorted(sink.unwritten.items())])
        if gone:
            outcome.notes.append(gone_note(gone, options.submissions))
        # Both after the gradebook: neither can change a score, and a failure of either costs no result.
        compared = similarity_wanted(options.similarity, len(found))
        if compared:
            outcome.similar = _similar_pairs(assignment, found, outcome.notes)
        outcome.report = _web_report(options.out, assignment.id, records, columns,
                                     outcome.similar if compared else None, outcome.notes)
        return outcome
    finally:
        store.close()
        lock.release()


def gone_note(gone: Sequence[str], submissions: Path) -> str:
    """What an instructor must know where this folder lacks submissions an earlier run graded into the
    same --out: a resubmission named anew replaces its old one, but another folder graded into it (the
    late submissions downloaded apart) would leave the first folder's out of every file."""
    shown = ", ".join(gone[:GONE_SHOWN]) + (f" and {len(gone) - GONE_SHOWN} more" if len(gone) > GONE_SHOWN else "")
    return (f"{len(gone)} submission(s) graded into this --out by an earlier run are not in {submissions} now ({shown}): "
            "gradebook.csv, summary.md, report.html and `grader gradebook` hold this folder's submissions only. "
            "Grade another folder of submissions into its own --out")


def _bind_settings(store: BatchStore, assignment: Assignment, mode: str, options: BatchOptions) -> JobSettings:
    previous = store.settings()
    if options.seed is not None:
        seed = options.seed
    elif "seed" in previous:
        seed = int(previous["seed"])
    else:
        seed = secrets.randbelow(2**31)
    wanted = {"assignment": assignment.id, "mode": mode, "seed": str(seed), "only": options.only or "",
              "training": str(options.training), "device": options.device, "data": options.data}
    try:
        # Only a regrade of everything may change them: one of some submissions grades like the rest.
        bound = store.bind(wanted, replace=tuple(wanted) if options.regrade and not options.regrade_only else ())
    except BatchMismatch as exc:
        raise ConfigError(str(exc)) from None
    return JobSettings(**grading_choices(options), assignment=assignment.id,
                       project_root=str(assignment.directory.parent.parent), mode=bound["mode"],
                       seed=int(bound["seed"]))


def similarity_wanted(choice: str, submissions: int) -> bool:
    if choice not in SIMILARITY_CHOICES:
        raise ConfigError(f"similarity {choice!r}: expected one of {', '.join(SIMILARITY_CHOICES)}")
    return choice == "on" or (choice == "auto" and submissions > SIMILARITY_AUTO_ABOVE)


def _similar_pairs(assignment: Assignment, found: Sequence[FoundSubmission], notes: list[str]) -> list[Any]:
    try:  # imported when needed: the comparison's libraries load only for a batch that compares
        from grader.batch.similarity import similar_pairs

        return list(similar_pairs(assignment, [(s.id, s.path) for s in found if s.problem is None]))
    except Exception as exc:  # noqa: BLE001 - the grades are written; the comparison alone is lost
        notes.append(f"similarity not compared: {type(exc).__name__}: {exc}")
        return []


def _web_report(out: Path, assignment_id: str, records: list[dict[str, Any]], columns: list[TaskColumn],
                similar: Optional[list[Any]], notes: list[str]) -> Optional[Path]:
    try:
        from grader.batch.web_report import write_web_report

        return write_web_report(out, assignment_id, records, columns, similarity=similar)
    except Exception as exc:  # noqa: BLE001 - the gradebook and summary are written already
        notes.append(f"report.html not written: {type(exc).__name__}: {exc}")
        return None


def sandbox_verdict(settings: JobSettings) -> tuple[str, tuple[str, ...]]:
    """The sandbox level the batch grades in and, in official mode, proof here that it keeps its
    promises: a batch that cannot be graded safely stops before its first submission."""
    from grader.engine.grading import sandbox_level
    from grader.sandbox.selfcheck import broken_promises

    level = sandbox_level(settings.sandbox, settings.mode)
    return level, broken_promises(level) if level in ("restricted", "bwrap") and settings.mode == "official" else ()


def _selected_tasks(assignment: Assignment, settings: JobSettings) -> list:
    return [t for t in assignment.spec.select(settings.only) if settings.training or t.training is None]


def _job(assignment: Assignment, submission: FoundSubmission, settings: JobSettings) -> SubmissionJob:
    return SubmissionJob(submission.id, str(submission.path), content_hash(assignment, submission.path),
                         settings, problem=submission.problem, notes=submission.notes)


def content_hash(assignment: Assignment, path: Path) -> str:
    """The hash of the student files the submission holds; of the archive's bytes where none can be
    read (so that a fixed archive is graded again)."""
    from grader.engine.submission import UnusableSubmission, read_submission

    try:
        return read_submission(assignment, path).content_hash()
    except UnusableSubmission as exc:
        digest = hashlib.sha256(str(exc).encode())
        if path.is_file():
            with open(path, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
        return "unusable:" + digest.hexdigest()


class _Sink:
    """Commits what the executor reports; retries the infrastructure's losses up to MAX_ATTEMPTS."""

    def __init__(self, store: BatchStore, run: int, out: Path, assignment: Assignment, progress: Any):
        self.store, self.run, self.out, self.assignment, self.progress = store, run, out, assignment, progress
        self.unwritten: dict[str, str] = {}  # submission id -> why its files could not be written

    def started(self, job: SubmissionJob) -> int:
        return self.store.claim(job.submission_id, job.path, job.content_hash, self.run)

    def finished(self, job: SubmissionJob, attempt: int, record: dict[str, Any]) -> None:
        self.store.finish(job.submission_id, self.run, attempt, record)
        self.write_files(record)
        if self.progress is not None:
            self.progress.done(record)

    def write_files(self, record: dict[str, Any]) -> None:
        """A submission's results.json and feedback.txt. One that cannot be written is noted and stops
        nothing: its result is in the database, and the end of this run and every later run write it again."""
        try:
            write_submission_files(self.out, record)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this submission's alone
            self.unwritten[record["id"]] = f"{type(exc).__name__}: {exc}"
        else:
            self.unwritten.pop(record["id"], None)

    def lost(self, job: SubmissionJob, attempt: int, why: str) -> bool:
        self.store.give_up_attempt(job.submission_id, self.run, attempt, why)
        if attempt < MAX_ATTEMPTS:
            return True
        self.finished(job, attempt, error_record(job, self.assignment, f"{why} (tried {attempt} times)"))
        return False


# -- executors ---------------------------------------------------------------------------------

def grading_time_limit_s(assignment: Assignment, settings_training: bool) -> float:
    """The longest one submission's grading may take: its checks' budget, its training limits, a margin."""
    spec = assignment.spec
    training = sum(t.training.time_limit_s * 2 + 60 for t in spec.tasks if t.training is not None) \
        if settings_training else 0.0
    return spec.submission_timeout_s + training + MARGIN_S


def needs_gpu(assignment: Assignment, options: BatchOptions) -> bool:
    if not options.training or options.device == "cpu":
        return False
    return any(t.training is not None and (options.device == "cuda" or t.training.device == "cuda")
               for t in assignment.spec.select(options.only))


def trains_on_cpu(assignment: Assignment, options: BatchOptions) -> bool:
    if not options.training or options.device == "cuda":
        return False
    return any(t.training is not None and (options.device == "cpu" or t.training.device == "cpu")
               for t in assignment.spec.select(options.only))


def visible_gpus() -> list[str]:
    """The GPUs this machine lets the batch use: $CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(output.splitlines()) if line.startswith("GPU ")]


def make_default_executor(options: BatchOptions, assignment: Assignment, jobs: Sequence[SubmissionJob],
                          verdict: tuple[str, tuple[str, ...]]) -> Executor:
    limit = grading_time_limit_s(assignment, options.training)
    gpu = needs_gpu(assignment, options)
    if options.executor == "local":
        from grader.batch.local import LocalExecutor

        gpus = visible_gpus() if options.gpus is None else [str(i) for i in range(options.gpus)]
        preload = ["torch"] if assignment.spec.framework == "torch" else []
        # The grading processes run on this machine: the sandbox proven here once holds for each.
        # Cores are set apart for training on the CPU only where a task trains there: a batch of
        # checks alone, or of GPU training, keeps every core for the checks.
        return LocalExecutor(options.jobs, gpus if gpu else [], timeout_s=limit, preload=preload,
                             sandbox_verdict=verdict, training_cores=None if trains_on_cpu(assignment, options) else 0)
    if options.executor == "slurm":
        from grader.batch.slurm import SlurmExecutor

        return SlurmExecutor(folder=options.out / "slurm", partition=options.partition,
                             gpus_per_job=options.gpus_per_job if options.gpus_per_job is not None else int(gpu),
                             time_limit_s=limit, parallelism=options.jobs, cluster=options.slurm_cluster)
    if options.executor == "ray":
        from grader.batch.ray_executor import RayExecutor

        return RayExecutor(address=options.ray_address,
                           gpus_per_job=options.gpus_per_job if options.gpus_per_job is not None else int(gpu),
                           max_in_flight=options.jobs)
    raise ConfigError(f"unknown executor {options.executor!r} ({', '.join(EXECUTORS[:-1])} or {EXECUTORS[-1]})")


__all__ = ["BatchAborted", "BatchBusy", "BatchOptions", "BatchOutcome", "NoSubmissions", "UnknownSubmissions",
           "grade_batch"]
