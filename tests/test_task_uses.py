"""A task that fails while a task it is built on (`uses` in assignment.yaml) fails its own says so first:
one wrong line in a layer costs the models built on it too, and each of their messages sends the
student to the layer."""

import pytest

from grader.assignment import ConfigError, load_assignment
from grader.oracle.mistakes import load_catalogue
from grader.results import Outcome
from support import a1, grade_checks, make_submission
from test_assignment_config import edit_config

MODEL_GRADIENTS = ["two_layer_net.gradients", "fc_net.gradients", "fc_net.dropout", "fc_net.batchnorm",
                   "fc_net.layernorm"]


def grade_with_mistake(tmp_path, mistake_id, only):
    (mistake,) = [m for m in load_catalogue(a1()) if m.id == mistake_id]
    folder = make_submission(tmp_path, a1(), "reference", {mistake.file: mistake.source_text})
    return {t.task_id: t for t in grade_checks(a1(), folder, only=",".join(only), seed=None).tasks}


def test_each_model_task_failing_with_a_broken_layer_names_the_layer(tmp_path):
    tasks = grade_with_mistake(tmp_path, "relu_backward_masks_on_dout", ["relu.backward", *MODEL_GRADIENTS])
    assert tasks["relu.backward"].outcome is Outcome.FAILED
    assert "fix it first" not in tasks["relu.backward"].message  # the layer's own task points nowhere
    for task_id in MODEL_GRADIENTS:
        task = tasks[task_id]
        assert task.outcome is Outcome.FAILED, task_id
        assert task.message.startswith("this uses relu.backward, which fails its own task and may be the cause: fix it first; "), \
            task.message


def test_a_model_task_that_fails_on_its_own_points_at_no_layer(tmp_path):
    tasks = grade_with_mistake(tmp_path, "fc_net_missing_reg_gradient", ["relu.backward", "fc_net.gradients"])
    assert tasks["relu.backward"].outcome is Outcome.PASSED
    assert tasks["fc_net.gradients"].outcome is Outcome.FAILED
    assert "fix it first" not in tasks["fc_net.gradients"].message


def test_a_model_task_is_not_pointed_at_a_layer_it_does_not_use(tmp_path):
    tasks = grade_with_mistake(tmp_path, "sigmoid_backward_ignores_dout", ["sigmoid.backward", "fc_net.gradients"])
    assert tasks["sigmoid.backward"].outcome is Outcome.FAILED
    assert tasks["fc_net.gradients"].outcome is Outcome.PASSED


@pytest.mark.parametrize("uses,words", [
    ("[no_such.task]", "'no_such.task' is not a task listed before it"),
    ("[fc_net.init]", "'fc_net.init' is not a task listed before it"),   # listed after two_layer_net.loss
    ("[two_layer_net.loss]", "'two_layer_net.loss' is not a task listed before it"),  # itself
])
def test_uses_names_earlier_tasks_only(project, uses, words):
    edit_config(project, "uses: [affine.forward, relu.forward, softmax_loss.loss]}",
                f"uses: {uses}}}")
    with pytest.raises(ConfigError) as error:
        load_assignment("a1_fc_numpy", project)
    assert words in str(error.value)


def test_a_model_not_implemented_yet_points_at_nothing(tmp_path):
    folder = make_submission(tmp_path, a1(), "stubs")
    tasks = {t.task_id: t for t in grade_checks(a1(), folder, only="affine.forward,two_layer_net.init",
                                                seed=None).tasks}
    assert tasks["two_layer_net.init"].outcome is Outcome.NOT_IMPLEMENTED
    assert "fix it first" not in tasks["two_layer_net.init"].message


def test_of_two_layers_either_of_which_may_be_reused_the_failing_one_is_named_as_a_maybe(tmp_path):
    # The spatial backward pass may call batchnorm_backward or batchnorm_backward_alt: where only the
    # second fails, saying "this uses" it would send a student who calls the first to the wrong place.
    tasks = grade_with_mistake(tmp_path, "batchnorm_backward_alt_misses_mean_term",
                               ["batchnorm.backward", "batchnorm.backward_alt", "spatial_batchnorm.backward"])
    assert tasks["batchnorm.backward"].outcome is Outcome.PASSED
    message = tasks["spatial_batchnorm.backward"].message
    assert message.startswith("this may use batchnorm.backward_alt (the docstring leaves the choice to you), which "
                              "fails its own task: if yours does, fix it first; "), message


def test_spatial_batch_normalization_failing_with_the_layer_it_reuses_names_it(tmp_path):
    # The reference's spatial backward pass reuses batchnorm_backward_alt, as students reuse their own.
    tasks = grade_with_mistake(tmp_path, "batchnorm_backward_alt_misses_mean_term",
                               ["batchnorm.backward_alt", "spatial_batchnorm.backward"])
    assert tasks["batchnorm.backward_alt"].outcome is Outcome.FAILED
    message = tasks["spatial_batchnorm.backward"].message
    assert message.startswith("this uses batchnorm.backward_alt, which fails its own task and may be the cause"), message
