"""Grading real submissions from the tests: the reference or the stubs with some files replaced."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from grader.assignment import Assignment, load_assignment
from grader.engine.grading import GradeOptions, grade
from grader.oracle.mistakes import load_catalogue
from grader.results import GradingResult, Outcome
from grader.engine.submission import prepare_submission

PROJECT_ROOT = Path(__file__).resolve().parent.parent
A1 = "a1_fc_numpy"


ASSIGNMENTS = ["a1_fc_numpy", "a2_cnn_torch", "a3_resnet_pytorch"]


def assignment(assignment_id: str) -> Assignment:
    return load_assignment(assignment_id, PROJECT_ROOT)


def a1() -> Assignment:
    return assignment(A1)


def make_submission(directory: Path, assignment: Assignment, base: str = "reference",
                    replace: Optional[dict[str, str]] = None) -> Path:
    """A folder with the student files of `base` (reference or stubs), some replaced by text."""
    source = assignment.reference_directory if base == "reference" else assignment.directory
    directory.mkdir(parents=True, exist_ok=True)
    for name in assignment.spec.student_files:
        shutil.copyfile(source / name, directory / name)
    for name, text in (replace or {}).items():
        (directory / name).write_text(text)
    return directory


def grade_folder(assignment: Assignment, folder: Path, *, mode: str = "official", only: Optional[str] = None,
                 seed: Optional[int] = 1234, **options) -> GradingResult:
    submission = prepare_submission(assignment, folder)
    try:
        return grade(assignment, submission, GradeOptions(mode=mode, only=only, seed=seed, **options))
    finally:
        submission.cleanup()


def check_tasks(assignment: Assignment) -> set[str]:
    return {t.id for t in assignment.spec.tasks if t.training is None}


def grade_checks(assignment: Assignment, folder: Path, **kwargs) -> GradingResult:
    """Grades every task scored by checks, none of the training tasks."""
    return grade_folder(assignment, folder, training=False, **kwargs)


def outcomes(result: GradingResult) -> dict[str, Outcome]:
    return {t.task_id: t.outcome for t in result.tasks}


def lost(result: GradingResult) -> set[str]:
    return {t.task_id for t in result.tasks if t.points < t.max_points}


def hints_shown(result: GradingResult, task_id: str) -> set[str]:
    task = next(t for t in result.tasks if t.task_id == task_id)
    return {c.hint for c in task.checks if c.hint}


def assert_mutant_loses_exactly(shipped: Assignment, mutant, mutated_text: str, expected: set[str],
                                directory: Path) -> None:
    """Grades the reference with one file replaced by a mistake: exactly `expected` lose points, each
    with a failed or error outcome and a message; a mistake of the catalogue also gets its own hint on
    its task, and no other."""
    folder = make_submission(directory, shipped, "reference", {mutant.file: mutated_text})
    result = grade_checks(shipped, folder, seed=None)
    assert lost(result) == expected, f"seed {result.seed}"
    for task in result.tasks:
        if task.task_id in expected:
            assert task.outcome in (Outcome.FAILED, Outcome.ERROR) and task.message
    mistake = next((m for m in load_catalogue(shipped) if m.id == mutant.name), None)
    if mistake is not None:
        assert hints_shown(result, mistake.task) == {mistake.hint}, f"seed {result.seed}"


def assert_training_mutant_misses(shipped: Assignment, mutant, mutated_text: str, task_id: str,
                                  directory: Path) -> None:
    """A training entry with hopeless hyper-parameters stays under its synthetic target."""
    folder = make_submission(directory, shipped, "reference", {mutant.file: mutated_text})
    task = grade_folder(shipped, folder, only=task_id, data="synthetic", device="cpu").tasks[0]
    assert task.outcome is Outcome.FAILED and task.points < task.max_points, task.message
    assert task.training.accuracy < shipped.spec.task(task_id).training.target["synthetic"]
