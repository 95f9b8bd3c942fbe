"""Pointing a failed task at the failing tasks it is built on: a model whose ReLU backward pass is
wrong fails its gradient checks too, and its message should send the student to the layer first
("this uses relu.backward, which fails its own task and may be the cause: fix it first"). Which tasks a task builds
on is stated in assignment.yaml (`uses`); nothing here runs code, so no reference runs beside the
student's."""

from __future__ import annotations

import dataclasses

from grader.assignment import AssignmentSpec
from grader.results import Outcome, TaskResult

# Outcomes after which a task's own code is known not to work.
_FAILING = {Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.NOT_IMPLEMENTED}
_RAN_AND_FAILED = {Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT}


def point_to_failing_uses(spec: AssignmentSpec, tasks: list[TaskResult],
                          graded_with_reference: set[str] = frozenset()) -> list[TaskResult]:
    """`tasks` with each failed task's message naming the failing tasks it uses. A task graded with the
    reference's copies of its prerequisites (`graded_with_reference`) did not run the student's layers."""
    by_id = {t.task_id: t for t in tasks}
    pointed = []
    for task in tasks:
        # A task not implemented yet has nothing to fix in the layers first.
        if task.outcome in _RAN_AND_FAILED and task.task_id not in graded_with_reference:
            uses = spec.task(task.task_id).uses
            failing = [used for entry in uses if _all_fail(entry, by_id) for used in _graded(entry, by_id)]
            chosen = [used for entry in uses if not _all_fail(entry, by_id) for used in _graded(entry, by_id)
                      if by_id[used].outcome in _FAILING]
            # A failure the used task shares word for word (one syntax error, a missing file) is
            # explained where it is; pointing at it would only repeat it.
            if (failing or chosen) and all(by_id[used].message != task.message for used in failing + chosen):
                # First: the terminal's table may cut a long message short.
                task = dataclasses.replace(task, message=f"{pointer(failing, chosen)}; {task.message}")
        pointed.append(task)
    return pointed


def _graded(entry: str, by_id: dict[str, TaskResult]) -> list[str]:
    return [used for used in entry.split("|") if used in by_id]


def _all_fail(entry: str, by_id: dict[str, TaskResult]) -> bool:
    """Whether every graded task of a `uses` entry fails: of "a|b" (either one, the student's choice)
    the one the student's code calls may be the one that passes."""
    graded = _graded(entry, by_id)
    return bool(graded) and all(by_id[used].outcome in _FAILING for used in graded)


def pointer(failing: list[str], chosen: list[str] = ()) -> str:
    """The sentence for tasks used that fail, and for `chosen` ones: failing alternatives of which the
    student's code may call another."""
    parts = []
    if len(failing) == 1:
        parts.append(f"this uses {failing[0]}, which fails its own task and may be the cause: fix it first")
    elif failing:
        parts.append(f"this uses {', '.join(failing[:-1])} and {failing[-1]}, which fail their own tasks and may "
                     "be the cause: fix them first")
    for used in chosen:
        parts.append(f"this may use {used} (the docstring leaves the choice to you), which fails its own task: "
                     "if yours does, fix it first")
    return "; ".join(parts)
