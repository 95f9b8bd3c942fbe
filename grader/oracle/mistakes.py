"""The catalogue of common mistakes of an assignment: `reference/<A>/mistakes.yaml`.

Each mistake is a small change of one reference file (an exact snippet replaced by what students
typically write instead), the task whose checks it fails first, and a hint for a student whose
submission behaves like it. The grader uses the catalogue to explain failures (see
`grader.oracle.sketches`); the project's tests grade every mistake as a submission.

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
    # What to look at, for a student whose code behaves like this; a variant takes its mistake's.
    hint: str | None = Field(default=None, min_length=1)
    # The id of the mistake this one is a variant of: the same mistake written another way (another
    # expression, another order of operations), whose answers differ, so the explainer must run it too
    # to recognise real students' code. It carries that mistake's hint.
    same_as: str | None = None


class CatalogueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mistakes: list[MistakeSpec]


@dataclass(frozen=True)
class Mistake:
    spec: MistakeSpec
    source_text: str  # the whole mutated file
    resolved_hint: str = ""  # its own hint, or the hint of the mistake it is a variant of

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
        return self.resolved_hint or self.spec.hint or ""

    @property
    def variant_of(self) -> str | None:
        return self.spec.same_as


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
    hints = {m.id: m.hint for m in catalogue.mistakes}
    mistakes = []
    for m in catalogue.mistakes:
        where = f"{path}: mistake {m.id}"
        if m.id in seen:
            raise ConfigError(f"{where}: the id is used twice")
        seen.add(m.id)
        if m.same_as is None and m.hint is None:
            raise ConfigError(f"{where}: hint: a mistake needs a hint (or `same_as`, the mistake it is a variant of)")
        if m.same_as is not None:
            original = next((o for o in catalogue.mistakes if o.id == m.same_as), None)
            if original is None or original.same_as is not None:
                raise ConfigError(f"{where}: same_as {m.same_as!r} is not a mistake of this catalogue with a "
                                  "hint of its own")
            if m.hint is not None:
                raise ConfigError(f"{where}: a variant (same_as {m.same_as!r}) carries that mistake's hint; "
                                  "drop its own")
        if m.task not in task_ids:
            raise ConfigError(f"{where}: task {m.task!r} is not in assignment.yaml")
        if spec.task(m.task).training is not None:
            raise ConfigError(f"{where}: task {m.task!r} is a training task; mistakes explain failed checks")
        if m.file not in spec.student_files:
            raise ConfigError(f"{where}: file {m.file!r} is not one of the student files {spec.student_files}")
        reference_file = assignment.reference_directory / m.file
        hint = hints[m.same_as] if m.same_as is not None else m.hint
        mistakes.append(Mistake(m, apply(m, reference_file.read_text(), str(path)), hint or ""))
    return mistakes
