"""The result as a Gradescope `results.json` (with the harness's own fields in `extra_data`), and
that file read back into a result (the Gradescope runner reads its grading process's)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from grader.engine.training_history import TrainingHistory
from grader.files import write_atomically
from grader.results import VISIBILITIES, GradingResult, Outcome, TaskResult, TrainingMeasurement

if TYPE_CHECKING:
    from grader.assignment import AssignmentSpec


# A training measurement's optional details, written to extra_data when known and read back.
MEASUREMENT_NUMBERS = ("time_limit_s", "grace_s", "written_limit_s", "limit_factor", "limit_factor_spread",
                       "started_at", "ended_at")
MEASUREMENT_TEXTS = ("reference_device", "device_model", "alongside")
MEASUREMENT_DETAILS = (*MEASUREMENT_NUMBERS, *MEASUREMENT_TEXTS, "cores")


@dataclass(frozen=True)
class LeaderboardEntry:
    name: str
    value: float
    order: str = "desc"   # desc: higher is better


def task_output(task: TaskResult) -> str:
    return f"{task.outcome.value}: {task.message}" + (f"\n\n{task.detail}" if task.detail else "")


def task_entry(number: int, task: TaskResult) -> dict[str, Any]:
    extra: dict[str, Any] = {"task": task.task_id, "outcome": task.outcome.value, "kind": task.kind}
    # The grader's own hints, apart from the output's text, where a submission's message could write a
    # line that looks like one (the batch's report.html reads them from here).
    hints = list(dict.fromkeys(c.hint for c in task.checks if c.hint))
    if hints:
        extra["hints"] = hints
    if task.training is not None:
        extra.update(accuracy=task.training.accuracy, train_seconds=task.training.train_seconds,
                     device=task.training.device, data=task.training.data_source)
        for name in MEASUREMENT_DETAILS:
            value = getattr(task.training, name)
            if value is not None:
                extra[name] = list(value) if isinstance(value, tuple) else value
        if task.training.history is not None:
            extra.update(history=task.training.history.as_dict())
    return {
        "name": f"{task.task_id}: {task.title}",
        "number": str(number),
        "score": task.points,
        "max_score": task.max_points,
        "status": "passed" if task.outcome is Outcome.PASSED else "failed",
        "output": task_output(task),
        "visibility": task.visibility,
        "extra_data": extra,
    }


def to_results_json(result: GradingResult, *, extra: Optional[Mapping[str, Any]] = None,
                    leaderboard: Sequence[LeaderboardEntry] = ()) -> dict[str, Any]:
    """`extra` adds facts of the platform's run to the top `extra_data` (never replacing the result's
    own); `leaderboard` is Gradescope's, left out where empty."""
    output = result.output
    data = {
        "score": result.score,
        "execution_time": int(math.ceil(result.execution_time_s)),
        "output": output,
        # Plain text everywhere: what a submission wrote is escaped, never rendered as HTML or Markdown.
        "output_format": "text",
        "test_output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [task_entry(i, task) for i, task in enumerate(result.tasks, start=1)],
        "extra_data": {
            "assignment": result.assignment,
            "mode": result.mode,
            "seed": result.seed,
            "max_score": result.max_score,
            "grader_version": result.grader_version,
            "versions": result.versions,
            "sandbox": result.sandbox,
        },
    }
    if result.timings:
        data["extra_data"]["timings"] = {k: round(v, 4) for k, v in result.timings.items()}
    for key, value in (extra or {}).items():
        data["extra_data"].setdefault(key, value)
    if leaderboard:
        data["leaderboard"] = [{"name": e.name, "value": e.value, "order": e.order} for e in leaderboard]
    return data


def write_results_json(result: GradingResult, path: Path, *, extra: Optional[Mapping[str, Any]] = None,
                       leaderboard: Sequence[LeaderboardEntry] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_results_json(result, extra=extra, leaderboard=leaderboard), indent=2) + "\n"
    write_atomically(path, text)


def read_results_json(path: Path, spec: AssignmentSpec) -> GradingResult:
    """The result a grader wrote with write_results_json, as far as the file holds it: no checks (their
    stories are in each task's detail), no submission log; training targets come from `spec`, and a
    visibility Gradescope does not know is the assignment's. Raises ValueError (OSError) where the
    file is not such a result."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = data["extra_data"]
        tasks = tuple(_task_from_entry(test, spec) for test in data["tests"])
        seed = extra["seed"]
        return GradingResult(
            assignment=str(extra["assignment"]), mode=str(extra["mode"]),
            seed=None if seed is None else int(seed), tasks=tasks,
            execution_time_s=float(data["execution_time"]), grader_version=str(extra["grader_version"]),
            versions={str(k): str(v) for k, v in dict(extra.get("versions") or {}).items()},
            output=str(data.get("output") or ""), sandbox=_optional_text(extra.get("sandbox")))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a grader's results.json ({type(exc).__name__}: {exc})") from exc


def _task_from_entry(test: Mapping[str, Any], spec: AssignmentSpec) -> TaskResult:
    extra = test["extra_data"]
    task_id, outcome = str(extra["task"]), Outcome(extra["outcome"])
    task_spec = next((t for t in spec.tasks if t.id == task_id), None)
    name, output = str(test["name"]), str(test["output"])
    prefix = f"{outcome.value}: "
    message, _, detail = (output[len(prefix):] if output.startswith(prefix) else output).partition("\n\n")
    visibility = test.get("visibility")
    if visibility not in VISIBILITIES:
        visibility = task_spec.visibility if task_spec is not None else "visible"
    training = None
    if extra.get("kind") == "training" and "accuracy" in extra:
        training = _training_from_entry(task_id, extra, task_spec)
    return TaskResult(task_id, name[len(task_id) + 2:] if name.startswith(f"{task_id}: ") else name,
                      float(test["max_score"]), float(test["score"]), outcome, message,
                      kind=str(extra.get("kind", "check")), visibility=visibility, detail=detail, training=training)


def _training_from_entry(task_id: str, extra: Mapping[str, Any], task_spec: Any) -> TrainingMeasurement:
    source = str(extra.get("data"))
    if task_spec is None or task_spec.training is None or source not in task_spec.training.target:
        raise ValueError(f"the assignment states no {source} target for the training task {task_id}")
    history = extra.get("history")
    return TrainingMeasurement(
        accuracy=_optional_number(extra.get("accuracy")), train_seconds=_optional_number(extra.get("train_seconds")),
        device=str(extra.get("device")), data_source=source, target=task_spec.training.target[source],
        partial_credit_from=task_spec.training.partial_credit_from.get(source),
        history=None if history is None else _history(history),
        **{name: _optional_number(extra.get(name)) for name in MEASUREMENT_NUMBERS},
        **{name: _optional_text(extra.get(name)) for name in MEASUREMENT_TEXTS},
        cores=_optional_cores(extra.get("cores")))


def _history(data: Mapping[str, Any]) -> TrainingHistory:
    """The inverse of TrainingHistory.as_dict (which writes a value that is not finite as null)."""
    def values(key: str) -> tuple[float, ...]:
        return tuple(math.nan if v is None else float(v) for v in data[key])

    first = data.get("first_non_finite")
    return TrainingHistory(int(data["iterations"]), values("loss"), tuple(int(i) for i in data["loss_iterations"]),
                           values("train_accuracy"), values("val_accuracy"), None if first is None else int(first),
                           values("check_times_s") if "check_times_s" in data else ())


def _optional_number(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _optional_text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _optional_cores(value: Any) -> Optional[tuple[int, ...]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(core, int) and not isinstance(core, bool) for core in value):
        raise ValueError(f"cores: expected a list of CPU numbers, got {value!r}")
    return tuple(value)
