"""Each typical student mistake loses exactly the tasks it should: the task of the function it is in,
and the later tasks that use that function, and nothing else."""

import pytest

from mutants_a1 import MUTANTS, apply
from support import a1, assert_mutant_loses_exactly, assert_training_mutant_misses

pytestmark = pytest.mark.slow  # every catalogued mutant of a1: ./grade.sh --selftest --all (CI) runs it

# Later tasks whose checks call a layer through the models.
TWO_LAYER_GRADIENTS = {"two_layer_net.gradients"}
FC_GRADIENTS = {"fc_net.gradients", "fc_net.dropout", "fc_net.batchnorm", "fc_net.layernorm"}
MODEL_GRADIENTS = TWO_LAYER_GRADIENTS | FC_GRADIENTS
MODEL_OUTPUTS = {"two_layer_net.loss", "fc_net.loss"}

EXPECTED_LOSSES = {
    "affine_forward_no_bias": {"affine.forward", "affine.backward"} | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "affine_backward_divides_by_n": {"affine.backward"} | MODEL_GRADIENTS,
    # The transposed product raises for non-square weights, so every model loss with labels errors.
    "affine_backward_transposed_product": {"affine.backward"} | MODEL_GRADIENTS | MODEL_OUTPUTS,
    "affine_backward_db_sums_features": {"affine.backward"} | MODEL_GRADIENTS,
    "relu_forward_leaky": {"relu.forward", "relu.backward"} | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "relu_backward_masks_on_dout": {"relu.backward"} | MODEL_GRADIENTS,
    "sigmoid_forward_wrong_sign": {"sigmoid.forward", "sigmoid.backward"},
    "sigmoid_backward_ignores_dout": {"sigmoid.backward"},
    "softmax_loss_sums_over_batch": {"softmax_loss.loss", "softmax_loss.gradient"} | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "softmax_loss_gradient_misses_minus_one": {"softmax_loss.gradient"} | MODEL_GRADIENTS,
    "svm_loss_counts_correct_class": {"svm_loss.loss", "svm_loss.gradient"},
    "svm_loss_gradient_misses_correct_class": {"svm_loss.gradient"},
    # An unscaled mask is consistent between forward and backward, but a backward pass is graded only
    # where its forward pass agrees with the reference: the networks with dropout use the layer too.
    "dropout_forward_not_scaled": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    # Kept units scaled by 1 / p, as the reference does, only p of them dropped instead of kept: each
    # output is one an inverted dropout can give, so gradients tied to the submission's mask hold.
    "dropout_forward_p_is_drop_probability": {"dropout.forward"},
    "dropout_forward_scales_in_test_mode": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    "dropout_backward_ignores_mask": {"dropout.backward", "fc_net.dropout"},
    # Spatial batch norm is built on batchnorm_forward and batchnorm_backward_alt.
    "batchnorm_forward_unbiased_variance": {"batchnorm.forward", "batchnorm.backward", "batchnorm.backward_alt",
                                            "fc_net.batchnorm", "spatial_batchnorm.forward",
                                            "spatial_batchnorm.backward"},
    "batchnorm_forward_running_average_swapped": {"batchnorm.forward", "spatial_batchnorm.forward"},
    "batchnorm_forward_test_uses_batch_statistics": {"batchnorm.forward", "spatial_batchnorm.forward"},
    "batchnorm_backward_ignores_variance_path": {"batchnorm.backward", "fc_net.batchnorm"},
    "batchnorm_backward_dgamma_without_x_hat": {"batchnorm.backward", "fc_net.batchnorm"},
    "batchnorm_backward_alt_misses_mean_term": {"batchnorm.backward_alt", "spatial_batchnorm.backward"},
    "layernorm_forward_normalizes_over_batch": {"layernorm.forward", "layernorm.backward", "fc_net.layernorm"},
    "layernorm_backward_mean_over_batch": {"layernorm.backward", "fc_net.layernorm"},
    "conv_forward_ignores_stride": {"conv.forward", "conv.backward"},
    # A wrong output width is consistent with a backward pass that loops over dout's shape, but the
    # backward pass is graded only where the forward pass agrees with the reference.
    "conv_forward_assumes_square": {"conv.forward", "conv.backward"},
    "conv_forward_flips_filter": {"conv.forward", "conv.backward"},
    "conv_backward_ignores_stride": {"conv.backward"},
    "conv_backward_dw_overwritten": {"conv.backward"},
    "conv_backward_db_averaged": {"conv.backward"},
    "max_pool_forward_assumes_no_overlap": {"max_pool.forward", "max_pool.backward"},
    "max_pool_forward_averages": {"max_pool.forward", "max_pool.backward"},
    "max_pool_backward_routes_to_all_ties": {"max_pool.backward"},
    "max_pool_backward_transposed_window_index": {"max_pool.backward"},
    "max_pool_backward_overwrites_overlaps": {"max_pool.backward"},
    "spatial_batchnorm_forward_reshape_without_transpose": {"spatial_batchnorm.forward", "spatial_batchnorm.backward"},
    "spatial_batchnorm_backward_reshape_without_transpose": {"spatial_batchnorm.backward"},
    "spatial_groupnorm_forward_per_channel": {"spatial_groupnorm.forward", "spatial_groupnorm.backward"},
    "spatial_groupnorm_backward_misses_variance_term": {"spatial_groupnorm.backward"},
    "spatial_groupnorm_backward_dgamma_averaged": {"spatial_groupnorm.backward"},
    "sgd_ascends": {"optim.sgd"},
    "sgd_momentum_sign_error": {"optim.sgd_momentum"},
    "sgd_momentum_forgets_velocity": {"optim.sgd_momentum"},
    "rmsprop_missing_sqrt": {"optim.rmsprop"},
    "rmsprop_decay_swapped": {"optim.rmsprop"},
    "adam_no_bias_correction": {"optim.adam"},
    "adam_missing_sqrt": {"optim.adam"},
    "adam_forgets_step_count": {"optim.adam"},
    "two_layer_net_random_biases": {"two_layer_net.init"},
    # A loss without the 1/2 disagrees with the reference and with its own gradient.
    "two_layer_net_reg_loss_without_half": {"two_layer_net.loss", "two_layer_net.gradients"},
    "two_layer_net_reg_gradient_squared": {"two_layer_net.gradients"},
    "two_layer_net_missing_reg_gradient": {"two_layer_net.gradients"},
    "fc_net_ignores_weight_scale": {"fc_net.init"},
    # Unused extra parameters: gradients are compared for the documented parameters only.
    "fc_net_normalizes_output_layer": {"fc_net.init"},
    # Layer norm keeps no running statistics, so sharing the parameter dicts only breaks batch norm.
    "fc_net_shares_norm_params": {"fc_net.batchnorm"},
    "fc_net_skips_dropout_backward": {"fc_net.dropout"},
    "fc_net_missing_reg_gradient": FC_GRADIENTS,
    # Consistent with its own gradient, but gradients are graded only where the loss agrees with the
    # reference's: every regularized network check sees it.
    "fc_net_regularizes_last_layer_only": {"fc_net.loss"} | FC_GRADIENTS,
    # Variants: the same mistakes written another way.
    "spatial_batchnorm_forward_reshape_back_without_transpose": {"spatial_batchnorm.forward",
                                                                 "spatial_batchnorm.backward"},
    "spatial_batchnorm_backward_reshape_back_without_transpose": {"spatial_batchnorm.backward"},
    "adam_no_bias_correction_in_place": {"optim.adam"},
    "spatial_groupnorm_forward_per_channel_over_pixels": {"spatial_groupnorm.forward", "spatial_groupnorm.backward"},
    "batchnorm_backward_misses_mean_term": {"batchnorm.backward", "fc_net.batchnorm"},
    "adam_bias_correction_without_step": {"optim.adam"},
    "adam_bias_correction_with_old_step": {"optim.adam"},
    "sgd_momentum_torch_convention": {"optim.sgd_momentum"},
    "rmsprop_forgets_cache": {"optim.rmsprop"},
    # Only scores near 1000, which the docstring names, overflow.
    "softmax_loss_without_max_shift": {"softmax_loss.loss"},
    # The models' checks feed (N, D) inputs, where no flattening is needed.
    "affine_forward_without_flattening": {"affine.forward", "affine.backward"},
    "affine_backward_dx_not_reshaped": {"affine.backward"},
    "conv_forward_without_bias": {"conv.forward", "conv.backward"},
    "conv_backward_dx_keeps_padding": {"conv.backward"},
    "max_pool_forward_output_size_off_by_one": {"max_pool.forward", "max_pool.backward"},
    "svm_loss_without_margin": {"svm_loss.loss", "svm_loss.gradient"},
    "two_layer_net_regularizes_biases": {"two_layer_net.loss", "two_layer_net.gradients"},
}

TRAINING_MUTANTS = {
    "two_layer_solver_learning_rate_too_small": "two_layer_net.cifar10",
    "overfit_weight_scale_too_small": "fc_net.overfit",
}


def test_every_mutant_has_an_expectation_and_every_task_is_covered():
    names = {m.name for m in MUTANTS}
    assert names == set(EXPECTED_LOSSES) | set(TRAINING_MUTANTS)
    check_tasks = {t.id for t in a1().spec.tasks if t.training is None}
    directly_hit = set().union(*EXPECTED_LOSSES.values())
    assert check_tasks <= directly_hit, f"no mistake exercises {sorted(check_tasks - directly_hit)}"


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in EXPECTED_LOSSES], ids=lambda m: m.name)
def test_mutant_loses_exactly_its_tasks(mutant, tmp_path):
    shipped = a1()
    mutated = apply(mutant, (shipped.reference_directory / mutant.file).read_text())
    assert_mutant_loses_exactly(shipped, mutant, mutated, EXPECTED_LOSSES[mutant.name], tmp_path)


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in TRAINING_MUTANTS], ids=lambda m: m.name)
def test_training_mutant_misses_its_target(mutant, tmp_path):
    shipped = a1()
    mutated = apply(mutant, (shipped.reference_directory / mutant.file).read_text())
    assert_training_mutant_misses(shipped, mutant, mutated, TRAINING_MUTANTS[mutant.name], tmp_path)
