"""The pytest plugin that runs an assignment's checks inside the grader process.

It provides the `student`, `reference` and `rng` fixtures, links each check to its task through the
`task` marker, and turns each check's end into a `CheckResult` (a student's NotImplementedError is
`not_implemented`, a worker timeout `timeout`, a student's exception `error` with the student's
traceback, a failed comparison `failed`). A check whose worker was killed by a signal the grader
did not send (`WorkerLost`) runs once more from the start; losing the worker again is an `error` that
names both losses and does not blame the code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pytest

from grader.checking import notes

from grader.assignment import task_matches
from grader.boundary import wire
from grader.checking.compare import CheckFailed
from grader.oracle.reference import MissingFixture, ReferenceOracle
from grader.oracle.sketches import Answer, Explainer, Sketch, explainable, sketch_answers
from grader.results import CheckResult, Outcome
from grader.sandbox.errors import StudentException, WorkerCrashed, WorkerLost, WorkerTimeout
from grader.sandbox.remote import StudentProxy, WorkerSession


def check_seed(base_seed: int, nodeid: str) -> int:
    """Each check's seed depends on the run's seed and the check's name only, so adding a check
    never changes another's inputs."""
    digest = hashlib.sha256(f"{base_seed}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def seed_name(item: pytest.Item) -> str:
    """The name a check's seed is made from: its id, except that a `device` parameter of "cuda" counts
    as "cpu", so that the CUDA variant of a check draws the inputs of its CPU twin. Public grading
    on a GPU then finds the reference's answers recorded on a machine without one."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("device") != "cuda" or "[" not in item.nodeid:
        return item.nodeid
    head, _, ids = item.nodeid.partition("[")
    parts = ["cpu" if part == "cuda" else part for part in ids.removesuffix("]").split("-")]
    return f"{head}[{'-'.join(parts)}]"


def check_module_name(nodeid: str) -> str:
    """`checks/test_layers.py::test_x` -> `test_layers`: fixtures are stored per check file."""
    return nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")


@dataclass(eq=False)  # pytest keeps plugins in sets
class GradingPlugin:
    runs_assignment_checks = True  # the checks' conftest.py lets pytest go on only under the grader
    session: WorkerSession
    oracle: Optional[ReferenceOracle]
    base_seed: int
    task_ids: set[str]
    only: Optional[str] = None
    on_collected: Callable[[int], None] = lambda count: None
    on_check_done: Callable[[CheckResult], None] = lambda result: None
    # The session a task's checks talk to, by task id; None: `session` for every task.
    session_for_task: Optional[Callable[[str], WorkerSession]] = None
    # Matches failed checks with the catalogue of common mistakes; None: no hints.
    explainer: Optional[Explainer] = None
    results: list[CheckResult] = field(default_factory=list)
    collection_errors: list[str] = field(default_factory=list)
    _task_of: dict[str, str] = field(default_factory=dict)
    _observed: list[Answer] = field(default_factory=list)  # the running check's answers, sketched if it fails
    _observed_session: Optional[WorkerSession] = None
    _hints: dict[str, str] = field(default_factory=dict)
    _notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    interrupted: bool = False  # by Ctrl-C: pytest swallows the KeyboardInterrupt, `run_checks` raises it again

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def student(self, request: pytest.FixtureRequest) -> StudentProxy:
        session = self.session if self.session_for_task is None else \
            self.session_for_task(self._task_of[request.node.nodeid])
        session.seed_global_generators(check_seed(self.base_seed, seed_name(request.node)))
        if self.explainer is not None:
            self._observed_session = session
            session.observer = self._observe
        return StudentProxy(session)

    def _observe(self, value: Any, error: Optional[BaseException]) -> None:
        self._observed.append((value, error))

    @pytest.fixture
    def reference(self, request: pytest.FixtureRequest) -> ReferenceOracle:
        if self.oracle is None:
            pytest.skip("this check needs the reference solution, which is not available here")
        self.oracle.use_module(check_module_name(request.node.nodeid))
        return self.oracle

    @pytest.fixture
    def rng(self, request: pytest.FixtureRequest) -> np.random.Generator:
        return np.random.default_rng(check_seed(self.base_seed, seed_name(request.node)))

    # -- collection -----------------------------------------------------------------------------

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        self.interrupted = True

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "task(task_id): links a check to a task of assignment.yaml")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {report.longreprtext.strip().splitlines()[-1]}")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        selected = []
        for item in items:
            marker = item.get_closest_marker("task")
            if marker is None or len(marker.args) != 1:
                self.collection_errors.append(f"{item.nodeid}: has no @pytest.mark.task(\"<task id>\") marker")
                continue
            task_id = marker.args[0]
            if task_id not in self.task_ids:
                self.collection_errors.append(f"{item.nodeid}: task {task_id!r} is not in assignment.yaml")
                continue
            if self.only is not None and not task_matches(task_id, self.only):
                continue
            self._task_of[item.nodeid] = task_id
            selected.append(item)
        deselected = [i for i in items if i not in selected]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = selected
        self.collected_at = time.perf_counter()
        self.on_collected(len(selected))

    # -- running a check ------------------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Iterator[None]:
        self._observed.clear()
        notes.take()
        nodeid = pyfuncitem.nodeid
        outcome = yield
        self._run_again_if_lost(pyfuncitem, outcome)
        self._notes[nodeid] = notes.take()
        if self._observed_session is not None:
            self._observed_session.observer = None
            self._observed_session = None
        task_id = self._task_of.get(nodeid)
        if self.explainer is None or task_id is None:
            return
        error = outcome.excinfo[1] if outcome.excinfo else None

        def rerun(proxy: StudentProxy, session: WorkerSession) -> tuple[Sketch, bool]:
            return self._rerun(pyfuncitem, proxy, session)

        try:
            if error is None:
                self.explainer.after_pass(nodeid, task_id, rerun)
            elif explainable(error):
                hint = self.explainer.explain(nodeid, task_id, sketch_answers(self._observed), rerun)
                if hint:
                    self._hints[nodeid] = hint
        except (WorkerCrashed, WorkerTimeout, StudentException):
            pass  # the mistakes' worker failed: no hint, the grade is unaffected
        finally:
            notes.take()
            self._observed.clear()  # the answers' arrays and handles are not kept past their check

    def _run_again_if_lost(self, item: pytest.Function, outcome: Any) -> None:
        """A worker killed by a signal the grader did not send is the machine's failure, not the
        student's: the check runs once more from the start (the session starts a fresh worker after a
        failure), and that run's end, whatever it is, becomes the check's."""
        first = outcome.excinfo[1] if outcome.excinfo else None
        student = item.funcargs.get("student")
        if not isinstance(first, WorkerLost) or not isinstance(student, StudentProxy):
            return
        notes.take()  # what the lost run noted belongs to a run that no longer counts
        self._observed.clear()
        notes.note(notes.ran_again_after_loss(first.signal_name, "the check was run again from the start"))
        try:
            _again_unless_lost(first, lambda: self._call_again(item, student))
        except BaseException as end:  # noqa: BLE001 - pytest's skip and fail are BaseExceptions too
            outcome.force_exception(end)
        else:
            outcome.force_result(True)

    def _call_again(self, item: pytest.Function, student: StudentProxy) -> None:
        kwargs, seed = self._fresh_arguments(item, student)
        student._session.seed_global_generators(seed)
        item.obj(**kwargs)

    def _fresh_arguments(self, item: pytest.Function, student: StudentProxy) -> tuple[dict[str, Any], int]:
        """`item`'s arguments for another run with the same inputs: `student` bound to `student` and
        `rng` drawn again from the check's seed (the first run used it up); and that seed."""
        kwargs = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
        kwargs["student"] = student
        seed = check_seed(self.base_seed, seed_name(item))
        if "rng" in kwargs:
            kwargs["rng"] = np.random.default_rng(seed)
        return kwargs, seed

    def _rerun(self, item: pytest.Function, proxy: StudentProxy, session: WorkerSession) -> tuple[Sketch, bool]:
        """Runs `item`'s check again, same seed and inputs, with `student` bound to `proxy`."""
        observed: list[Answer] = []
        session.observer = lambda value, error: observed.append((value, error))
        kwargs, seed = self._fresh_arguments(item, proxy)
        failed = False
        try:
            session.seed_global_generators(seed)
            item.obj(**kwargs)
        except (WorkerCrashed, WorkerTimeout, pytest.skip.Exception):
            pass
        except Exception:  # noqa: BLE001 - the check failed, which is what a mistake does
            failed = True
        finally:
            session.observer = None
        return sketch_answers(observed), failed

    # -- outcomes -------------------------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
        outcome = yield
        report = outcome.get_result()
        task_id = self._task_of.get(item.nodeid)
        if task_id is None:
            return
        if call.when == "call" or (call.when == "setup" and (report.failed or report.skipped)):
            result = classify(item.nodeid, task_id, call, report)
            result = dataclasses.replace(result, hint=self._hints.pop(item.nodeid, ""),
                                         notes=self._notes.pop(item.nodeid, ()))
            self.results.append(result)
            self.on_check_done(result)


def _again_unless_lost(first: WorkerLost, attempt: Callable[[], None]) -> None:
    """Runs `attempt`, the second try after `first`; a second loss ends the work as a crash that
    names both signals and does not blame the code (and is not a `WorkerLost`, so nothing retries it)."""
    try:
        attempt()
    except WorkerLost as second:
        raise WorkerCrashed(notes.lost_twice(first.signal_name, second.signal_name)) from second


def _missing_package_note(exc: StudentException) -> str:
    """For an import of a package that is not installed where the code is graded (one a student's own
    machine has, such as scipy): what is there instead. A module of the submission itself that is
    missing is named by the grading as a missing file."""
    found = re.fullmatch(r"No module named '([^']+)'", exc.message) if exc.type_name == "ModuleNotFoundError" else None
    if found is None or found.group(1).split(".")[0] == "submission":
        return ""
    return (f" ({found.group(1).split('.')[0]} is not installed where your code is graded, though your machine may "
            "have it: use Python's standard library, NumPy and PyTorch)")


def _reason(excinfo: Any) -> str:
    try:
        return str(excinfo.value.msg)
    except AttributeError:
        return str(excinfo.value)


def classify(nodeid: str, task_id: str, call: pytest.CallInfo, report: pytest.TestReport) -> CheckResult:
    name = nodeid.split("/")[-1]
    duration = call.duration
    if report.passed:
        return CheckResult(name, task_id, Outcome.PASSED, duration_s=duration)
    if report.skipped:
        return CheckResult(name, task_id, Outcome.SKIPPED, _reason(call.excinfo) if call.excinfo else "skipped",
                           duration_s=duration)
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, StudentException):
        if exc.is_not_implemented:
            return CheckResult(name, task_id, Outcome.NOT_IMPLEMENTED,
                               f"not implemented yet: {exc.message}", duration_s=duration,
                               location=exc.location)
        return CheckResult(name, task_id, Outcome.ERROR,
                           f"your code raised {exc.type_name}: {exc.message}{_missing_package_note(exc)}",
                           detail=exc.traceback, duration_s=duration, location=exc.location)
    if isinstance(exc, WorkerTimeout):
        return CheckResult(name, task_id, Outcome.TIMEOUT, f"timed out: {exc}", duration_s=duration)
    if isinstance(exc, WorkerCrashed):
        return CheckResult(name, task_id, Outcome.ERROR, str(exc), duration_s=duration)
    if isinstance(exc, CheckFailed):
        return CheckResult(name, task_id, Outcome.FAILED, exc.message, detail=exc.detail, duration_s=duration)
    if isinstance(exc, wire.WireError):
        return CheckResult(name, task_id, Outcome.FAILED, f"the code returned something that cannot be graded: {exc}",
                           duration_s=duration)
    if isinstance(exc, MissingFixture):
        return CheckResult(name, task_id, Outcome.ERROR, str(exc), duration_s=duration)
    if isinstance(exc, AssertionError):
        return CheckResult(name, task_id, Outcome.FAILED, str(exc).splitlines()[0] if str(exc) else "a check failed",
                           detail=str(exc), duration_s=duration)
    if isinstance(exc, (TypeError, ValueError, IndexError, KeyError, AttributeError)):
        # The check could not use what the code returned (None, a wrong structure, a missing key).
        return CheckResult(name, task_id, Outcome.FAILED,
                           f"the result does not have the documented form ({type(exc).__name__}: {exc})",
                           detail=report.longreprtext[-4000:], duration_s=duration)
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown failure"
    return CheckResult(name, task_id, Outcome.ERROR, f"the check itself failed ({text}); please report this",
                       detail=report.longreprtext[-4000:], duration_s=duration)


# Checks report through this plugin only; pytest's own reporting, caching, assertion rewriting
# (the checks' messages come from grader.checking.compare) and leak hunting cost start-up time for nothing.
# Third-party plugins installed on the machine are never loaded: one that reorders or reseeds tests
# (pytest-randomly) would change the grade, one that writes files (pytest-benchmark's .benchmarks)
# would leave them in the student's directory.
QUIET_PYTEST_OPTIONS = [
    "--disable-plugin-autoload", "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:stepwise", "-p", "no:randomly", "-p", "no:xdist",
    "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:faulthandler", "-p", "no:doctest",
    "-p", "no:junitxml", "-p", "no:pastebin", "-p", "no:nose", "-p", "no:legacypath", "-p", "no:tmpdir",
    "-p", "no:monkeypatch", "-p", "no:recwarn", "-p", "no:setuponly", "-p", "no:setupplan", "-p", "no:logging",
    "--assert=plain", "--import-mode=importlib",
]


def run_checks(plugin: GradingPlugin, check_paths: list[str], root_dir: str) -> float:
    """Runs the checks in this process; returns the seconds it took."""
    start = time.perf_counter()
    args = [*check_paths, *QUIET_PYTEST_OPTIONS, "--rootdir", root_dir,
            # Our own empty configuration: a course repository's pytest settings must not apply.
            "-c", str(Path(__file__).with_name("checks.ini"))]
    try:
        status = pytest.main(args, plugins=[plugin])
    finally:
        forget_check_modules(check_paths)
    if plugin.interrupted:
        raise KeyboardInterrupt
    if status in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        plugin.collection_errors.append(f"pytest stopped with {status.name} while running {', '.join(check_paths)}")
    return time.perf_counter() - start


def forget_check_modules(check_paths: list[str]) -> None:
    """Check files of different assignments share module names (`checks.test_layers`); the next run
    in this process must import its own, not find the last one's in sys.modules."""
    roots = tuple(str(Path(p).resolve()) for p in check_paths)
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if isinstance(location, str) and location.startswith(roots):
            del sys.modules[name]
        elif name.split(".")[0] in ("checks", "hidden_checks"):  # the packages importlib made for them
            del sys.modules[name]
