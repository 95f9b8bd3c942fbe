"""The catalogue of common mistakes of an assignment: `reference/<A>/mistakes.yaml`.

Each mistake is a small change of one reference file (an exact snippet replaced by what students
typically write instead), the task whose checks it fails first, and a hint for a student whose
submission behaves like it. The grader uses the catalogue to explain failures (see
`grader.fingerprint`); the project's tests grade every mistake as a submission.

The file lives beside the reference because its snippets are pieces of the solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.assignment import Assignment, ConfigError
from grader.yaml_text import load_yaml

CATALOGUE_FILE = "mistakes.yaml"


class MistakeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    task: str                    # the task whose checks the mistake fails first
    file: str                    # a student file of the assignment
    old: str = Field(min_length=1)  # an exact snippet of the reference file, occurring once
    new: str                     # what the student wrote instead
    student: str                 # the mistake in a student's words (what they did)
    hint: str = Field(min_length=1)  # what to look at, for a student whose code behaves like this


class CatalogueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mistakes: list[MistakeSpec]


@dataclass(frozen=True)
class Mistake:
    spec: MistakeSpec
    source_text: str  # the whole mutated file

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def file(self) -> str:
        return self.spec.file

    @property
    def hint(self) -> str:
        return self.spec.hint


def apply(spec: MistakeSpec, reference_text: str, catalogue: str = CATALOGUE_FILE) -> str:
    """The reference file with the mistake's snippet replaced."""
    count = reference_text.count(spec.old)
    if count != 1:
        raise ConfigError(f"{catalogue}: mistake {spec.id}: its `old` snippet occurs {count} times in "
                          f"{spec.file}, expected exactly once")
    return reference_text.replace(spec.old, spec.new)


def load_catalogue(assignment: Assignment) -> list[Mistake]:
    """The assignment's mistakes, each applied to its reference file; [] where there is no reference or
    no catalogue. Problems are `ConfigError`s naming the file, the mistake and what is wrong."""
    if assignment.reference_directory is None:
        return []
    path = assignment.reference_directory / CATALOGUE_FILE
    if not path.is_file():
        return []
    return parse_catalogue(path, assignment)


def parse_catalogue(path: Path, assignment: Assignment) -> list[Mistake]:
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        catalogue = CatalogueSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: " + ".".join(map(str, e["loc"])) + f": {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    spec = assignment.spec
    task_ids = {t.id for t in spec.tasks}
    seen: set[str] = set()
    mistakes = []
    for m in catalogue.mistakes:
        where = f"{path}: mistake {m.id}"
        if m.id in seen:
            raise ConfigError(f"{where}: the id is used twice")
        seen.add(m.id)
        if m.task not in task_ids:
            raise ConfigError(f"{where}: task {m.task!r} is not in assignment.yaml")
        if spec.task(m.task).training is not None:
            raise ConfigError(f"{where}: task {m.task!r} is a training task; mistakes explain failed checks")
        if m.file not in spec.student_files:
            raise ConfigError(f"{where}: file {m.file!r} is not one of the student files {spec.student_files}")
        reference_file = assignment.reference_directory / m.file
        mistakes.append(Mistake(m, apply(m, reference_file.read_text(), str(path))))
    return mistakes
