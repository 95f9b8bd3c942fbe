"""Deliberately wrong versions of the a1_fc_numpy reference: typical student mistakes.

Each mutant replaces one small snippet of one reference file. A grader that is worth its points
fails every one of them on some task; the tests that say which tasks live elsewhere.

The mistakes that checks catch are the assignment's catalogue, reference/a1_fc_numpy/mistakes.yaml,
which also holds a hint for each; the training entries with hopeless hyper-parameters, which only
a training task notices, are written here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Mutant:
    name: str  # unique, e.g. "affine_backward_divides_by_n"
    file: str  # "layers.py" | "optim.py" | "models.py", in the assignment's reference folder
    old: str  # exact snippet of the reference file; occurs exactly once
    new: str  # what the student wrote instead
    description: str  # the mistake, in a student's words


def apply(mutant: Mutant, source_text: str) -> str:
    """The reference source with the mutant's snippet replaced."""
    count = source_text.count(mutant.old)
    assert count == 1, f"{mutant.name}: snippet occurs {count} times in {mutant.file}, expected once"
    return source_text.replace(mutant.old, mutant.new)


REFERENCE_ROOT = Path(__file__).resolve().parent.parent / "reference"


def load_mutants(assignment_id: str) -> list[Mutant]:
    """The mistakes of `reference/<assignment_id>/mistakes.yaml`, in the catalogue's order."""
    catalogue = yaml.safe_load((REFERENCE_ROOT / assignment_id / "mistakes.yaml").read_text())
    return [Mutant(m["id"], m["file"], m["old"], m["new"], m["student"]) for m in catalogue["mistakes"]]


# Training entries with hopeless hyper-parameters: training tasks have no checks to explain, so
# they are not in the catalogue.
TRAINING_ENTRY_MUTANTS: list[Mutant] = [
    Mutant(
        "two_layer_solver_learning_rate_too_small",
        "models.py",
        'optim_config={"learning_rate": 1e-3},',
        'optim_config={"learning_rate": 1e-7},',
        "I picked a learning rate so small that nothing trains in the time limit.",
    ),
    Mutant(
        "overfit_weight_scale_too_small",
        "models.py",
        "    weight_scale = 5e-2\n",
        "    weight_scale = 1e-3\n",
        "I kept the default tiny weight scale; the signal vanishes in five layers.",
    ),
]

MUTANTS: list[Mutant] = load_mutants("a1_fc_numpy") + TRAINING_ENTRY_MUTANTS


def student_version(source_text: str, function: str, body: str, fence: int = 0, *, owner: str = "") -> str:
    """The reference source with the code between one function's `# BEGIN YOUR CODE` and `# END YOUR
    CODE` (its `fence`-th such block) replaced by `body`, a student's own code written flush left: how
    a real student's solution reads, rather than a one-snippet mutation of the reference. `owner`: the
    class the function is a method of ("" for a function at module level)."""
    start = source_text.index(f"class {owner}:") if owner else 0
    start = source_text.index(f"def {function}(", start)
    for _ in range(fence + 1):
        begin = source_text.index("# BEGIN YOUR CODE\n", start) + len("# BEGIN YOUR CODE\n")
        start = begin
    end = source_text.index("# END YOUR CODE", begin)
    indent = source_text[source_text.rindex("\n", 0, end) + 1:end]
    lines = textwrap.dedent(body).strip("\n").splitlines()
    written = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
    return source_text[:begin] + written + source_text[end - len(indent):]
