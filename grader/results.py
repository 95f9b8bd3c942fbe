"""The one result model every writer renders: checks roll up into tasks, tasks into a grade."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Optional, get_args

from grader.engine.training_history import TrainingHistory
from grader.untrusted_text import valid_unicode

# Who sees a task's result and when (Gradescope's visibilities; assignment.yaml states one per task).
Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]
VISIBILITIES: tuple[str, ...] = get_args(Visibility)


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    NOT_IMPLEMENTED = "not_implemented"
    SKIPPED = "skipped"


# When a task's checks disagree, the task shows the outcome that tells the student most.
_TASK_OUTCOME_ORDER = [Outcome.ERROR, Outcome.TIMEOUT, Outcome.FAILED, Outcome.NOT_IMPLEMENTED,
                       Outcome.SKIPPED, Outcome.PASSED]


@dataclass(frozen=True)
class CheckResult:
    name: str                # the check's test id, e.g. test_layers.py::test_affine_forward
    task_id: str
    outcome: Outcome
    message: str = ""        # one line a student can act on
    detail: str = ""         # the longer story: traceback, worst elements
    duration_s: float = 0.0
    location: Optional[tuple[str, int]] = None  # the student's file and line, where known
    notes: tuple[str, ...] = ()  # what the check did that the student should know, pass or fail
    hint: str = ""           # a known mistake the submission's outputs match, where one does

    def __post_init__(self) -> None:
        _keep_valid_unicode(self, "name", "message", "detail", "hint", "notes")
        if self.location is not None and valid_unicode(self.location[0]) != self.location[0]:
            object.__setattr__(self, "location", (valid_unicode(self.location[0]), self.location[1]))


@dataclass(frozen=True)
class TrainingMeasurement:
    accuracy: Optional[float]
    train_seconds: Optional[float]
    device: str
    data_source: str
    target: float
    partial_credit_from: Optional[float]
    history: Optional["TrainingHistory"] = None  # the curves the solver recorded (explains, never scores)
    time_limit_s: Optional[float] = None   # the limit applied here (the written one, scaled where calibrated)
    grace_s: Optional[float] = None        # allowed past the limit: the last iteration, sending predictions back
    # The limit as assignment.yaml writes it, and how it was scaled to this machine (grader.engine.calibration):
    # factor = this device's time for the calibration workload / the reference device's; None when not scaled.
    written_limit_s: Optional[float] = None
    limit_factor: Optional[float] = None
    limit_factor_spread: Optional[float] = None
    reference_device: Optional[str] = None
    # Where it trained and beside what: the device's model, the CPU cores it was pinned to (None: not
    # pinned), what else this grader ran meanwhile, and the wall-clock span of the grader's clock.
    device_model: Optional[str] = None
    cores: Optional[tuple[int, ...]] = None
    alongside: Optional[str] = None
    started_at: Optional[float] = None     # seconds since the epoch
    ended_at: Optional[float] = None


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    title: str
    max_points: float
    points: float
    outcome: Outcome
    message: str
    kind: str = "check"      # check | training
    visibility: str = "visible"
    checks: tuple[CheckResult, ...] = ()
    detail: str = ""
    training: Optional[TrainingMeasurement] = None

    def __post_init__(self) -> None:
        _keep_valid_unicode(self, "title", "message", "detail")

    @classmethod
    def from_checks(cls, task_id: str, title: str, max_points: float, visibility: str,
                    checks: list[CheckResult]) -> "TaskResult":
        if not checks:
            return cls(task_id, title, max_points, 0.0, Outcome.ERROR,
                       "no check ran for this task", visibility=visibility)
        ran = [c for c in checks if c.outcome is not Outcome.SKIPPED]
        # A check that could not run here (e.g. on CUDA without a GPU) neither costs nor earns points
        # while the task's other checks ran.
        worst = min(ran or checks, key=lambda c: _TASK_OUTCOME_ORDER.index(c.outcome))
        passed = worst.outcome is Outcome.PASSED
        detail = "\n\n".join(_check_stories([c for c in checks if c.outcome is not Outcome.PASSED or c.notes]))
        message = worst.message if not passed else _passed_message(len(ran or checks), len(checks) - len(ran), checks)
        return cls(task_id, title, max_points, max_points if passed else 0.0, worst.outcome,
                   message, visibility=visibility, checks=tuple(checks), detail=detail)


def _passed_message(passed: int, skipped: int, checks: list[CheckResult]) -> str:
    """"4 checks passed", or "2 checks passed; 2 could not run here (no CUDA)": a check skipped here
    is not counted as one that passed."""
    message = f"{passed} check{'s' * (passed != 1)} passed"
    if not skipped:
        return message
    reason = next(c.message for c in checks if c.outcome is Outcome.SKIPPED)
    return f"{message}; {skipped} could not run here" + (f" ({reason})" if reason else "")


def _keep_valid_unicode(result: object, *fields: str) -> None:
    """Text from the worker is made valid Unicode where it enters (grader.sandbox.remote); text a check or the
    intake built from a student's values (a returned string, a file name) is made so here, so that
    every writer can encode every result. Nothing else of the text changes: writers escape it."""
    for name in fields:
        value = getattr(result, name)
        valid = valid_unicode(value) if isinstance(value, str) else tuple(valid_unicode(v) for v in value)
        if valid != value:
            object.__setattr__(result, name, valid)


def _check_stories(checks: list[CheckResult]) -> list[str]:
    """One story per distinct failure: checks that failed alike (one syntax error fails them all)
    are named together, and the traceback is told once."""
    groups: dict[tuple, list[CheckResult]] = {}
    for check in checks:
        groups.setdefault(alike_key(check), []).append(check)
    return [_check_story(alike[0], [c.name for c in alike]) for alike in groups.values()]


def alike_key(check: CheckResult) -> tuple:
    """What makes two checks' failures the same story. An exception with the same type and message
    is one error, whichever path led to it (a syntax error reached directly or through another
    module's import); a failed comparison is the same only with the same details."""
    if check.outcome is Outcome.ERROR:  # notes say how inputs were drawn: nothing the error depends on
        return check.outcome, check.message, check.hint
    return check.outcome, check.message, check.hint, check.detail, check.notes


def _check_story(check: CheckResult, names: list[str]) -> str:
    named = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more alike"
    lines = [f"{named}: {check.outcome.value}: {check.message}".rstrip(": ")]
    if check.hint:
        lines.append(f"hint: {check.hint}")
    if check.detail:
        lines.append(check.detail)
    if check.outcome is not Outcome.ERROR:
        lines += [f"note: {n}" for n in check.notes]
    return "\n".join(lines)


@dataclass(frozen=True)
class GradingResult:
    assignment: str
    mode: str
    seed: Optional[int]      # None where nothing was graded (a run refused or stopped before grading)
    tasks: tuple[TaskResult, ...]
    execution_time_s: float
    grader_version: str
    versions: dict[str, str] = field(default_factory=dict)
    output: str = ""         # a note for the whole submission (e.g. why it could not be graded)
    submission_log: str = ""  # what the submission printed, capped
    checks_s: float = 0.0    # wall time of running the checks (pytest's own work for each included)
    sandbox: Optional[str] = None  # the isolation level the submission ran at (grader.sandbox.levels)
    # Where the grading's time went, for benchmarks and instructors: `started_at`/`ended_at` (seconds
    # since the epoch) bound the grading, `*_s` are its phases' seconds.
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _keep_valid_unicode(self, "output", "submission_log")

    @property
    def score(self) -> float:
        return round(sum(t.points for t in self.tasks), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_points for t in self.tasks), 6)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for t in self.tasks if t.outcome is outcome)
