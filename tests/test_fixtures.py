"""The recorded public fixtures are current, and a stale or missing recording is detected."""

import numpy as np
import pytest

from grader.assignment import load_assignment
from grader.oracle.sketches import SKETCHES_FILE
from grader.oracle.fixtures import compare_fixtures, record, write_fixtures
from grader.oracle.reference import FIXTURE_SUFFIX
from support import ASSIGNMENTS, a1, assignment


@pytest.fixture(scope="module")
def recorded():
    return record(a1())


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_committed_fixtures_are_current(assignment_id):
    shipped = assignment(assignment_id)
    differences = compare_fixtures(shipped, record(shipped))
    assert differences == [], f"fixtures are stale: run `grader fixtures {assignment_id}`"


def test_a_changed_reference_makes_the_fixtures_stale(project):
    optim = project / "reference" / "a1_fc_numpy" / "optim.py"
    text = optim.read_text()
    assert 'config.setdefault("momentum", 0.9)' in text
    optim.write_text(text.replace('config.setdefault("momentum", 0.9)', 'config.setdefault("momentum", 0.8)'))
    assignment = load_assignment("a1_fc_numpy", project)
    differences = compare_fixtures(assignment, record(assignment))
    # The reference's answers changed, and so did the mistakes built from the reference.
    assert {d.file for d in differences} == {f"test_optim{FIXTURE_SUFFIX}", SKETCHES_FILE}


def test_a_changed_hint_makes_the_mistake_sketches_stale(project, recorded):
    catalogue = project / "reference" / "a1_fc_numpy" / "mistakes.yaml"
    text = catalogue.read_text()
    catalogue.write_text(text.replace("hint: >-\n", "hint: >-\n      Look again.\n", 1))
    assignment = load_assignment("a1_fc_numpy", project)
    differences = compare_fixtures(assignment, record(assignment))
    assert differences and {d.file for d in differences} == {SKETCHES_FILE}
    assert all("changed" in d.problem for d in differences)


def test_missing_and_unused_fixture_files_are_reported(project, recorded):
    assignment = load_assignment("a1_fc_numpy", project)
    (assignment.fixtures_directory / f"test_models{FIXTURE_SUFFIX}").unlink()
    (assignment.fixtures_directory / f"test_gone{FIXTURE_SUFFIX}").write_bytes(b"")
    problems = {d.file: d.problem for d in compare_fixtures(assignment, recorded)}
    assert problems == {f"test_models{FIXTURE_SUFFIX}": "missing",
                        f"test_gone{FIXTURE_SUFFIX}": "no public check file uses it any more"}
    write_fixtures(assignment, recorded)
    assert compare_fixtures(assignment, recorded) == []


def test_recorded_tensors_compare_by_dtype_and_value():
    import torch

    from grader.oracle.fixtures import _values_equal

    value = (torch.arange(4.0), {"t": torch.ones(2, dtype=torch.float64)})
    assert _values_equal(value, (torch.arange(4.0), {"t": torch.ones(2, dtype=torch.float64)}))
    assert not _values_equal(value, (torch.arange(4.0) + 1e-3, {"t": torch.ones(2, dtype=torch.float64)}))
    assert not _values_equal(value, (torch.arange(4.0), {"t": torch.ones(2, dtype=torch.float32)}))
    assert not _values_equal(torch.zeros(2), np.zeros(2))


def test_two_paths_of_one_module_passed_as_arguments_are_different_arguments():
    from grader.oracle.reference import ReferenceOracle, _digest, _keyed

    oracle = ReferenceOracle.__new__(ReferenceOracle)
    from grader.oracle.reference import ReferenceObject

    module = ReferenceObject(oracle, "module:models", [], "module:models")
    first, second = _keyed(module.PlainBlock), _keyed(module.ResidualBlock)
    assert _digest("call", first) != _digest("call", second)
    assert _keyed(module) == ("<reference object>", "module:models")  # recorded keys of whole objects unchanged
