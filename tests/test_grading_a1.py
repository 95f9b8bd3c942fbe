"""The first assignment: seeds, fixtures and hidden checks as the modes use them."""

import pytest

from grader.results import Outcome
from support import a1, grade_checks, make_submission, outcomes


@pytest.fixture(scope="module")
def assignment():
    return a1()


def test_official_mode_draws_a_fresh_seed_and_records_it(assignment, tmp_path):
    folder = make_submission(tmp_path, assignment, "reference")
    first = grade_checks(assignment, folder, only="affine.forward", seed=None)
    second = grade_checks(assignment, folder, only="affine.forward", seed=None)
    assert first.seed != second.seed
    assert first.score == second.score == 2


def test_public_mode_uses_the_fixed_seed(assignment, tmp_path):
    result = grade_checks(assignment, make_submission(tmp_path, assignment, "reference"), mode="public",
                          only="affine.*", seed=None)
    assert result.seed == 0 and result.mode == "public"


def test_public_mode_fails_a_wrong_answer_against_the_recorded_fixtures(assignment, tmp_path):
    layers = (assignment.reference_directory / "layers.py").read_text()
    wrong = layers.replace("out = x.reshape(x.shape[0], -1) @ w + b", "out = x.reshape(x.shape[0], -1) @ w - b")
    assert wrong != layers, "the reference's affine_forward changed; update this test's mutation"
    folder = make_submission(tmp_path, assignment, "reference", {"layers.py": wrong})
    result = grade_checks(assignment, folder, mode="public", only="affine.forward")
    assert outcomes(result) == {"affine.forward": Outcome.FAILED}
    assert "out of affine_forward" in result.tasks[0].message


def test_hidden_checks_run_in_official_mode_only(assignment, tmp_path):
    folder = make_submission(tmp_path, assignment, "reference")
    official = grade_checks(assignment, folder, mode="official", only="conv.forward")
    public = grade_checks(assignment, folder, mode="public", only="conv.forward")
    hidden = [c.name for c in official.tasks[0].checks if "hidden" in c.name]
    assert len(hidden) == 2 and len(official.tasks[0].checks) == len(public.tasks[0].checks) + 2
    assert not any("hidden" in c.name for c in public.tasks[0].checks)


def test_a_check_says_when_it_drew_an_input_again_away_from_a_kink(tmp_path):
    from grader.results import Outcome
    from support import a1, grade_checks, make_submission

    shipped = a1()
    result = grade_checks(shipped, make_submission(tmp_path, shipped), only="relu.backward", seed=7)
    task = result.tasks[0]
    assert task.outcome is Outcome.PASSED
    notes = [n for c in task.checks for n in c.notes]
    assert any("drawn again" in n for n in notes) and "note: " in task.detail


def test_a_models_parameters_are_probed_together_along_directions(assignment, tmp_path):
    """A probe of a model is a whole forward and backward pass: the first attempt moves every parameter at
    once, 8 passes for the whole model whatever its size, not 8 for each parameter."""
    from grader.checking.gradcheck import DIRECTIONAL_PROBES, Mode, measuring

    with measuring() as measurements:
        result = grade_checks(assignment, make_submission(tmp_path, assignment), only="two_layer_net.gradients")
    assert outcomes(result) == {"two_layer_net.gradients": Outcome.PASSED}
    assert measurements and all(m.passed and "every parameter at once" in m.name for m in measurements)
    sizes = {m.size for m in measurements}
    assert {(m.mode, m.evaluations) for m in measurements} == {(Mode.DIRECTIONAL, 2 * DIRECTIONAL_PROBES)}
    assert len(sizes) == 1 and sizes.pop() > 4 * DIRECTIONAL_PROBES  # W1, b1, W2 and b2 together


def test_where_the_joint_probes_disagree_each_parameter_is_probed_on_its_own(assignment, tmp_path):
    """The parameter-by-parameter attempt names the parameter: along directions for every parameter with
    more elements than there are directions, 8 passes each."""
    from grader.checking.gradcheck import DIRECTIONAL_PROBES, Mode, measuring

    text = (assignment.reference_directory / "models.py").read_text()
    wrong = text.replace("        return loss, grads", "        grads['b2'][3] += 1e-3\n        return loss, grads", 1)
    with measuring() as measurements:
        result = grade_checks(assignment, make_submission(tmp_path, assignment, replace={"models.py": wrong}),
                              only="two_layer_net.gradients", hints=False)
    assert outcomes(result) == {"two_layer_net.gradients": Outcome.FAILED}
    joint = [m for m in measurements if "every parameter at once" in m.name]
    assert joint and not any(m.passed for m in joint)
    alone = {(m.name.split("'")[1], m.mode, m.evaluations, m.passed) for m in measurements if m not in joint}
    assert {(name, mode, evaluations) for name, mode, evaluations, passed in alone if passed} == {
        (name, Mode.DIRECTIONAL, 2 * DIRECTIONAL_PROBES) for name in ("W1", "b1", "W2")}
    assert {(name, mode) for name, mode, _, passed in alone if not passed} == {("b2", Mode.DIRECTIONAL)}
    assert "grads['b2']" in result.tasks[0].message


@pytest.mark.parametrize("parameter,element", [("b2", "3"), ("b1", "17"), ("W1", "2, 31")])
def test_one_wrong_element_of_a_models_gradient_loses_the_task(assignment, tmp_path, parameter, element):
    """Probed along directions, a gradient wrong in a single element still fails: the directions see it,
    and so does the comparison with the reference's gradient, element by element."""
    text = (assignment.reference_directory / "models.py").read_text()
    wrong = text.replace("        return loss, grads",
                         f"        grads[{parameter!r}][{element}] += 1e-3\n        return loss, grads", 1)
    folder = make_submission(tmp_path, assignment, replace={"models.py": wrong})
    result = grade_checks(assignment, folder, only="two_layer_net.gradients", seed=None)
    task = result.tasks[0]
    assert task.outcome is Outcome.FAILED, f"seed {result.seed}"
    assert f"grads['{parameter}']" in task.message, task.message
