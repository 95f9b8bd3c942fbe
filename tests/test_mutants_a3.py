"""Each typical student mistake in the residual-networks assignment loses exactly the tasks it
should: the task of the code it is in and the later tasks built on that code (a block's mistake
reaches the stages, networks and gradients made of that block).

A sample of the catalogue runs by default, at least one mistake per family (barebones, the
convnet modules, each block, stages, networks); GRADER_SLOW_TESTS=1 runs all of it."""

import os

import pytest

from grader.mistakes import load_catalogue
from mutants_a3 import MUTANTS, TRAINING_ENTRY_MUTANTS, apply
from support import assert_mutant_loses_exactly, assignment, grade_checks, hints_shown, make_submission

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
}

SAMPLE = {
    "barebones_train_step_keeps_gradients", "module_convnet_kaiming_on_wrong_layer",
    "plain_block_stride_on_second_conv", "residual_block_identity_when_downsampling",
    "bottleneck_width_full_channels", "resnet_stage_downsamples_every_block",
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


PUBLIC_SAMPLE = {"barebones_train_step_keeps_gradients", "bottleneck_width_full_channels"}


@pytest.mark.parametrize("mistake", [m for m in load_catalogue(assignment("a3_resnet_pytorch"))
                                     if RUN_ALL or m.id in PUBLIC_SAMPLE], ids=lambda m: m.id)
def test_public_grading_names_the_mistake_from_the_fingerprints(mistake, tmp_path):
    """Without the reference, the hint comes from the recorded fingerprints (fixtures/mistakes.json)."""
    shipped = assignment("a3_resnet_pytorch")
    folder = make_submission(tmp_path, shipped, "reference", {mistake.file: mistake.source_text})
    result = grade_checks(shipped, folder, only=mistake.task, mode="public")
    task = result.tasks[0]
    assert task.points < task.max_points, task.message
    assert hints_shown(result, mistake.task) == {mistake.hint}
