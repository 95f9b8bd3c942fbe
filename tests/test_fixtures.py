"""The recorded public fixtures are current, and a stale or missing recording is detected."""

import sys

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


REFERENCE_LAYERS = '''
import numpy as np


def answer(x):
    return {"v": np.arange(3.0) * x}


def doubled_in_place(x):
    x *= 2
    return x
'''


@pytest.fixture
def tiny_reference(tmp_path, monkeypatch):
    package = tmp_path / "site" / "tiny_reference"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(REFERENCE_LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield "tiny_reference"
    for name in ("tiny_reference", "tiny_reference.layers"):
        sys.modules.pop(name, None)


def test_an_answer_changed_in_place_changes_neither_the_recording_nor_the_next_answer(tiny_reference, tmp_path):
    """A check owns what the reference answers: changing it in place reaches neither the recording
    being made nor the answer replayed when the check (or a later one) asks the same again."""
    from grader.oracle.reference import RecordingBackend, ReferenceOracle, ReplayBackend, fixture_file_bytes

    recording = RecordingBackend(tiny_reference)
    recording.module = "test_layers"
    answered = ReferenceOracle(recording).layers.answer(2.0)
    answered["v"][:] = -1.0
    [entry] = recording.recorded["test_layers"].values()
    assert np.array_equal(entry.value["v"], [0.0, 2.0, 4.0])

    (tmp_path / f"test_layers{FIXTURE_SUFFIX}").write_bytes(fixture_file_bytes(recording.recorded["test_layers"]))
    replay = ReplayBackend(tmp_path)
    replay.module = "test_layers"
    oracle = ReferenceOracle(replay)
    first = oracle.layers.answer(2.0)
    first["v"][:] = -1.0
    assert np.array_equal(oracle.layers.answer(2.0)["v"], [0.0, 2.0, 4.0])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_the_live_reference_changes_no_argument_of_the_check(tiny_reference, library):
    """Arguments reach the live reference as copies (with their layout), so a reference function that
    changes its input in place leaves the check's array as it was."""
    import torch

    from grader.oracle.reference import LiveBackend, ReferenceOracle

    x = np.arange(6.0).reshape(2, 3).T if library == "numpy" else torch.arange(6.0).reshape(2, 3).T
    before = x.copy() if library == "numpy" else x.clone()
    answer = ReferenceOracle(LiveBackend(tiny_reference)).layers.doubled_in_place(x)
    assert (answer == 2 * before).all() and (x == before).all()
