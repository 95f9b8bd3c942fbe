"""Grading real submissions from the tests: the reference or the stubs with some files replaced."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from grader.assignment import Assignment, load_assignment
from grader.grading import GradeOptions, grade
from grader.results import GradingResult, Outcome
from grader.submission import prepare_submission

PROJECT_ROOT = Path(__file__).resolve().parent.parent
A1 = "a1_fc_numpy"


ASSIGNMENTS = ["a1_fc_numpy", "a2_cnn_torch"]


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
