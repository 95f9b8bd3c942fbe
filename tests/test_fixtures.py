"""The recorded public fixtures are current, and a stale or missing recording is detected."""

import pytest

from grader.assignment import load_assignment
from grader.fixtures import compare_fixtures, record, write_fixtures
from grader.oracle import FIXTURE_SUFFIX
from support import a1


@pytest.fixture(scope="module")
def recorded():
    return record(a1())


def test_committed_fixtures_are_current(recorded):
    differences = compare_fixtures(a1(), recorded)
    assert differences == [], "fixtures are stale: run `grader fixtures a1_fc_numpy`"


def test_a_changed_reference_makes_the_fixtures_stale(project):
    optim = project / "reference" / "a1_fc_numpy" / "optim.py"
    text = optim.read_text()
    assert 'config.setdefault("momentum", 0.9)' in text
    optim.write_text(text.replace('config.setdefault("momentum", 0.9)', 'config.setdefault("momentum", 0.8)'))
    assignment = load_assignment("a1_fc_numpy", project)
    differences = compare_fixtures(assignment, record(assignment))
    assert [d.file for d in differences] == [f"test_optim{FIXTURE_SUFFIX}"]


def test_missing_and_unused_fixture_files_are_reported(project, recorded):
    assignment = load_assignment("a1_fc_numpy", project)
    (assignment.fixtures_directory / f"test_models{FIXTURE_SUFFIX}").unlink()
    (assignment.fixtures_directory / f"test_gone{FIXTURE_SUFFIX}").write_bytes(b"")
    problems = {d.file: d.problem for d in compare_fixtures(assignment, recorded)}
    assert problems == {f"test_models{FIXTURE_SUFFIX}": "missing",
                        f"test_gone{FIXTURE_SUFFIX}": "no public check file uses it any more"}
    write_fixtures(assignment, recorded)
    assert compare_fixtures(assignment, recorded) == []
