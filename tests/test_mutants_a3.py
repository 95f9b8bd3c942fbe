"""Each typical student mistake in the residual-networks assignment loses exactly the tasks it
should: the task of the code it is in and the later tasks built on that code (a block's mistake
reaches the stages, networks and gradients made of that block).

A sample of the catalogue runs by default, at least one mistake per family (barebones, the
convnet modules, each block, stages, networks); GRADER_SLOW_TESTS=1 runs all of it."""

import os

import pytest

from grader.oracle.mistakes import load_catalogue
from mutants_a3 import MUTANTS, TRAINING_ENTRY_MUTANTS, apply
from support import assert_mutant_loses_exactly, assignment, grade_checks, hints_shown, make_submission

pytestmark = pytest.mark.slow  # every catalogued mutant of a3: ./grade.sh --selftest --all (CI) runs it

# Everything built from a block (stages with it, the networks with it, their gradients).
PLAIN_BLOCK_USERS = {"residual_block.forward", "resnet.stem_and_stage", "resnet.forward", "resnet.gradients"}
RESIDUAL_BLOCK_USERS = {"resnet.stem_and_stage", "resnet.forward", "resnet.gradients"}
BOTTLENECK_USERS = {"resnet.stem_and_stage", "resnet.forward", "resnet.gradients"}

EXPECTED_LOSSES = {
    "barebones_forward_missing_second_relu": {"barebones.forward", "barebones.train_step"},
    "barebones_init_without_kaiming_scale": {"barebones.init"},
    "barebones_train_step_keeps_gradients": {"barebones.train_step"},
    "module_convnet_kaiming_on_wrong_layer": {"module_convnet.init"},
    "module_convnet_forward_missing_first_relu": {"module_convnet.forward"},
    "sequential_convnet_linear_keeps_default_init": {"sequential_convnet.init"},
    "sequential_convnet_second_conv_unpadded": {"sequential_convnet.forward"},
    # Shapes and parameters stay right; every value after a downsampling block changes.
    "plain_block_stride_on_second_conv": {"plain_block.forward"} | PLAIN_BLOCK_USERS,
    "residual_block_relu_after_addition": {"residual_block.forward"} | RESIDUAL_BLOCK_USERS,
    # Only a block that downsamples without changing its channels meets the identity by mistake;
    # no stage or network of the checks has one.
    "residual_block_identity_when_downsampling": {"residual_block.shortcut", "residual_block.forward"},
    "bottleneck_width_full_channels": {"bottleneck_block.forward", "resnet.parameters"} | BOTTLENECK_USERS,
    "bottleneck_stride_on_3x3_conv": {"bottleneck_block.forward"} | BOTTLENECK_USERS,
    # Only stages of two or more blocks notice (the small named networks have one per stage; the
    # hidden network of resnet.forward has two).
    "resnet_stage_downsamples_every_block": {"resnet.stem_and_stage", "resnet.shapes", "resnet.parameters",
                                             "resnet.forward", "resnet.gradients"},
    "resnet_max_pools_features": {"resnet.forward", "resnet.gradients"},
    # view(-1) fails for every batch of more than one image; the training step calls the forward pass.
    "barebones_flatten_merges_batch": {"barebones.forward", "barebones.train_step"},
    "barebones_init_fc_fan_in_from_classes": {"barebones.init"},
    "barebones_init_conv_fan_in_without_filter_size": {"barebones.init"},
    # The training step is checked on parameters the grader makes leaves itself.
    "barebones_init_weights_without_grad": {"barebones.init"},
    "barebones_train_step_update_outside_no_grad": {"barebones.train_step"},
    "barebones_train_step_returns_loss_tensor": {"barebones.train_step"},
    "barebones_train_step_sums_loss": {"barebones.train_step"},
    "module_convnet_kaiming_fan_out": {"module_convnet.init"},
    "module_convnet_forward_relu_on_scores": {"module_convnet.forward"},
    "sequential_convnet_keeps_default_init": {"sequential_convnet.init"},
    # Different state_dict entries: every module with a PlainBlock in it fails to load the weights.
    "plain_block_convs_without_bias": {"plain_block.forward", "residual_block.shortcut", "resnet.parameters"}
                                      | PLAIN_BLOCK_USERS,
    "plain_block_relu_before_batchnorm": {"plain_block.forward", "residual_block.shortcut", "resnet.parameters"}
                                         | PLAIN_BLOCK_USERS,
    # Smaller outputs: the shortcut no longer adds, and the networks shrink below their shapes.
    "plain_block_first_conv_unpadded": {"plain_block.forward", "resnet.shapes"} | PLAIN_BLOCK_USERS,
    # Training-mode outputs and gradients stay right; the running averages and evaluation mode do not.
    "plain_block_batchnorm_momentum_keep_fraction": {"plain_block.forward", "residual_block.forward",
                                                     "resnet.stem_and_stage", "resnet.forward"},
    "residual_block_relu_before_addition": {"residual_block.forward"} | RESIDUAL_BLOCK_USERS,
    "residual_block_shortcut_without_stride": {"residual_block.shortcut", "residual_block.forward", "resnet.shapes"}
                                              | RESIDUAL_BLOCK_USERS,
    "residual_block_shortcut_with_batchnorm": {"residual_block.shortcut", "residual_block.forward",
                                               "resnet.parameters"} | RESIDUAL_BLOCK_USERS,
    # Only a downsampling block that keeps its channels meets the identity by mistake: the bottleneck
    # checks have one, and so has the hidden bottleneck network of resnet.forward.
    "bottleneck_identity_when_downsampling": {"bottleneck_block.forward", "resnet.forward"},
    "bottleneck_3x3_conv_unpadded": {"bottleneck_block.forward", "resnet.shapes"} | BOTTLENECK_USERS,
    "resnet_stem_missing_relu": {"resnet.stem_and_stage", "resnet.forward", "resnet.gradients"},
    "resnet_stage_ignores_downsample": {"resnet.stem_and_stage", "resnet.shapes", "resnet.forward",
                                        "resnet.gradients"},
    "resnet_pools_without_flatten": {"resnet.shapes", "resnet.forward", "resnet.gradients"},
}

SAMPLE = {
    "barebones_train_step_keeps_gradients", "module_convnet_kaiming_on_wrong_layer",
    "plain_block_stride_on_second_conv", "residual_block_identity_when_downsampling",
    "bottleneck_width_full_channels", "resnet_stage_downsamples_every_block",
    "sequential_convnet_keeps_default_init", "residual_block_shortcut_with_batchnorm",
}
RUN_ALL = os.environ.get("GRADER_SLOW_TESTS") == "1"


def test_every_mutant_has_an_expectation_and_every_task_is_covered():
    names = {m.name for m in MUTANTS}
    assert names == set(EXPECTED_LOSSES) | {m.name for m in TRAINING_ENTRY_MUTANTS}
    assert SAMPLE <= set(EXPECTED_LOSSES)
    check_tasks = {t.id for t in assignment("a3_resnet_pytorch").spec.tasks if t.training is None}
    hit = set().union(*EXPECTED_LOSSES.values())
    assert check_tasks <= hit, f"no mistake exercises {sorted(check_tasks - hit)}"


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in EXPECTED_LOSSES and (RUN_ALL or m.name in SAMPLE)],
                         ids=lambda m: m.name)
def test_mutant_loses_exactly_its_tasks(mutant, tmp_path):
    shipped = assignment("a3_resnet_pytorch")
    mutated = apply(mutant, (shipped.reference_directory / mutant.file).read_text())
    assert_mutant_loses_exactly(shipped, mutant, mutated, EXPECTED_LOSSES[mutant.name], tmp_path)


@pytest.mark.parametrize("mistake", [m for m in load_catalogue(assignment("a3_resnet_pytorch"))
                                     if not (RUN_ALL or m.id in SAMPLE)], ids=lambda m: m.id)
def test_official_grading_names_the_mistake(mistake, tmp_path):
    """Every mistake the sample above does not grade whole gets its own hint, and no other, on its task."""
    shipped = assignment("a3_resnet_pytorch")
    folder = make_submission(tmp_path, shipped, "reference", {mistake.file: mistake.source_text})
    result = grade_checks(shipped, folder, only=mistake.task, seed=None)
    task = result.tasks[0]
    assert task.points < task.max_points, f"seed {result.seed}: {task.message}"
    assert hints_shown(result, mistake.task) == {mistake.hint}, f"seed {result.seed}: {task.message}"
    assert f"hint: {mistake.hint}" in task.detail  # what every report prints


PUBLIC_SAMPLE = {"barebones_train_step_keeps_gradients", "bottleneck_width_full_channels",
                 "sequential_convnet_keeps_default_init", "plain_block_batchnorm_momentum_keep_fraction"}


@pytest.mark.parametrize("mistake", [m for m in load_catalogue(assignment("a3_resnet_pytorch"))
                                     if RUN_ALL or m.id in PUBLIC_SAMPLE], ids=lambda m: m.id)
def test_public_grading_names_the_mistake_from_the_sketches(mistake, tmp_path):
    """Without the reference, the hint comes from the recorded sketches (fixtures/mistake_sketches.json)."""
    shipped = assignment("a3_resnet_pytorch")
    folder = make_submission(tmp_path, shipped, "reference", {mistake.file: mistake.source_text})
    result = grade_checks(shipped, folder, only=mistake.task, mode="public")
    task = result.tasks[0]
    assert task.points < task.max_points, task.message
    assert hints_shown(result, mistake.task) == {mistake.hint}
