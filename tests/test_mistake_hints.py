"""Every catalogued mistake, graded as a submission, loses its task and gets its own hint: live in
official mode, from the recorded sketches in public mode.

The mutant tests (test_mutants_a1.py, test_mutants_a2.py) grade mistakes as whole submissions and
require the same hint; the mistakes they grade by default are not graded again here."""

import os

import pytest

from grader.oracle.mistakes import load_catalogue
from grader.results import Outcome
from support import assignment, grade_checks, hints_shown, make_submission
from test_mutants_a2 import SAMPLE as A2_MUTANT_SAMPLE

RUN_ALL = os.environ.get("GRADER_SLOW_TESTS") == "1"

CATALOGUES = {a: load_catalogue(assignment(a)) for a in ("a1_fc_numpy", "a2_cnn_torch")}
# Mistakes whose outputs cannot be told apart from another's on the checks that catch them; either
# hint is then right.
EQUIVALENT: dict[str, set[str]] = {}


def _cases(mode: str):
    for assignment_id, mistakes in CATALOGUES.items():
        for mistake in mistakes:
            yield pytest.param(assignment_id, mistake, mode, id=f"{mode}-{assignment_id[:2]}-{mistake.id}")


def _graded_by_the_mutant_tests(assignment_id: str, mistake_id: str) -> bool:
    # test_mutants_a1 grades the whole a1 catalogue; test_mutants_a2 a sample unless GRADER_SLOW_TESTS=1.
    return assignment_id == "a1_fc_numpy" or mistake_id in A2_MUTANT_SAMPLE or RUN_ALL


def grade_mistake(tmp_path, assignment_id, mistake, mode):
    shipped = assignment(assignment_id)
    folder = make_submission(tmp_path, shipped, "reference", {mistake.file: mistake.source_text})
    return grade_checks(shipped, folder, only=mistake.task, mode=mode, seed=None)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id,mistake,mode",
                         [c for c in _cases("official") if not _graded_by_the_mutant_tests(c.values[0], c.values[1].id)])
def test_official_grading_names_the_mistake(tmp_path, assignment_id, mistake, mode):
    result = grade_mistake(tmp_path, assignment_id, mistake, mode)
    task = next(t for t in result.tasks if t.task_id == mistake.task)
    assert task.points < task.max_points and task.outcome in (Outcome.FAILED, Outcome.ERROR), f"seed {result.seed}"
    allowed = {m.hint for m in CATALOGUES[assignment_id] if m.id in EQUIVALENT.get(mistake.id, set())}
    shown = hints_shown(result, mistake.task)
    assert mistake.hint in shown, f"seed {result.seed}: {task.message}"
    assert shown <= {mistake.hint} | allowed, f"seed {result.seed}: other hints shown: {shown - {mistake.hint}}"
    assert f"hint: {mistake.hint}" in task.detail  # what every report prints


PUBLIC_SAMPLE = {"affine_backward_divides_by_n", "batchnorm_backward_alt_misses_mean_term", "adam_no_bias_correction",
                 "max_pool_backward_routes_to_all_ties", "linear_backward_divides_by_n", "conv_backward_ignores_stride",
                 "relu_backward_masks_on_dout", "two_layer_net_reg_gradient_squared"}


@pytest.mark.parametrize("assignment_id,mistake,mode",
                         [c for c in _cases("public") if RUN_ALL or c.values[1].id in PUBLIC_SAMPLE])
def test_public_grading_names_the_mistake_from_the_sketches(tmp_path, assignment_id, mistake, mode):
    result = grade_mistake(tmp_path, assignment_id, mistake, mode)
    task = next(t for t in result.tasks if t.task_id == mistake.task)
    if task.points == task.max_points:
        pytest.skip("only the hidden checks catch this mistake")
    assert mistake.hint in hints_shown(result, mistake.task), task.message


def test_a_correct_submission_failing_for_another_reason_gets_no_catalogue_hint(tmp_path):
    """Teeth: a wrong gradient that is not in the catalogue (scaled by 3) fails without a hint."""
    shipped = assignment("a1_fc_numpy")
    text = (shipped.reference_directory / "layers.py").read_text()
    snippet = "dw = x.reshape(x.shape[0], -1).T @ dout"
    assert text.count(snippet) == 1
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text.replace(snippet, snippet + " * 3")})
    result = grade_checks(shipped, folder, only="affine.backward", mode="official")
    task = result.tasks[0]
    assert task.points == 0 and hints_shown(result, "affine.backward") == set()
    assert "3 times the numeric gradient" in task.message


@pytest.mark.parametrize("mode", ["official", "public"])
def test_a_mistake_is_named_whatever_the_forward_pass_keeps_in_its_cache(tmp_path, mode):
    # The cache is the student's to choose (a dict here, a tuple in the reference): the mistake shows in
    # the output, and its hint must not depend on the cache holding what the reference's holds.
    shipped = assignment("a1_fc_numpy")
    (mistake,) = [m for m in CATALOGUES["a1_fc_numpy"] if m.id == "batchnorm_forward_unbiased_variance"]
    text = mistake.source_text
    edits = {"cache = (x_hat, gamma, inv_std)": 'cache = {"x_hat": x_hat, "gamma": gamma, "inv_std": inv_std}',
             "x_hat, gamma, inv_std = cache": 'x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]'}
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    result = grade_checks(shipped, folder, only="batchnorm.forward", mode=mode, seed=None)
    assert result.tasks[0].points == 0 and mistake.hint in hints_shown(result, "batchnorm.forward")


def test_a_sketch_with_infinities_matches_itself_and_only_itself():
    import numpy as np

    from grader.oracle.sketches import entries_match, sketch_value

    overflowed = np.array([[np.inf, 1.0, 2.0], [0.5, -np.inf, 3.0]])
    assert entries_match(sketch_value(overflowed), sketch_value(overflowed.copy()))
    other = overflowed.copy()
    other[0, 0] = -np.inf
    assert not entries_match(sketch_value(overflowed), sketch_value(other))
    finite = np.nan_to_num(overflowed)
    assert not entries_match(sketch_value(overflowed), sketch_value(finite))


def test_two_errors_of_one_type_but_other_causes_sketch_differently():
    from grader.oracle.sketches import entries_match, sketch_failure
    from grader.sandbox.errors import StudentException

    def raised(message):
        return sketch_failure(StudentException(type_name="RuntimeError", message=message, traceback="",
                                               is_not_implemented=False, location=None))

    shapes = raised("mat1 and mat2 shapes cannot be multiplied (4x10 and 20x5)")
    assert entries_match(shapes, raised("mat1 and mat2 shapes cannot be multiplied (8x3 and 7x2)"))
    assert not entries_match(shapes, raised("view size is not compatible with input tensor's size and stride"))
