"""Every assignment graded end to end: the reference earns every point of every task scored by
checks, the untouched stubs earn none and say so, in official and in public mode."""

import pytest

from grader.results import Outcome
from grader.validate import validate
from support import ASSIGNMENTS, assignment, check_tasks, grade_checks, make_submission, outcomes


@pytest.fixture(params=ASSIGNMENTS, scope="module")
def shipped(request):
    return assignment(request.param)


def test_validates_clean(shipped):
    assert validate(shipped) == []


@pytest.mark.parametrize("mode", ["official", "public"])
def test_reference_scores_every_point(shipped, tmp_path, mode):
    result = grade_checks(shipped, make_submission(tmp_path, shipped, "reference"), mode=mode)
    not_passed = {t.task_id: t.message for t in result.tasks if t.outcome is not Outcome.PASSED}
    assert not_passed == {}
    assert {t.task_id for t in result.tasks} == check_tasks(shipped)
    assert result.score == result.max_score == sum(t.points for t in shipped.spec.tasks if t.training is None)


@pytest.mark.parametrize("mode", ["official", "public"])
def test_stubs_score_zero_and_are_not_implemented(shipped, tmp_path, mode):
    result = grade_checks(shipped, make_submission(tmp_path, shipped, "stubs"), mode=mode)
    assert result.score == 0
    assert set(outcomes(result).values()) == {Outcome.NOT_IMPLEMENTED}
    assert all("not implemented" in t.message for t in result.tasks)
