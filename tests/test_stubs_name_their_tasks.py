"""Every stub names the task ids of assignment.yaml that grade it, in its NotImplementedError message
(which the grader shows as "not implemented yet: ...") and in the docstring of its function (of its
class, where the function has none), and those tasks really grade it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import pytest

from grader.stub_text import is_untouched_body
from grader.results import Outcome
from support import ASSIGNMENTS, assignment, grade_folder, make_submission

pytestmark = pytest.mark.slow  # every stub of every assignment: ./grade.sh --selftest --all (CI) runs it

FENCE = re.compile(r"(# BEGIN YOUR CODE\n)(.*?)(# END YOUR CODE)", re.DOTALL)
# The one wording: "Graded by task: affine.forward" in the docstring, and in the message
# "affine_forward in layers.py (graded by task affine.forward)".
IDS = r"[\w.]+(?:, [\w.]+)*"
MESSAGE = re.compile(rf"(?P<what>.+) in (?P<file>\w+\.py) \(graded by tasks? (?P<ids>{IDS})\)")
DOCSTRING = re.compile(rf"^\s*Graded by tasks?: (?P<ids>{IDS})\s*$", re.MULTILINE)
SHOWN = "not implemented yet: "


@dataclass(frozen=True)
class Stub:
    file: str
    index: int           # the fence's position in its file
    line: int            # of its raise
    message: str
    named: tuple[str, ...]  # the task ids its message names
    owner: str           # the function (or class) whose docstring speaks for it
    documented: tuple[str, ...]  # the task ids that docstring names

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.owner})"


def ids(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def raised_message(body: str) -> str:
    statement = ast.parse(body.strip()).body[0]
    assert isinstance(statement, ast.Raise), body
    call = statement.exc
    assert isinstance(call, ast.Call) and getattr(call.func, "id", None) == "NotImplementedError", body
    assert len(call.args) == 1 and isinstance(call.args[0], ast.Constant), body
    return call.args[0].value


def owner_of(tree: ast.Module, line: int) -> tuple[str, str | None]:
    """The innermost function holding `line`, named with its class, and the docstring that speaks
    for it: the function's own, else its class's."""
    found: tuple[str, str | None] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef) and sub.lineno <= line <= sub.end_lineno:
                    own = ast.get_docstring(sub)
                    found = (f"{node.name}.{sub.name}" if own else node.name, own or ast.get_docstring(node))
        elif isinstance(node, ast.FunctionDef) and node.col_offset == 0 and node.lineno <= line <= node.end_lineno:
            found = (node.name, ast.get_docstring(node))
    assert found is not None, f"line {line} is in no function"
    return found


def stubs_of(assignment_id: str) -> list[Stub]:
    shipped = assignment(assignment_id)
    stubs = []
    for name in shipped.spec.student_files:
        text = (shipped.directory / name).read_text()
        tree = ast.parse(text)
        for index, fence in enumerate(FENCE.finditer(text)):
            body = fence.group(2)
            assert is_untouched_body(body), f"{name}: the fence holds more than the stub's raise:\n{body}"
            line = text.count("\n", 0, fence.start()) + 2  # the raise, under "# BEGIN YOUR CODE"
            message = raised_message(body)
            match = MESSAGE.fullmatch(message)
            assert match, f"{name}:{line}: {message!r} is not '<what> in <file> (graded by task <id>)'"
            assert match["file"] == name, f"{name}:{line}: {message!r} names {match['file']}"
            owner, docstring = owner_of(tree, line)
            documented = DOCSTRING.search(docstring or "")
            assert documented, f"{name}: the docstring of {owner} has no line 'Graded by task: <id>'"
            stubs.append(Stub(name, index, line, message, ids(match["ids"]), owner, ids(documented["ids"])))
    return stubs


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_stub_names_tasks_of_its_assignment(assignment_id):
    tasks = {t.id for t in assignment(assignment_id).spec.tasks}
    stubs = stubs_of(assignment_id)
    assert stubs
    for stub in stubs:
        assert "\n" not in stub.message
        assert set(stub.named) <= tasks, f"{stub} names tasks not in assignment.yaml: {set(stub.named) - tasks}"
        assert set(stub.documented) <= tasks, \
            f"the docstring of {stub.owner} names tasks not in assignment.yaml: {set(stub.documented) - tasks}"
        assert set(stub.named) <= set(stub.documented), \
            f"{stub}: the message names {stub.named}, the docstring of {stub.owner} {stub.documented}"
    messages = [s.message for s in stubs]
    assert len(set(messages)) == len(messages), "two stubs raise the same message"


def submission_text(shipped, name: str, filled: set[tuple[str, int]]) -> str:
    """The stub file with the fences in `filled` holding the reference's code."""
    bodies = [m.group(2) for m in FENCE.finditer((shipped.reference_directory / name).read_text())]
    counter = iter(range(len(bodies)))

    def fill(match: re.Match) -> str:
        index = next(counter)
        return match.group(0) if (name, index) not in filled else match.group(1) + bodies[index] + match.group(3)

    return FENCE.sub(fill, (shipped.directory / name).read_text())


def reporting(result, by_message: dict[str, Stub]) -> dict[Stub, set[str]]:
    """The stubs the checks stopped at, each with the tasks of those checks."""
    found: dict[Stub, set[str]] = {}
    for task in result.tasks:
        for check in task.checks or (task,):  # a training task has no checks
            if check.outcome is Outcome.NOT_IMPLEMENTED:
                assert check.message.startswith(SHOWN) and check.message[len(SHOWN):] in by_message, \
                    f"{task.task_id}: {check.message!r} is no stub's message"
                found.setdefault(by_message[check.message[len(SHOWN):]], set()).add(task.task_id)
    return found


GRADING = dict(data="synthetic", device="cpu", synthetic_train=100, validation_images=20, synthetic_test=20)


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_the_tasks_a_stub_names_grade_it(assignment_id, tmp_path):
    """Graded as a student who fills in, round after round, every stub a task stopped at: each task a
    stub names stops at that stub, with its message, in some round (or, where earlier stubs hide it
    from a task, when it is the only stub left); so does each task its docstring names, at one of
    the stubs that docstring speaks for."""
    shipped = assignment(assignment_id)
    stubs = stubs_of(assignment_id)
    by_message = {s.message: s for s in stubs}
    owners = {s.owner: [t for t in stubs if t.owner == s.owner] for s in stubs}
    seen: dict[Stub, set[str]] = {s: set() for s in stubs}

    def unseen() -> set[str]:
        """The tasks named by a stub, or by a docstring, not yet seen stopping there."""
        named = {t for s in stubs for t in s.named if t not in seen[s]}
        documented = {t for shared in owners.values() for t in shared[0].documented
                      if not any(t in seen[s] for s in shared)}
        return named | documented

    filled: set[tuple[str, int]] = set()
    only = None  # every task at first; then those that stopped at a stub and still have something to show
    for round_number in range(len(stubs)):
        texts = {name: submission_text(shipped, name, filled) for name in shipped.spec.student_files}
        folder = make_submission(tmp_path / f"round{round_number}", shipped, "stubs", texts)
        # The training entries are stubs only they reach: graded once, with the stubs as shipped.
        result = grade_folder(shipped, folder, only=only, training=round_number == 0, **GRADING)
        stopped = reporting(result, by_message)
        for stub, task_ids in stopped.items():
            seen[stub] |= task_ids
        filled |= {(s.file, s.index) for s in stopped}
        pending = set().union(*stopped.values()) & unseen()
        if not pending:
            break
        only = ",".join(sorted(pending))

    def alone(stub: Stub, task_ids: set[str]) -> set[str]:
        """The tasks of `task_ids` that stop at `stub` when it is the only stub."""
        others = {(s.file, s.index) for s in stubs if s != stub}
        texts = {name: submission_text(shipped, name, others) for name in shipped.spec.student_files}
        folder = make_submission(tmp_path / f"alone{stub.file}{stub.index}", shipped, "stubs", texts)
        result = grade_folder(shipped, folder, only=",".join(sorted(task_ids)), **GRADING)
        return reporting(result, by_message).get(stub, set())

    for stub in stubs:
        missing = set(stub.named) - seen[stub]
        if missing:
            seen[stub] |= alone(stub, missing)
        assert set(stub.named) <= seen[stub], \
            f"{stub}: {sorted(set(stub.named) - seen[stub])} never stop at {stub.message!r}"
    for owner, shared in owners.items():
        documented = set(shared[0].documented)
        missing = documented - set().union(*(seen[s] for s in shared))
        for stub in shared:
            if missing:
                missing -= alone(stub, missing)
        assert not missing, f"the docstring of {owner} names {sorted(missing)}, which grade none of its stubs"
