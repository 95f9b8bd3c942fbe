"""The `grader` command line. Exit status: 0 grading ran, 1 under --fail-under, 2 usage or
configuration error, 3 unusable submission, 4 the grader failed, 130 interrupted (Ctrl-C), 143 stopped
by SIGTERM (a cluster's time limit, `kill`, a container stopped)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

from grader.batch.executor import EXECUTORS
from grader.options import (DEVICES, EXPORT_DATA_CHOICES, EXPORT_GPU_TASKS, LMS_FORMATS, ROSTER_COLUMNS, SANDBOX_CHOICES,
                            SIMILARITY_AUTO_ABOVE, SIMILARITY_CHOICES, WITHOUT_GPU_CHOICES, add_grading_arguments,
                            choices_from_arguments)

EXIT_OK, EXIT_FAIL_UNDER, EXIT_USAGE, EXIT_UNUSABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C
EXIT_TERMINATED = 143   # and for one stopped by SIGTERM
# The grader itself failed (a bug to report): not 1, which a course's CI reads as a score below
# --fail-under, nor 3, which says the submission was unusable.
EXIT_INTERNAL = 4


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C is: the way out closes the workers and grading processes (their
    `finally` blocks), where the signal's default would leave them to finish into a closed pipe."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep the message to one line
        self.print_usage(sys.stderr)
        print(f"grader: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="grader", description="Grade deep-learning assignments.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    grade = commands.add_parser("grade", help="grade one submission of an assignment")
    grade.add_argument("assignment")
    grade.add_argument("--submission", type=Path, help="folder or zip (default: the working copy assignments/A)")
    add_grading_arguments(grade, seed_help="official mode: use this seed instead of a fresh one")
    grade.add_argument("--json", type=Path, help="write a Gradescope results.json here")
    grade.add_argument("--junit", type=Path, help="write JUnit XML here")
    zip_group = grade.add_mutually_exclusive_group()
    zip_group.add_argument("--zip", type=Path, help="where to write the submission zip")
    zip_group.add_argument("--no-zip", action="store_true")
    grade.add_argument("--fail-under", type=float, metavar="POINTS")
    grade.add_argument("--quiet", action="store_true", help="no progress bar, no failure details")
    grade.add_argument("--ci", action="store_true",
                       help="for CI (on by itself where CI=true): no colour, no progress bar, JUnit XML "
                            "(default grader-junit.xml); under GitHub Actions also the job summary, "
                            "error annotations and the GitHub Classroom result")
    grade.add_argument("--memory", type=_positive_int, metavar="MB",
                       help="the memory the submission's worker may use (default 4096)")
    grade.add_argument("--without-gpu", choices=list(WITHOUT_GPU_CHOICES), default="advise",
                       help="a GPU training task where there is no GPU: skipped with advice, skipped, or left out")

    fixtures = commands.add_parser("fixtures", help="record the public checks' reference answers")
    fixtures.add_argument("assignment")
    fixtures.add_argument("--check", action="store_true", help="only report whether they are current")

    validate = commands.add_parser("validate", help="check an assignment's configuration and checks")
    validate.add_argument("assignment")

    calibrate = commands.add_parser(
        "calibrate", help="time the reference device the training limits are written for, into assignment.yaml")
    calibrate.add_argument("assignment")
    calibrate.add_argument("--device", choices=list(DEVICES), default="auto",
                           help="the device to time (auto: CUDA where a training task trains on it and there "
                                "is a GPU, else the CPU)")

    selfcheck = commands.add_parser("selfcheck", help="prove the sandbox's promises before grading")
    selfcheck.add_argument("--sandbox", choices=list(SANDBOX_CHOICES), default="auto",
                           help="the level to prove (auto: every level, and the one official grading would use)")

    batch = commands.add_parser("batch", help="grade a folder of submissions into a gradebook (resumable)")
    batch.add_argument("assignment")
    batch.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR",
                       help="a folder of zips and/or folders (a Gradescope or GitHub Classroom export works)")
    batch.add_argument("--out", type=Path, required=True, help="where the database, gradebook and reports go")
    batch.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                       help="submissions graded at once (slurm/ray: at most this many at a time)")
    batch.add_argument("--executor", choices=list(EXECUTORS), default="local")
    add_grading_arguments(batch, seed_help="the seed of every submission (default: one drawn for the batch)")
    batch.add_argument("--regrade", nargs="*", metavar="ID",
                       help="grade every submission again, even unchanged ones; with IDs, only those "
                            "(the others are kept as they are)")
    batch.add_argument("--similarity", choices=list(SIMILARITY_CHOICES), default="auto",
                       help="after grading, look for similar submissions (never changes a score; "
                            f"auto: above {SIMILARITY_AUTO_ABOVE} submissions)")
    batch.add_argument("--gpus", type=int, metavar="N", help="local: GPUs to use (default: every visible one)")
    batch.add_argument("--gpus-per-job", type=int, metavar="N",
                       help="slurm/ray: GPUs each submission holds (default: 1 when a task trains on a GPU)")
    batch.add_argument("--partition", help="slurm: the partition to submit to")
    batch.add_argument("--slurm-cluster", help=argparse.SUPPRESS)  # submitit's "local" runs the array here
    batch.add_argument("--ray-address", help="ray: the cluster to connect to (default: start a local one)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar, no summary tables")

    gradebook = commands.add_parser("gradebook", help="write a batch's grades for an LMS to import")
    gradebook.add_argument("batch_dir", type=Path, metavar="DIR", help="the --out folder of `grader batch`")
    gradebook.add_argument("--format", required=True, choices=list(LMS_FORMATS),
                           help="canvas: Canvas's Grade Import CSV; moodle: Moodle's CSV grade import; "
                                "csv: id,total,max")
    gradebook.add_argument("--roster", type=Path, metavar="ROSTER.csv",
                           help="submission id -> the student in the LMS (columns: " + ", ".join(ROSTER_COLUMNS) + ")")
    gradebook.add_argument("--out", type=Path, metavar="FILE", help="default: DIR/grades_<format>.csv")
    gradebook.add_argument("--assignment-name", help="the grade column's name in the LMS (default: the batch's assignment)")
    gradebook.add_argument("--assignment-id", help="canvas: the assignment's Canvas id, shown in its column's name")

    release = commands.add_parser("release", help="write the student bundle (no reference, no hidden checks)")
    release.add_argument("assignment")
    release.add_argument("--out", type=Path, required=True, help="an empty folder, or a previous bundle")
    release.add_argument("--overwrite-student-files", action="store_true",
                         help="replace student files changed since the previous bundle (a student's code) with the stubs")

    export = commands.add_parser("export", help="package the grader for another grading service")
    targets = export.add_subparsers(dest="target", required=True, parser_class=_Parser)
    gradescope = targets.add_parser("gradescope", help="an autograder zip for a Gradescope programming assignment")
    gradescope.add_argument("assignment")
    gradescope.add_argument("--out", type=Path, required=True, help="the zip to write, e.g. autograder.zip")
    gradescope.add_argument("--device", choices=list(DEVICES), default="auto",
                            help="where training tasks train (Gradescope has no GPU: cpu trains them there)")
    gradescope.add_argument("--data", choices=list(EXPORT_DATA_CHOICES), default=EXPORT_DATA_CHOICES[0],
                            help="training data: the synthetic stand-in, or CIFAR-10")
    gradescope.add_argument("--cifar10-archive", type=Path, help="with --data auto: ship this archive in the zip")
    gradescope.add_argument("--time-limit", type=float, metavar="SECONDS",
                            help="stop grading a submission after this long and report it; set it under the "
                                 "assignment's Gradescope timeout (Gradescope's default: 600 s)")
    gradescope.add_argument("--memory", type=_positive_int, metavar="MB",
                            help="the memory the submission's worker may use; leave room for the grader in the "
                                 "container's memory (Gradescope's default container: 768 MB)")
    gradescope.add_argument("--gpu-tasks", choices=list(EXPORT_GPU_TASKS), default=EXPORT_GPU_TASKS[0],
                            help="GPU training tasks on Gradescope's CPU machines (with --device auto): a 0 with "
                                 "the reason, or left out of the results")
    return parser


def entry() -> NoReturn:
    """`grader` and `python -m grader`: `main`, then an exit without the interpreter's teardown of its
    modules, which with torch loaded costs about 0.3 s per command and gives nothing: every file the
    command wrote is closed by then, and the exit handlers (threads joined, temporary folders removed)
    run here first."""
    import atexit

    status = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: Optional[Sequence[str]] = None) -> int:
    previous = _take_sigterm()
    try:
        return _run(argv)
    except Terminated:
        print("\ngrader: stopped by SIGTERM" + _RESUMABLE.get(_command(argv), ""), file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        # The workers and scratch folders were closed on the way out (their `finally` blocks); a
        # traceback of where the grader happened to be would only hide this line.
        print("\ngrader: interrupted" + _RESUMABLE.get(_command(argv), ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - the last word: the traceback, and a status no other outcome has
        import traceback

        traceback.print_exc()
        print(f"grader: internal error (exit status {EXIT_INTERNAL}): the grader failed, not the submission; "
              "nothing of this run's results can be trusted. Please report the traceback above.", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        _restore_sigterm(previous)


# What an interrupted command keeps, where the same command goes on from it.
_RESUMABLE = {"batch": ": the submissions graded so far are kept in --out; the same command grades the rest"}


def _command(argv: Optional[Sequence[str]]) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((word for word in words if not word.startswith("-")), "")


def _take_sigterm() -> Any:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None   # signal handlers can be set from the main thread only (a caller's thread: left alone)

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()
    return signal.signal(signal.SIGTERM, terminated)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    from grader.assignment import ConfigError

    try:
        if args.command == "grade":
            return _grade(args)
        if args.command == "fixtures":
            return _fixtures(args)
        if args.command == "selfcheck":
            return _selfcheck(args)
        if args.command == "release":
            return _release(args)
        if args.command == "export":
            return _export(args)
        if args.command == "batch":
            return _batch(args, list(argv) if argv is not None else sys.argv[1:])
        if args.command == "gradebook":
            return _gradebook(args)
        if args.command == "calibrate":
            return _calibrate(args)
        return _validate(args)
    except ConfigError as exc:
        print(f"grader: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _console(stderr: bool = False):  # noqa: ANN202 - rich is imported lazily for start-up time
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR")) or os.environ.get("CI") == "true"
    # Soft wrap: a message goes out as one line when it is not a terminal (logs, CI, tests).
    console = Console(stderr=stderr, no_color=no_color, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 120  # logs and CI: wide enough for a reason on one line
    return console


def _grade(args: argparse.Namespace) -> int:
    from grader.assignment import load_assignment
    from grader.engine.grading import GradeOptions, grade, grading_mode
    from grader.report import github, write_each
    from grader.report.gradescope import write_results_json
    from grader.report.junit import write_junit
    from grader.report.terminal import grading_progress, plain, render_table
    from grader.engine.submission import UnusableSubmission, prepare_submission
    from grader.delivery.submission_zip import ZipError, write_submission_zip

    ci = github.ci_mode(args.ci, os.environ)
    assignment = load_assignment(args.assignment)
    if (too_little := _memory_too_little(assignment.spec, args.memory)) is not None:
        print(too_little, file=sys.stderr)
        return EXIT_USAGE
    if (unmatched := _only_matches_nothing(assignment.spec, args.only)) is not None:
        print(unmatched, file=sys.stderr)
        return EXIT_USAGE
    mode = grading_mode(assignment, args.mode)
    if ci:  # logs: plain text, whatever FORCE_COLOR or the terminal say
        from rich.console import Console

        console, errors = (Console(stderr=stderr, color_system=None, no_color=True, force_terminal=False,
                                   highlight=False, soft_wrap=True, width=120) for stderr in (False, True))
    else:
        console, errors = _console(), _console(stderr=True)
    try:
        submission = prepare_submission(assignment, args.submission)
    except UnusableSubmission as exc:  # its message quotes the submission's file names
        errors.print("[red]grader: unusable submission:[/]", plain(str(exc)))
        return EXIT_UNUSABLE
    student_files = github.StudentFiles(
        graded=submission.package,
        source=(args.submission if args.submission is not None and args.submission.is_dir()
                else assignment.directory if args.submission is None else None),
        names=tuple(assignment.spec.student_files))
    show_progress = console.is_terminal and not args.quiet and not ci
    try:
        with grading_progress(console, show_progress, lines=None if args.quiet else console) as progress:
            options = GradeOptions(**choices_from_arguments(args), mode=mode, seed=args.seed,
                                   on_collected=progress.on_collected, on_check_done=progress.on_check_done,
                                   on_task_start=progress.on_task_start,
                                   on_training_progress=progress.on_training_progress,
                                   memory_bytes=args.memory * 1024 * 1024 if args.memory else None,
                                   without_gpu=args.without_gpu.replace("-", "_"))
            result = grade(assignment, submission, options)
    except Exception as exc:  # a dataset problem: named file, what to do
        from grader.data import DatasetError

        if not isinstance(exc, DatasetError):
            raise
        errors.print(f"[red]grader: data error:[/] {exc}")
        return EXIT_USAGE
    finally:
        submission.cleanup()
    junit = args.junit or (Path("grader-junit.xml") if ci else None)
    writers = [("the report", lambda: render_table(result, console, details=not args.quiet))]
    plots = [t for t in result.tasks if t.training is not None and t.training.history is not None]
    if plots:
        folder = (args.json.parent if args.json else Path(".")) / f"{assignment.id}_training"
        writers.append((f"the training curves in {folder}", lambda: _write_training_plots(plots, folder, console)))
    if args.json:
        writers.append((f"the JSON result {args.json}", lambda: write_results_json(result, args.json)))
    if junit:
        writers.append((f"the JUnit XML {junit}", lambda: write_junit(result, junit)))
    if ci and github.in_github_actions(os.environ):
        writers += github.github_writers(result, os.environ, files=student_files, default_workspace=Path.cwd(),
                                         print_line=lambda line: print(line, flush=True))
    status = EXIT_OK
    for failure in write_each(writers):
        errors.print(plain(f"grader: {failure}"))
        status = EXIT_USAGE  # a file asked for is not there: a CI step that reads it must not pass
    if not args.no_zip:
        source = args.submission if args.submission and args.submission.is_dir() else assignment.directory
        # Someone else's folder graded officially (an instructor, a TA) gets no zip in the current
        # folder unless one is asked for with --zip.
        if args.submission is None or (args.submission.is_dir() and (args.zip is not None or mode != "official")):
            destination = args.zip or Path(f"{assignment.id}_submission.zip")
            try:
                write_submission_zip(assignment, source, destination, result)
                console.print(f"Submission zip: {destination}")
            except ZipError as exc:
                errors.print(f"[red]grader: {exc}[/]")
                status = EXIT_UNUSABLE
    if args.fail_under is not None and result.score < args.fail_under:
        most = result.max_score
        console.print(f"Score {result.score:g} is under --fail-under {args.fail_under:g}"
                      + (f", which is more than the {most:g} points the tasks graded here can give" if args.fail_under > most
                         else ""))
        return EXIT_FAIL_UNDER
    return status


def _write_training_plots(tasks, folder: Path, console) -> None:  # noqa: ANN001 - TaskResults, a rich Console
    from grader.engine.training_history import write_plot

    for task in tasks:
        path = write_plot(task.training.history, folder / f"{task.task_id}.png", f"{task.task_id}: {task.message[:80]}")
        console.print(f"Training curves: {path}", markup=False)


# The least memory (MB) a worker is given: what importing the framework and answering the checks takes
# (the torch assignments' references need about 300 MB; a worker held below that fails every task, the
# reference's too, as if the students' code were wrong).
MIN_WORKER_MB = {"numpy": 128, "torch": 384}


def _memory_too_little(spec, memory_mb: Optional[int]) -> Optional[str]:  # noqa: ANN001 - AssignmentSpec
    least = MIN_WORKER_MB[spec.framework]
    if memory_mb is None or memory_mb >= least:
        return None
    return (f"grader: error: --memory {memory_mb} is less than the {least} MB a worker of {spec.id} needs ({spec.framework} "
            "and the checks' inputs): every task would fail, the reference's too, as if the code were wrong")


def _only_matches_nothing(spec, only: Optional[str]) -> Optional[str]:  # noqa: ANN001 - AssignmentSpec
    """The usage error for an `--only` that selects no task (else None): grading nothing would print
    "Score: 0 / 0" as if it had worked."""
    if only is None:
        return None
    # Each glob must match: one mistyped among several would otherwise grade less than was asked, silently.
    unmatched = [glob.strip() for glob in only.split(",") if glob.strip() and not spec.select(glob.strip())]
    if not unmatched and spec.select(only):
        return None
    import textwrap

    listed = textwrap.fill(", ".join(t.id for t in spec.tasks), width=100, initial_indent="  ",
                           subsequent_indent="  ", break_on_hyphens=False)
    what = f"--only {only!r}" if not unmatched or unmatched == [only.strip()] else \
        f"{', '.join(map(repr, unmatched))} of --only {only!r}"
    return f"grader: error: {what} matches no task of {spec.id}; its tasks are:\n{listed}"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _batch(args: argparse.Namespace, argv: list[str]) -> int:
    from grader.batch.executor import BatchAborted
    from grader.batch.outputs import print_summary
    from grader.batch.progress import batch_progress
    from grader.batch.run import BatchBusy, BatchOptions, NoSubmissions, UnknownSubmissions, grade_batch
    from grader.report.terminal import plain

    from grader.assignment import load_assignment

    console, errors = _console(), _console(stderr=True)
    if (unmatched := _only_matches_nothing(load_assignment(args.assignment).spec, args.only)) is not None:
        print(unmatched, file=sys.stderr)
        return EXIT_USAGE
    options = BatchOptions(
        **choices_from_arguments(args), assignment=args.assignment, submissions=args.submissions, out=args.out,
        jobs=args.jobs, executor=args.executor, mode=args.mode, seed=args.seed,
        regrade=args.regrade is not None, regrade_only=tuple(args.regrade or ()), similarity=args.similarity,
        gpus=args.gpus, partition=args.partition, gpus_per_job=args.gpus_per_job,
        slurm_cluster=args.slurm_cluster, ray_address=args.ray_address, arguments=argv)
    if not args.submissions.is_dir():
        errors.print(f"[red]grader batch:[/] {args.submissions} is not a folder of submissions")
        return EXIT_USAGE
    try:
        with batch_progress(console, not args.quiet) as progress:  # a bar, or plain lines off a terminal
            outcome = grade_batch(options, progress)
    except UnknownSubmissions as exc:  # the ids are the instructor's typing, and the folder's names
        errors.print("[red]grader batch: --regrade:[/]", plain(str(exc)))
        return EXIT_USAGE
    except NoSubmissions as exc:  # the folder's entries are named as the students named them
        errors.print("[red]grader batch:[/]", plain(str(exc)))
        return EXIT_USAGE
    except (BatchAborted, BatchBusy, ImportError) as exc:
        errors.print(f"[red]grader batch:[/] {exc}", markup=True, highlight=False)
        return EXIT_USAGE
    for line in outcome.passed_over:  # entries of the folder, named as the students named them
        errors.print(plain(f"passed over {line}"))
    for line in outcome.unwritten:
        errors.print(plain(f"could not write the files of {line}"))
    for line in outcome.notes:
        errors.print(plain(f"note: {line}"))
    if not args.quiet:
        print_summary(outcome.summary, console)
    kept = "kept as they were" if args.regrade else "unchanged since they were graded"
    console.print(f"{len(outcome.graded)} graded now, {len(outcome.skipped)} {kept}; "
                  f"gradebook: {outcome.gradebook}, summary: {outcome.summary_path}"
                  + (f", report: {outcome.report}" if outcome.report is not None else ""), markup=False)
    if outcome.similar:
        console.print(f"{len(outcome.similar)} pair(s) of similar submissions (see the report)", markup=False)
    return EXIT_OK


def _gradebook(args: argparse.Namespace) -> int:
    from grader.batch.lms import LmsExportError, export_grades

    try:
        export = export_grades(args.batch_dir, args.format, roster=args.roster, out=args.out,
                               assignment_name=args.assignment_name, assignment_id=args.assignment_id)
    except LmsExportError as exc:
        print(f"grader gradebook: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in export.warnings:
        print(f"grader gradebook: warning: {warning}", file=sys.stderr)
    print(f"wrote {export.rows} grade(s) for {args.format} to {export.path}")
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from grader.assignment import load_assignment
    from grader.delivery.release import build_bundle

    written = build_bundle(load_assignment(args.assignment), args.out,
                           overwrite_student_files=args.overwrite_student_files)
    print(f"wrote the student bundle of {args.assignment} to {args.out} ({len(written)} files)")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from grader.assignment import load_assignment
    from grader.delivery.gradescope_export import build_autograder

    assignment = load_assignment(args.assignment)
    if (too_little := _memory_too_little(assignment.spec, args.memory)) is not None:
        print(too_little, file=sys.stderr)
        return EXIT_USAGE
    path = build_autograder(assignment, args.out, device=args.device, data=args.data,
                            cifar10_archive=args.cifar10_archive, time_limit_s=args.time_limit,
                            memory_mb=args.memory, gpu_tasks=args.gpu_tasks)
    print(f"wrote the Gradescope autograder of {args.assignment} to {path}")
    return EXIT_OK


def _fixtures(args: argparse.Namespace) -> int:
    from grader.assignment import load_assignment
    from grader.oracle.fixtures import compare_fixtures, record, write_fixtures

    assignment = load_assignment(args.assignment)
    recorded = record(assignment)
    if args.check:
        differences = compare_fixtures(assignment, recorded)
        for difference in differences:
            print(f"{assignment.fixtures_directory / difference.file}: {difference.problem}")
        if differences:
            print(f"fixtures of {assignment.id} are stale: run `grader fixtures {assignment.id}`")
            return EXIT_FAIL_UNDER
        print(f"fixtures of {assignment.id} are current")
        return EXIT_OK
    for path in write_fixtures(assignment, recorded):
        print(f"wrote {path}")
    return EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    from grader.assignment import ConfigError, load_assignment
    from grader.engine.calibration import CalibrationError, calibration_block, measure, write_calibration
    from grader.engine.grading import library_versions
    from grader.engine.training import cuda_available

    assignment = load_assignment(args.assignment)
    spec = assignment.spec
    training = [t for t in spec.tasks if t.training is not None]
    if not training:
        raise ConfigError(f"{assignment.id} has no training task: there is no time limit to calibrate")
    device = args.device
    if device == "auto":
        device = "cuda" if any(t.training.device == "cuda" for t in training) and cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ConfigError("--device cuda: this machine has no CUDA device")
    try:
        timing = measure(spec.framework, device)
    except CalibrationError as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return EXIT_USAGE
    previous = spec.calibration
    write_calibration(assignment.directory / "assignment.yaml", calibration_block(timing, library_versions()))
    print(f"{timing.workload} on {timing.device_model} ({device}): {timing.seconds * 1000:.1f} ms per repeat "
          f"+- {timing.spread:.1%} over {timing.repeats} repeats")
    if previous is not None:
        print(f"this device against the previous reference, {previous.device_model} ({previous.device}): "
              f"x{timing.seconds / previous.seconds:.2f}")
    limits = ", ".join(f"{t.id} {t.training.time_limit_s:g} s" for t in training if t.training.calibrated)
    print(f"wrote the calibration into {assignment.directory / 'assignment.yaml'}: the limits ({limits or 'none scaled'}) "
          f"now mean seconds on this device, scaled on every other")
    return EXIT_OK


def _selfcheck(args: argparse.Namespace) -> int:
    from rich.table import Table

    from grader.sandbox.levels import LEVELS, level_problem
    from grader.sandbox.selfcheck import SandboxRefused, adopt_verdict, choose_level, run_selfcheck

    levels = [level for level in LEVELS if level != "none"] if args.sandbox == "auto" else [args.sandbox]
    console = _console()
    failed = []
    for level in levels:
        problem = level_problem(level)
        if problem is not None:
            console.print(f"[bold]sandbox level {level}[/]: [red]cannot start here[/]: {problem}")
            adopt_verdict(level, (f"{level} cannot start here: {problem}",))
            failed.append(level)
            continue
        observations = run_selfcheck(level, every_promise=True)
        table = Table(title=f"sandbox level {level}")
        for column in ("promise", f"made by {level}", "observed", "held"):
            table.add_column(column)
        broken = []
        for o in observations:
            made = level in o.promise.levels
            if made and not o.held:
                broken.append(f"{o.promise.name}: {o.observed}" + (f" (fix: {o.promise.fix})" if o.promise.fix else ""))
            verdict = ("[green]yes[/]" if o.held else "[red]NO[/]") if made else ("yes" if o.held else "no (not promised)")
            table.add_row(o.promise.name, "yes" if made else "no", o.observed, verdict)
        console.print(table)
        adopt_verdict(level, tuple(b for b in broken))
        if broken:
            console.print(f"[red]{len(broken)} promise(s) of the {level} level do not hold here[/]")
            failed.append(level)
        else:
            console.print(f"every promise of the {level} level holds")
    if args.sandbox != "auto":
        return EXIT_FAIL_UNDER if failed else EXIT_OK
    try:
        chosen = choose_level("auto", "official")
    except SandboxRefused as refusal:
        console.print(str(refusal), markup=False)
        return EXIT_FAIL_UNDER
    console.print(f"official grading here runs at the {chosen} level")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from grader.assignment import load_assignment
    from grader.engine.validate import validate

    assignment = load_assignment(args.assignment)
    problems = validate(assignment)
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_USAGE
    print(f"{assignment.id}: {len(assignment.spec.tasks)} tasks, configuration and checks agree")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
