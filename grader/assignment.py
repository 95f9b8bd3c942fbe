"""An assignment: its `assignment.yaml`, validated where it is loaded, and where its parts live."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader.options import DataSource
from grader.results import Visibility
from grader.yaml_text import load_yaml

# Pydantic plugins installed on the machine do not run inside the grader (no more than pytest's do),
# and their search through every installed package's metadata is not made at each start. Set before
# the first model is defined (here, or in a module that imports this one first); only the grader's
# process has it, never the worker's environment.
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"


class ConfigError(Exception):
    """A configuration problem, located: which file, which key, what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingSpec(_Strict):
    # "<module>.<function>" in a student or provided file; returns a Solver the grader trains and
    # scores. It is called with (data_dict) for NumPy assignments, (data_dict, dtype, device) for torch.
    entry: str = Field(pattern=r"^[A-Za-z_]\w*\.[A-Za-z_]\w*$")
    # Where training runs; a cuda task is skipped without CUDA unless --device cpu is given.
    device: Literal["cpu", "cuda"] = "cpu"
    # Seconds of training allowed, measured by the grader's clock around the entry and train().
    time_limit_s: float = Field(gt=0)
    # Accuracy (0..1) for full points, per data source.
    target: dict[DataSource, float]
    # Accuracy from which partial credit starts, rising linearly to the target.
    partial_credit_from: dict[DataSource, float] = Field(default_factory=dict)
    # Scale the time limit to the device it trains on, by the assignment's calibration (where it has one).
    calibrated: bool = True
    # Floating-point dtype of the images handed to the entry (torch assignments also get it as an argument).
    dtype: Literal["float32", "float64"] = "float32"
    # Train on only this many training images (e.g. 50 to overfit); None for all of them.
    train_subset: Optional[int] = Field(default=None, gt=0)
    # Score on perturbed held-out images, or on the training images themselves (overfit tasks).
    evaluate_on: Literal["held_out", "train"] = "held_out"

    @field_validator("target", "partial_credit_from")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for source, accuracy in value.items():
            if not 0.0 <= accuracy <= 1.0:
                raise ValueError(f"accuracy for {source} must be between 0 and 1, got {accuracy}")
        return value

    @model_validator(mode="after")
    def _floor_below_target(self) -> "TrainingSpec":
        for source, floor in self.partial_credit_from.items():
            if source not in self.target:
                raise ValueError(f"partial_credit_from names {source}, which has no target")
            if floor >= self.target[source]:
                raise ValueError(f"partial_credit_from.{source} ({floor}) must be below target.{source}")
        return self


# A calibration whose repeats spread more than this (relative) is not a measurement to scale limits by.
MAX_CALIBRATION_SPREAD = 0.25


class CalibrationSpec(_Strict):
    """The device the training tasks' time limits are written for, and its time for the calibration
    workload; written by `grader calibrate A` (grader.engine.calibration), read to scale each limit to
    the device a task trains on. A calibration that cannot be a measurement is refused where it is loaded."""

    device: Literal["cpu", "cuda"]
    device_model: str = Field(min_length=1, max_length=200)
    # The workload's name (grader.engine.calibration_workload.WORKLOADS): another one's time does not compare.
    workload: str = Field(min_length=1)
    seconds: float = Field(gt=0, le=600, allow_inf_nan=False)     # the mean repeat
    spread: float = Field(ge=0, le=MAX_CALIBRATION_SPREAD, allow_inf_nan=False)
    repeats: int = Field(ge=3)
    versions: dict[str, str] = Field(default_factory=dict)
    measured_on: str = ""


class TaskSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    title: str = Field(min_length=1)
    points: float = Field(ge=0)
    visibility: Visibility = "visible"
    training: Optional[TrainingSpec] = None
    # Student files this task's code builds on (e.g. the layers a model is made of). With
    # isolate_prerequisites, official grading runs the task's checks with the reference's copies
    # of these files in place of the student's.
    prerequisites: list[str] = Field(default_factory=list)
    # Tasks of the functions this task's code is built on (the layers a model is made of): where this
    # task fails while one of them fails its own, the message points there first. "a|b": either one,
    # as the student chooses (batchnorm.backward|batchnorm.backward_alt), pointed at only when both fail.
    uses: list[str] = Field(default_factory=list)

    @field_validator("prerequisites", "uses")
    @classmethod
    def _listed_once(cls, files: list[str]) -> list[str]:
        for name in files:
            if files.count(name) > 1:
                raise ValueError(f"{name} is listed twice")
        return files


class AssignmentSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str = Field(min_length=1)
    framework: Literal["numpy", "torch"]
    student_files: list[str] = Field(min_length=1)
    provided_files: list[str] = Field(default_factory=list)
    tasks: list[TaskSpec] = Field(min_length=1)
    # Seconds one request to the worker may take in a check before it counts as a timeout.
    call_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds all checks of one submission may take together.
    submission_timeout_s: float = Field(default=900.0, gt=0)
    # Official grading only: run the checks of each task that lists prerequisites against the
    # submission with those files replaced by the reference's, so that a broken layer costs the
    # layer's own tasks and not every model built on it.
    isolate_prerequisites: bool = False
    # The student's code computes its gradients by hand: where its own code reaches autograd, the
    # result says so for a person to read (grader.engine.source_review); it never changes a score.
    hand_written_backward: bool = False
    # The device the training tasks' time limits are written for (`grader calibrate A` writes it).
    calibration: Optional[CalibrationSpec] = None

    @field_validator("student_files", "provided_files")
    @classmethod
    def _python_file_names(cls, files: list[str]) -> list[str]:
        for name in files:
            if not re.fullmatch(r"[A-Za-z_]\w*\.py", name):
                raise ValueError(f"{name!r} is not a Python file name in the assignment's folder")
        if len(set(files)) != len(files):
            raise ValueError("a file is listed twice")
        return files

    @model_validator(mode="after")
    def _consistent(self) -> "AssignmentSpec":
        overlap = set(self.student_files) & set(self.provided_files)
        if overlap:
            raise ValueError(f"files both student and provided: {sorted(overlap)}")
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise ValueError(f"task id {task.id!r} appears twice")
            seen.add(task.id)
            for used in (one for entry in task.uses for one in entry.split("|")):
                if used not in seen or used == task.id:
                    raise ValueError(f"task {task.id}: uses: {used!r} is not a task listed before it")
                if self.task(used).training is not None:
                    raise ValueError(f"task {task.id}: uses: {used} is a training task")
            for name in task.prerequisites:
                if name not in self.student_files:
                    raise ValueError(f"task {task.id}: prerequisites: {name} is not one of the student_files "
                                     f"({', '.join(self.student_files)})")
            if task.training:
                module = task.training.entry.split(".")[0] + ".py"
                if module not in self.student_files + self.provided_files:
                    raise ValueError(f"task {task.id}: training entry {task.training.entry} is not in a student "
                                     "or provided file")
        return self

    @model_validator(mode="after")
    def _calibrated_with_this_workload(self) -> "AssignmentSpec":
        from grader.engine.calibration_workload import WORKLOADS

        expected = WORKLOADS[self.framework]
        if self.calibration is not None and self.calibration.workload != expected:
            raise ValueError(f"calibration: measured with the workload {self.calibration.workload!r}, but this grader "
                             f"times {expected!r} for {self.framework} assignments, so the times do not compare: "
                             f"run `grader calibrate {self.id}` again on the reference device")
        return self

    def task(self, task_id: str) -> TaskSpec:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def select(self, pattern: str | None) -> list[TaskSpec]:
        return [t for t in self.tasks if pattern is None or task_matches(t.id, pattern)]


def task_matches(task_id: str, pattern: str) -> bool:
    """`--only`: a glob over task ids, or several separated by commas (`'affine.*,relu.*'`)."""
    return any(fnmatch.fnmatchcase(task_id, glob.strip()) for glob in pattern.split(",") if glob.strip())


@dataclass(frozen=True)
class Assignment:
    spec: AssignmentSpec
    directory: Path                  # assignments/<A>: stubs, provided files, checks, fixtures
    reference_directory: Path | None  # reference/<A>, where the instructor's solution is present

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def other_assignments(self) -> tuple[str, ...]:
        """The ids of the course's other assignments (folders beside this one's)."""
        return tuple(a for a in available_assignments(self.directory.parent.parent) if a != self.id)

    @property
    def checks_directory(self) -> Path:
        return self.directory / "checks"

    @property
    def fixtures_directory(self) -> Path:
        return self.directory / "fixtures"

    @property
    def hidden_checks_directory(self) -> Path | None:
        if self.reference_directory is None:
            return None
        hidden = self.reference_directory / "hidden_checks"
        return hidden if hidden.is_dir() else None


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding `assignments/`: $GRADER_ROOT, else the nearest one above the working
    directory, else the one the grader package was installed from."""
    if os.environ.get("GRADER_ROOT"):
        return Path(os.environ["GRADER_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "assignments").is_dir():
            return candidate
    return Path(__file__).resolve().parent.parent


def available_assignments(root: Path) -> list[str]:
    base = root / "assignments"
    return sorted(p.name for p in base.iterdir() if (p / "assignment.yaml").is_file()) if base.is_dir() else []


def load_assignment(assignment_id: str, root: Path | None = None) -> Assignment:
    root = root or find_project_root()
    directory = root / "assignments" / assignment_id
    config_path = directory / "assignment.yaml"
    if not config_path.is_file():
        known = ", ".join(available_assignments(root)) or "none"
        raise ConfigError(f"no assignment {assignment_id!r}: {config_path} does not exist (known: {known})")
    spec = parse_spec(config_path)
    if spec.id != assignment_id:
        raise ConfigError(f"{config_path}: id: expected {assignment_id!r} (the folder's name), got {spec.id!r}")
    for name in spec.student_files + spec.provided_files:
        if not (directory / name).is_file():
            raise ConfigError(f"{config_path}: files: {name} is listed but {directory / name} does not exist")
    reference = root / "reference" / assignment_id
    return Assignment(spec, directory, reference if reference.is_dir() else None)


def parse_spec(config_path: Path) -> AssignmentSpec:
    try:
        raw = load_yaml(config_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping of keys (id, title, tasks, ...) at the top")
    try:
        return AssignmentSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_located_errors(config_path, raw, exc)) from None


def _located_errors(config_path: Path, raw: dict, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = _key_path(raw, error["loc"])
        got = f" (got {error['input']!r})" if error["type"] not in ("missing",) and "input" in error and not isinstance(error["input"], (dict, list)) else ""
        lines.append(f"{config_path}: {location or '<top>'}: {error['msg']}{got}")
    return "\n".join(lines)


def _key_path(raw: dict, loc: tuple) -> str:
    """tasks.3.points -> tasks[3] (id: affine.forward).points"""
    parts, node = [], raw
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict) and "id" in node[key]:
                label += f" (id: {node[key]['id']})"
            parts.append(label)
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts)
