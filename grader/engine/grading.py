"""Grading one submission of one assignment: checks, then training tasks, into a GradingResult."""

from __future__ import annotations

import gc
import importlib
import platform
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional, TypeVar

import numpy as np

from grader import __version__
from grader.assignment import Assignment, ConfigError, TaskSpec
from grader.engine.source_review import review_notes
from grader.engine.submission import PreparedSubmission
from grader.engine.training_place import TrainingPlace
from grader.options import GradingChoices
from grader.oracle.reference import LiveBackend, ReferenceOracle, ReplayBackend, load_reference_package, unload_reference_package
from grader.results import CheckResult, GradingResult, Outcome, TaskResult
from grader.sandbox.errors import SandboxBroken, WorkerFailure
from grader.sandbox.levels import CONFINED_LEVELS, level_problem
from grader.sandbox.remote import WorkerSession
from grader.sandbox.selfcheck import SandboxRefused, choose_level, describe_level
from grader.sandbox.worker_process import Limits, make_scratch_dir, remove_scratch_dir

if TYPE_CHECKING:
    from grader.oracle.sketches import Explainer

PUBLIC_SEED = 0
T = TypeVar("T")

# A NumPy assignment's layers and models are written with NumPy: a framework's autograd (or its
# ready-made layers) would compute their backward passes for them.
FRAMEWORKS_HIDDEN_FROM_NUMPY = ("torch", "torchvision", "torchaudio", "functorch", "torchgen", "jax", "jaxlib",
                                "tensorflow", "keras", "autograd", "chainer", "mxnet", "cupy")


@dataclass(frozen=True, kw_only=True)
class GradeOptions(GradingChoices):
    """How to grade one submission: the shared choices (grader.options), then this grading's own."""

    mode: str = "public"                   # public | official
    seed: Optional[int] = None             # official mode: fix the run's seed
    call_timeout_s: Optional[float] = None  # overrides the assignment's per-request limit
    memory_bytes: Optional[int] = None     # the worker's memory limit (default: Limits' 4 GiB)
    # A training task on a GPU where there is none: "advise" skips it saying how to train it on the
    # CPU, "skip" skips it without advice (a student on a grading service cannot follow it),
    # "leave_out" reports nothing for it (the task is graded elsewhere).
    without_gpu: str = "advise"
    synthetic_train: int = 10_000
    synthetic_test: int = 2_000
    validation_images: int = 1000
    on_collected: Callable[[int], None] = field(default=lambda count: None)
    on_check_done: Callable[[CheckResult], None] = field(default=lambda result: None)
    on_task_start: Callable[[str], None] = field(default=lambda task_id: None)
    # A training task's progress as its Solver prints it (task id, TrainingProgress, whether an epoch
    # just ended): display only.
    on_training_progress: Callable[[str, object, bool], None] = field(
        default=lambda task_id, progress, epoch_ended: None)
    # Where the training tasks train: given the device they need ("cpu" or "cuda"), entered around
    # all of them, it gives their TrainingPlace (the worker's environment, such as the GPU lent, and
    # the CPU cores it is pinned to). Batch grading lends each submission a place no other training
    # shares this way; None trains in the checks' worker on what it sees.
    training_lease: Optional[Callable[[str], ContextManager[TrainingPlace]]] = None


def library_versions() -> dict[str, str]:
    import sys

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            from importlib.metadata import version

            versions["torch"] = version("torch")
        except Exception:  # noqa: BLE001 - torch not installed at all
            pass
    else:
        versions["torch"] = torch.__version__
    return versions


def grading_mode(assignment: Assignment, requested: Optional[str]) -> str:
    """The mode asked for, or the default: official where the reference solution is here."""
    if requested is None:
        return "official" if assignment.reference_directory is not None else "public"
    if requested == "official" and assignment.reference_directory is None:
        raise ConfigError(f"official mode needs the reference solution in reference/{assignment.id}, "
                          "which is not here")
    return requested


class IsolatedSessions:
    """Worker sessions for the tasks graded with the reference's copies of their prerequisites: one
    per distinct set of files, each on its own scratch copy of the submission, started on first use."""

    def __init__(self, main: WorkerSession, prerequisites: dict[str, tuple[str, ...]],
                 new_session: Callable[[Path, Path], WorkerSession]):
        self.main = main
        self.prerequisites = prerequisites      # task id -> the files replaced, for isolated tasks only
        self.new_session = new_session
        self.packages: dict[tuple[str, ...], tuple[Path, Path]] = {}   # files -> (scratch, package)
        self.sessions: dict[tuple[str, ...], WorkerSession] = {}
        self.logs: list[str] = []

    def prepare(self, submission: PreparedSubmission, reference_directory: Path) -> None:
        """Copies the submission, as prepared and before any of its code ran, once per set of files."""
        for files in sorted(set(self.prerequisites.values())):
            scratch = make_scratch_dir()
            package = scratch / submission.package.name
            self.packages[files] = (scratch, package)
            package.mkdir()
            for entry in submission.package.iterdir():
                if entry.is_file() and not entry.is_symlink():
                    shutil.copyfile(entry, package / entry.name)
            for name in files:
                shutil.copyfile(reference_directory / name, package / name)

    def session_for_task(self, task_id: str) -> WorkerSession:
        files = self.prerequisites.get(task_id)
        if files is None:
            return self.main
        if files not in self.sessions:
            scratch, package = self.packages[files]
            session = self.new_session(package, scratch)
            session.deadline = self.main.deadline  # one time budget for all checks of the submission
            self.sessions[files] = session
            session.start()
        return self.sessions[files]

    def close(self) -> None:
        for files, session in self.sessions.items():
            session.close()
            text = session.output()
            if text:
                self.logs.append(f"\n--- printed while grading with the reference's {', '.join(files)} ---\n{text}")
        self.sessions.clear()

    def output(self) -> str:
        return "".join(self.logs)

    def cleanup(self) -> None:
        self.close()
        for scratch, _ in self.packages.values():
            remove_scratch_dir(scratch)
        self.packages.clear()


def isolated_tasks(assignment: Assignment, tasks: list[TaskSpec], mode: str) -> dict[str, tuple[str, ...]]:
    """Task id -> the prerequisites replaced by the reference's, for the tasks scored by checks that
    are graded that way in this mode."""
    if mode != "official" or not assignment.spec.isolate_prerequisites:
        return {}
    isolated = {t.id: tuple(sorted(t.prerequisites)) for t in tasks if t.training is None and t.prerequisites}
    assert assignment.reference_directory is not None
    for task_id, files in isolated.items():
        for name in files:
            if not (assignment.reference_directory / name).is_file():
                raise ConfigError(f"task {task_id}: prerequisite {name} is not in the reference solution "
                                  f"({assignment.reference_directory / name} does not exist)")
    return isolated


def grade(assignment: Assignment, submission: PreparedSubmission, options: GradeOptions) -> GradingResult:
    start = time.perf_counter()
    started_at = time.time()
    spec = assignment.spec
    seed = PUBLIC_SEED if options.mode == "public" else (
        options.seed if options.seed is not None else secrets.randbelow(2**31))
    selected = spec.select(options.only)
    check_tasks = [t for t in selected if t.training is None]

    # Proving the sandbox's promises (official grading) takes as long as starting a worker: the worker
    # starts meanwhile at the level the proof is expected to choose, and is replaced if it chooses another.
    # Nothing is sent to it, so none of the submission's code runs there, before the proof is in.
    proving = ThreadPoolExecutor(max_workers=1) if needs_proof(options.sandbox, options.mode) else None
    chosen = proving.submit(_timed, sandbox_level, options.sandbox, options.mode) if proving else None
    level = expected_level(options.sandbox) if chosen else sandbox_level(options.sandbox, options.mode)
    limits = Limits(call_timeout_s=options.call_timeout_s or spec.call_timeout_s, sandbox=level)
    if options.memory_bytes:
        limits.memory_bytes = options.memory_bytes
    if spec.framework == "numpy":
        limits.hidden_modules = FRAMEWORKS_HIDDEN_FROM_NUMPY
    preload = ("torch",) if spec.framework == "torch" else ()

    def new_session(package: Path, scratch: Path, extra_env: Optional[dict[str, str]] = None) -> WorkerSession:
        created = WorkerSession(package, scratch, limits, budget_s=spec.submission_timeout_s, preload=preload,
                                extra_env=extra_env)
        if package == submission.package:
            created.renew_scratch = submission.renew
        return created

    timings: dict[str, float] = {}
    isolation = isolated_tasks(assignment, check_tasks, options.mode)
    session = new_session(submission.package, submission.scratch)
    isolated = IsolatedSessions(session, isolation, new_session)
    package = None
    restored_at_end: list[Callable[[], None]] = []
    loaded = LoadedObjects()
    restored_at_end.append(loaded.release)
    try:
        if chosen is not None:
            assert proving is not None
            try:
                session.start()
            except (WorkerFailure, SandboxBroken):
                pass  # the level expected cannot start here: the proof says which can
            if options.mode == "official":
                # The reference and the framework it runs on (a second's import for torch) load meanwhile:
                # the proof's thread spends most of its time waiting for its probe worker.
                assert assignment.reference_directory is not None
                loading = time.perf_counter()
                package = load_reference_package(assignment.id, assignment.reference_directory, assignment.directory)
                for module in preload:
                    importlib.import_module(module)
                timings["reference_load_s"] = time.perf_counter() - loading
            try:
                level, timings["sandbox_proof_s"] = chosen.result()
            finally:
                proving.shutdown()
            if level != limits.sandbox:
                session.close()
                limits.sandbox = level
        if isolation:
            assert assignment.reference_directory is not None
            isolated.prepare(submission, assignment.reference_directory)
        try:
            session.start()
        except SandboxBroken as exc:
            raise ConfigError(f"--sandbox {limits.sandbox}: {exc}") from None
        for module in preload:
            restored_at_end.append(one_thread(importlib.import_module(module)))
        # What running the checks needs (pytest, the checking library, the mistakes' sketches: 0.15 s of
        # imports) is imported here, once the worker is starting, not before it starts.
        from grader.engine.pytest_plugin import GradingPlugin, run_checks
        from grader.engine.task_uses import point_to_failing_uses
        from grader.engine.training import run_training_tasks
        from grader.oracle.sketches import LiveExplainer
        if options.mode == "official":
            assert assignment.reference_directory is not None
            if package is None:
                package = load_reference_package(assignment.id, assignment.reference_directory,
                                                 assignment.directory)
            oracle = ReferenceOracle(LiveBackend(package))
        else:
            oracle = ReferenceOracle(ReplayBackend(assignment.fixtures_directory))
        explainer = mistake_explainer(assignment, options.mode, limits, preload) if options.hints else None
        plugin = GradingPlugin(session, oracle, seed, {t.id for t in spec.tasks}, only=options.only,
                               on_collected=options.on_collected, on_check_done=options.on_check_done,
                               session_for_task=isolated.session_for_task if isolation else None,
                               explainer=explainer)
        paths = [str(assignment.checks_directory)]
        hidden = assignment.hidden_checks_directory
        if options.mode == "official" and hidden is not None and any(hidden.glob("test_*.py")):
            paths.append(str(hidden))
        checks_s = 0.0
        loaded.freeze()
        if check_tasks:
            try:
                checks_start = time.perf_counter()
                checks_s = run_checks(plugin, paths, str(assignment.directory))
                collected_at = getattr(plugin, "collected_at", None)
                if collected_at is not None:
                    timings["collection_s"] = collected_at - checks_start
                    timings["checks_s"] = checks_start + checks_s - collected_at
            finally:
                isolated.close()
                if isinstance(explainer, LiveExplainer):
                    explainer.workers.close()
        if plugin.collection_errors:
            raise ConfigError("the checks could not be collected:\n" + "\n".join(plugin.collection_errors))
        tasks = [_task_from_checks(task, plugin.results, submission) for task in check_tasks]
        training_tasks = [t for t in selected if t.training is not None and options.training]
        training_start = time.perf_counter()
        if training_tasks and options.training_lease is not None:
            session.close()  # nothing of the checks' worker runs beside the training
            device = "cuda" if any(_training_device(t, options) == "cuda" for t in training_tasks) else "cpu"
            # Pinned while the trainer's workers start (each inherits the cores) and while the grader
            # times them, then back where the checks ran.
            with options.training_lease(device) as place, place.pinned():
                trainer = new_session(submission.package, submission.scratch, place.env)
                try:
                    tasks += run_training_tasks(trainer, training_tasks, options, seed, spec.framework, place,
                                                calibration=spec.calibration)
                finally:
                    trainer.close()
                    session.logs.append(trainer.output())
        elif training_tasks:
            tasks += run_training_tasks(session, training_tasks, options, seed, spec.framework, TrainingPlace(),
                                        calibration=spec.calibration)
        if training_tasks:
            timings["training_s"] = time.perf_counter() - training_start
        order = {t.id: i for i, t in enumerate(spec.tasks)}
        tasks.sort(key=lambda t: order[t.task_id])
        tasks = point_to_failing_uses(spec, tasks, set(isolation))
        session.close()  # a worker's last output reaches its log when it exits
        timings.update(started_at=started_at, ended_at=time.time())
        return GradingResult(
            assignment=assignment.id, mode=options.mode, seed=seed, tasks=tuple(tasks),
            execution_time_s=time.perf_counter() - start, grader_version=__version__,
            versions=library_versions(),
            output=_notes(submission, assignment, check_tasks, isolation, options.mode, level),
            submission_log=session.output() + isolated.output(), checks_s=checks_s, sandbox=level,
            timings=timings,
        )
    finally:
        session.close()
        isolated.cleanup()
        if package is not None:
            unload_reference_package(package)
        for restore in reversed(restored_at_end):
            restore()


def one_thread(framework: Any) -> Callable[[], None]:
    """The grader's own work in a framework is the reference's and the checks', on a check's small
    inputs: one thread. More would spin-wait between a check's round trips on the cores that its
    worker, and the other gradings of a batch, need (two batch jobs on two cores went from 27 to 40
    submissions a minute). Returns what puts the process's setting back when the grading ends."""
    if getattr(framework, "__name__", "") != "torch":
        return lambda: None
    before = framework.get_num_threads()
    framework.set_num_threads(1)
    return lambda: framework.set_num_threads(before)


class LoadedObjects:
    """What the grader loads before its checks (the framework, the reference, pytest: some 200,000
    objects) is kept out of the cyclic collector's full passes, which would walk them all (about 80 ms
    each) a few times while torch imports and a few times more during the checks. The collector
    pauses from the start of a grading until the checks begin (an import makes little cyclic garbage),
    then what is loaded is frozen and the collector resumes for what the checks make. `release`
    hands the objects back to the collector when the grading ends, unless objects were frozen before
    the grading began (by a program that runs gradings in its own process), which stay frozen."""

    def __init__(self) -> None:
        self._was_enabled = gc.isenabled()
        self._frozen_before = gc.get_freeze_count()
        gc.disable()

    def freeze(self) -> None:
        gc.freeze()
        self._resume()

    def release(self) -> None:
        if not self._frozen_before:
            gc.unfreeze()
        self._resume()

    def _resume(self) -> None:
        if self._was_enabled:
            gc.enable()


def _timed(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    began = time.perf_counter()
    return function(*args), time.perf_counter() - began


def sandbox_level(requested: str, mode: str) -> str:
    """The level this grading runs at (official grading fails closed, see grader.sandbox.selfcheck)."""
    try:
        return choose_level(requested, mode)
    except SandboxRefused as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:
        raise ConfigError(f"--sandbox {requested}: {exc}") from None


def needs_proof(requested: str, mode: str) -> bool:
    """Whether choosing the level runs the selfcheck's probes (official grading at auto or a confined level)."""
    return mode == "official" and requested not in ("process", "none")


def expected_level(requested: str) -> str:
    """The level the proof will choose if its promises hold: the one asked for, or at auto the strongest
    confined level that can start here."""
    if requested != "auto":
        return requested
    return next((level for level in CONFINED_LEVELS if level_problem(level) is None), CONFINED_LEVELS[0])


def _training_device(task: TaskSpec, options: GradeOptions) -> str:
    assert task.training is not None
    return task.training.device if options.device == "auto" else options.device


def mistake_explainer(assignment: Assignment, mode: str, limits: Limits,
                      preload: tuple[str, ...]) -> Optional[Explainer]:
    """Live against the catalogue's mistakes in official mode, from the recorded sketches in
    public mode; None where there is neither."""
    from grader.oracle.mistakes import load_catalogue
    from grader.oracle.sketches import LiveExplainer, MistakeWorkers, ReplayExplainer, read_sketches

    if mode == "official":
        mistakes = load_catalogue(assignment)
        if not mistakes:
            return None
        return LiveExplainer(MistakeWorkers(assignment, mistakes, limits, preload))
    stored = read_sketches(assignment)
    return ReplayExplainer(stored) if stored else None


def _task_from_checks(task: TaskSpec, checks: list[CheckResult], submission: PreparedSubmission) -> TaskResult:
    mine = [c for c in checks if c.task_id == task.id]
    result = TaskResult.from_checks(task.id, task.title, task.points, task.visibility, mine)
    absent = _absent_files_named(result.message, submission.missing) if result.outcome is Outcome.ERROR else []
    if absent:
        return TaskResult(task.id, task.title, task.points, 0.0, Outcome.ERROR,
                          f"{', '.join(absent)} missing from the submission; this task needs "
                          f"{'it' if len(absent) == 1 else 'them'}",
                          visibility=task.visibility, checks=result.checks, detail=result.detail)
    return result


def _absent_files_named(message: str, missing: tuple[str, ...]) -> list[str]:
    """The missing student files an import error is about, however it was imported: `import
    submission.optim` ("No module named 'submission.optim'") or `from . import optim` in a provided
    file ("cannot import name 'optim' from 'submission'")."""
    named = []
    for name in missing:
        module = name.removesuffix(".py")
        if f"No module named 'submission.{module}'" in message or f"cannot import name '{module}' from " \
                                                                   f"'submission'" in message:
            named.append(name)
    return named


def _notes(submission: PreparedSubmission, assignment: Assignment, check_tasks: list[TaskSpec],
           isolation: dict[str, tuple[str, ...]], mode: str, level: str) -> str:
    notes = [warning] if (warning := describe_level(level, mode)) else []
    if submission.missing:
        notes.append(f"Missing from the submission: {', '.join(submission.missing)} (graded as absent).")
    notes.extend(submission.warnings)
    notes.extend(review_notes(assignment, dict(submission.student_files)))
    for files in sorted(set(isolation.values())):
        tasks = [t.id for t in check_tasks if isolation.get(t.id) == files]
        verb = "was" if len(tasks) == 1 else "were"
        notes.append(f"Prerequisite isolation: {', '.join(tasks)} {verb} graded with the reference's "
                     f"{', '.join(files)}.")
    if (mode != "official" and assignment.spec.isolate_prerequisites
            and any(t.prerequisites for t in check_tasks)):
        notes.append("Prerequisite isolation was ignored: it needs the reference solution (official mode); "
                     "every task was graded with the submission's own files.")
    return "\n".join(notes)
