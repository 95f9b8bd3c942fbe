"""The result as a Gradescope `results.json` (with the harness's own fields in `extra_data`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from grader.files import write_atomically
from grader.results import GradingResult, Outcome, TaskResult


def task_output(task: TaskResult) -> str:
    return f"{task.outcome.value}: {task.message}" + (f"\n\n{task.detail}" if task.detail else "")


def task_entry(number: int, task: TaskResult) -> dict[str, Any]:
    extra: dict[str, Any] = {"task": task.task_id, "outcome": task.outcome.value, "kind": task.kind}
    if task.training is not None:
        extra.update(accuracy=task.training.accuracy, train_seconds=task.training.train_seconds,
                     device=task.training.device, data=task.training.data_source)
        if task.training.time_limit_s is not None:
            extra.update(time_limit_s=task.training.time_limit_s)
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


def to_results_json(result: GradingResult) -> dict[str, Any]:
    output = result.output
    return {
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


def write_results_json(result: GradingResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(to_results_json(result), indent=2) + "\n")
