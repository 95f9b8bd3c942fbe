"""Each typical student mistake in the convolutional-networks assignment loses exactly the tasks it
should: the task of the function it is in and the later tasks that use that function.

Grading this assignment takes seconds per submission, so by default a representative sample of the
catalogue runs (one or more per layer family, optimizer and model); GRADER_SLOW_TESTS=1 runs all."""

import os

import pytest

from mutants_a2 import MUTANTS, apply
from support import assert_mutant_loses_exactly, assert_training_mutant_misses, assignment

pytestmark = pytest.mark.slow  # every catalogued mutant of a2: ./grade.sh --selftest --all (CI) runs it

MODEL_OUTPUTS = {"two_layer_net.loss", "fc_net.loss", "three_layer_convnet.loss", "deep_convnet.loss"}
MODEL_GRADIENTS = {"two_layer_net.gradients", "fc_net.gradients", "fc_net.dropout", "three_layer_convnet.gradients",
                   "deep_convnet.gradients", "deep_convnet.batchnorm"}
# Models whose hidden fully-connected layers are Linear_ReLU (DeepConvNet has none).
LINEAR_RELU_MODEL_GRADIENTS = {"two_layer_net.gradients", "fc_net.gradients", "fc_net.dropout",
                               "three_layer_convnet.gradients"}
# Everything that flattens convolutional features into a Linear layer with a label: a wrong dx shape errors.
CONV_MODEL_LOSSES = {"three_layer_convnet.loss", "three_layer_convnet.gradients",
                     "deep_convnet.loss", "deep_convnet.gradients", "deep_convnet.batchnorm"}
RELU_USERS = {"linear_relu.forward", "linear_relu.backward", "sandwich.backward"}
# SpatialBatchNorm is built on BatchNorm.forward and BatchNorm.backward; the batch-norm sandwich and
# DeepConvNet(batchnorm=True) on SpatialBatchNorm.
SPATIAL_BN_BACKWARD_USERS = {"spatial_batchnorm.backward", "sandwich.backward", "deep_convnet.batchnorm"}

EXPECTED_LOSSES = {
    "linear_forward_no_bias": ({"linear.forward", "linear.backward", "linear_relu.forward", "linear_relu.backward"}
                               | MODEL_OUTPUTS | MODEL_GRADIENTS),
    "linear_backward_divides_by_n": {"linear.backward", "linear_relu.backward"} | MODEL_GRADIENTS,
    # Correct for 2-D inputs; only layers fed with images (N, C, H, W) see the unshaped dx.
    "linear_backward_dx_not_reshaped": {"linear.backward"} | CONV_MODEL_LOSSES,
    "linear_backward_db_sums_features": {"linear.backward", "linear_relu.backward"} | MODEL_GRADIENTS,
    "relu_forward_leaky": {"relu.forward", "relu.backward"} | RELU_USERS | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "relu_backward_masks_on_dout": {"relu.backward", "linear_relu.backward", "sandwich.backward"} | MODEL_GRADIENTS,
    "linear_relu_backward_skips_relu": {"linear_relu.backward"} | LINEAR_RELU_MODEL_GRADIENTS,
    "softmax_loss_sums_over_batch": {"softmax_loss.loss", "softmax_loss.gradient"} | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "softmax_loss_gradient_misses_minus_one": {"softmax_loss.gradient"} | MODEL_GRADIENTS,
    "svm_loss_counts_correct_class": {"svm_loss.loss", "svm_loss.gradient"},
    "svm_loss_gradient_misses_correct_class": {"svm_loss.gradient"},
    "dropout_forward_p_is_keep_probability": {"dropout.forward"},
    # An unscaled mask is consistent between forward and backward, but a backward pass is graded only
    # where its forward pass agrees with the reference: the network with dropout uses the layer too.
    "dropout_forward_not_scaled": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    "dropout_forward_scales_in_test_mode": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    "dropout_backward_ignores_mask": {"dropout.backward", "fc_net.dropout"},
    "batchnorm_forward_unbiased_variance": ({"batchnorm.forward", "batchnorm.backward", "batchnorm.backward_alt",
                                             "spatial_batchnorm.forward"} | SPATIAL_BN_BACKWARD_USERS),
    "batchnorm_forward_running_average_swapped": {"batchnorm.forward", "spatial_batchnorm.forward"},
    "batchnorm_forward_test_uses_batch_statistics": {"batchnorm.forward", "spatial_batchnorm.forward"},
    "batchnorm_backward_ignores_variance_path": {"batchnorm.backward"} | SPATIAL_BN_BACKWARD_USERS,
    "batchnorm_backward_dgamma_without_x_hat": {"batchnorm.backward"} | SPATIAL_BN_BACKWARD_USERS,
    "batchnorm_backward_alt_misses_mean_term": {"batchnorm.backward_alt"},
    "batchnorm_backward_alt_without_gamma": {"batchnorm.backward_alt"},
    "spatial_batchnorm_forward_reshape_without_permute": {"spatial_batchnorm.forward"} | SPATIAL_BN_BACKWARD_USERS,
    "spatial_batchnorm_backward_reshape_without_permute": SPATIAL_BN_BACKWARD_USERS,
    "conv_forward_ignores_stride": {"conv.forward", "conv.backward"},
    # A wrong output width is consistent with a backward pass that loops over dout's shape, but the
    # backward pass is graded only where the forward pass agrees with the reference.
    "conv_forward_assumes_square": {"conv.forward", "conv.backward"},
    "conv_forward_flips_filter": {"conv.forward", "conv.backward"},
    "conv_forward_output_default_dtype": {"conv.forward", "conv.backward"},
    "conv_backward_ignores_stride": {"conv.backward"},
    "conv_backward_dw_overwritten": {"conv.backward"},
    "conv_backward_db_averaged": {"conv.backward"},
    "conv_backward_dx_keeps_padding": {"conv.backward"},
    "max_pool_forward_assumes_no_overlap": {"max_pool.forward", "max_pool.backward"},
    "max_pool_forward_averages": {"max_pool.forward", "max_pool.backward"},
    "max_pool_backward_routes_to_all_ties": {"max_pool.backward"},
    "max_pool_backward_transposed_window_index": {"max_pool.backward"},
    "max_pool_backward_overwrites_overlaps": {"max_pool.backward"},
    "sgd_ascends": {"optim.sgd"},
    "sgd_momentum_sign_error": {"optim.sgd_momentum"},
    "sgd_momentum_forgets_velocity": {"optim.sgd_momentum"},
    "rmsprop_missing_sqrt": {"optim.rmsprop"},
    "rmsprop_decay_swapped": {"optim.rmsprop"},
    "adam_no_bias_correction": {"optim.adam"},
    "adam_missing_sqrt": {"optim.adam"},
    "adam_forgets_step_count": {"optim.adam"},
    "kaiming_ignores_gain": {"kaiming.initializer"},
    # DeepConvNet's output layer takes the fully-connected branch with gain 1 (which the first
    # mistake leaves right, the second not).
    "kaiming_variance_used_as_std": {"kaiming.initializer", "deep_convnet.init"},
    # DeepConvNet(weight_scale='kaiming') uses the initializer for its convolutions.
    "kaiming_conv_fan_in_without_filter_size": {"kaiming.initializer", "deep_convnet.init"},
    "two_layer_net_random_biases": {"two_layer_net.init"},
    "two_layer_net_half_reg_loss": {"two_layer_net.loss", "two_layer_net.gradients"},
    "two_layer_net_reg_gradient_without_two": {"two_layer_net.gradients"},
    "two_layer_net_missing_reg_gradient": {"two_layer_net.gradients"},
    "fc_net_ignores_weight_scale": {"fc_net.init"},
    "fc_net_dropout_keep_drop_confused": {"fc_net.dropout"},
    "fc_net_skips_dropout_backward": {"fc_net.dropout"},
    "fc_net_half_reg_loss": {"fc_net.loss", "fc_net.gradients", "fc_net.dropout"},
    # Consistent with its own gradient, but gradients are graded only where the loss agrees with the
    # reference's: every regularized network check sees it.
    "fc_net_regularizes_hidden_layers_only": {"fc_net.loss", "fc_net.gradients", "fc_net.dropout"},
    "three_layer_conv_net_half_reg_loss": {"three_layer_convnet.loss", "three_layer_convnet.gradients"},
    "three_layer_conv_net_missing_conv_reg_gradient": {"three_layer_convnet.gradients"},
    "deep_conv_net_pool_index_off_by_one": {"deep_convnet.loss", "deep_convnet.gradients", "deep_convnet.batchnorm"},
    "deep_conv_net_batchnorm_params_missing": {"deep_convnet.init", "deep_convnet.batchnorm"},
    # Layers with batch norm need their own running averages; sharing them breaks shapes there only.
    "deep_conv_net_shares_bn_param": {"deep_convnet.batchnorm"},
    "deep_conv_net_kaiming_output_layer_as_relu": {"deep_convnet.init"},
    "three_layer_conv_net_hidden_weights_ignore_pooling": {"three_layer_convnet.init"},
    "deep_conv_net_missing_reg_gradient": {"deep_convnet.gradients", "deep_convnet.batchnorm"},
    "softmax_loss_gradient_not_averaged": {"softmax_loss.gradient"} | MODEL_GRADIENTS,
    "svm_loss_gradient_not_averaged": {"svm_loss.gradient"},
    # A transposed dw breaks every call of a model's loss(X, y): the L2 gradient cannot be added to it.
    "linear_backward_dw_transposed": {"linear.backward", "linear_relu.backward"} | MODEL_OUTPUTS | MODEL_GRADIENTS,
    "dropout_forward_scales_by_keep_probability": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    "dropout_forward_unscaled_mask_from_rand_like": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    # Kept units divided by p, not 1 - p: no inverted dropout of this assignment, so nothing built on it
    # is compared with the reference (the keep/drop confusion alone costs only the layer's own task).
    "dropout_forward_cs231n_keep_probability": {"dropout.forward", "dropout.backward", "fc_net.dropout"},
    "batchnorm_forward_unbiased_variance_written_out": ({"batchnorm.forward", "batchnorm.backward",
                                                         "batchnorm.backward_alt", "spatial_batchnorm.forward"}
                                                        | SPATIAL_BN_BACKWARD_USERS),
    # The outputs are right; only the running variance that test mode uses is off.
    "batchnorm_forward_running_var_unbiased": {"batchnorm.forward", "spatial_batchnorm.forward"},
    "batchnorm_backward_misses_mean_term": {"batchnorm.backward"} | SPATIAL_BN_BACKWARD_USERS,
    "batchnorm_backward_alt_misses_mean_term_written_out": {"batchnorm.backward_alt"},
    "spatial_batchnorm_forward_transposes_batch_and_channels": ({"spatial_batchnorm.forward"}
                                                                | SPATIAL_BN_BACKWARD_USERS),
    "spatial_batchnorm_backward_transposes_batch_and_channels": SPATIAL_BN_BACKWARD_USERS,
    "conv_forward_pads_every_dimension": {"conv.forward", "conv.backward"},
    # Only a convolution without padding has an empty pad:-pad.
    "conv_backward_unpads_with_negative_index": {"conv.backward"},
    "max_pool_backward_argmax_over_channels": {"max_pool.backward"},
    "max_pool_backward_routes_to_all_ties_by_comparison": {"max_pool.backward"},
    "adam_bias_correction_from_the_old_step": {"optim.adam"},
    "adam_bias_correction_of_the_first_moment_only": {"optim.adam"},
    # DeepConvNet's output layer (a linear one, 8192 inputs, 10 outputs) shows a fan_out; its square
    # 64 -> 64 convolutions do not.
    "kaiming_uses_fan_out": {"kaiming.initializer", "deep_convnet.init"},
    "kaiming_conv_uses_fan_out": {"kaiming.initializer"},
    "two_layer_net_half_reg_with_its_gradient": {"two_layer_net.loss", "two_layer_net.gradients"},
    "fc_net_half_reg_with_its_gradient": {"fc_net.loss", "fc_net.gradients", "fc_net.dropout"},
    "three_layer_conv_net_half_reg_with_its_gradient": {"three_layer_convnet.loss", "three_layer_convnet.gradients"},
    "deep_conv_net_kaiming_convolutions_without_relu_gain": {"deep_convnet.init"},
}

TRAINING_MUTANTS = {
    "two_layer_solver_learning_rate_too_small": "two_layer_net.cifar10",
    "three_layer_overfit_weight_scale_too_small": "fc_net.overfit_three_layer",
    "five_layer_overfit_learning_rate_too_small": "fc_net.overfit_five_layer",
}

SAMPLE = {
    "linear_forward_no_bias", "linear_backward_dx_not_reshaped", "relu_backward_masks_on_dout",
    "linear_relu_backward_skips_relu", "softmax_loss_gradient_misses_minus_one", "dropout_forward_p_is_keep_probability",
    "batchnorm_backward_ignores_variance_path", "batchnorm_backward_alt_misses_mean_term",
    "spatial_batchnorm_forward_reshape_without_permute", "conv_backward_ignores_stride",
    "conv_forward_output_default_dtype", "max_pool_backward_routes_to_all_ties", "adam_no_bias_correction",
    "kaiming_conv_fan_in_without_filter_size", "two_layer_net_reg_gradient_without_two",
    "fc_net_dropout_keep_drop_confused", "three_layer_conv_net_missing_conv_reg_gradient",
    "deep_conv_net_pool_index_off_by_one", "batchnorm_backward_misses_mean_term", "fc_net_half_reg_with_its_gradient",
}
RUN_ALL = os.environ.get("GRADER_SLOW_TESTS") == "1"


def test_every_mutant_has_an_expectation_and_every_task_is_covered():
    names = {m.name for m in MUTANTS}
    assert names == set(EXPECTED_LOSSES) | set(TRAINING_MUTANTS) | {"conv_solver_learning_rate_too_small"}
    assert SAMPLE <= set(EXPECTED_LOSSES)
    check_tasks = {t.id for t in assignment("a2_cnn_torch").spec.tasks if t.training is None}
    hit = set().union(*EXPECTED_LOSSES.values())
    assert check_tasks <= hit, f"no mistake exercises {sorted(check_tasks - hit)}"


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in EXPECTED_LOSSES and (RUN_ALL or m.name in SAMPLE)],
                         ids=lambda m: m.name)
def test_mutant_loses_exactly_its_tasks(mutant, tmp_path):
    shipped = assignment("a2_cnn_torch")
    mutated = apply(mutant, (shipped.reference_directory / mutant.file).read_text())
    assert_mutant_loses_exactly(shipped, mutant, mutated, EXPECTED_LOSSES[mutant.name], tmp_path)


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in TRAINING_MUTANTS], ids=lambda m: m.name)
def test_training_mutant_misses_its_target(mutant, tmp_path):
    shipped = assignment("a2_cnn_torch")
    mutated = apply(mutant, (shipped.reference_directory / mutant.file).read_text())
    assert_training_mutant_misses(shipped, mutant, mutated, TRAINING_MUTANTS[mutant.name], tmp_path)
