"""Deliberately wrong versions of the a1_fc_numpy reference: typical student mistakes.

Each mutant replaces one small snippet of one reference file. A grader that is worth its points
fails every one of them on some task; the tests that say which tasks live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str  # unique, e.g. "affine_backward_divides_by_n"
    file: str  # "layers.py" | "optim.py" | "models.py", in reference/a1_fc_numpy/
    old: str  # exact snippet of the reference file; occurs exactly once
    new: str  # what the student wrote instead
    description: str  # the mistake, in a student's words


def apply(mutant: Mutant, source_text: str) -> str:
    """The reference source with the mutant's snippet replaced."""
    count = source_text.count(mutant.old)
    assert count == 1, f"{mutant.name}: snippet occurs {count} times in {mutant.file}, expected once"
    return source_text.replace(mutant.old, mutant.new)


MUTANTS: list[Mutant] = [
    # ---- affine
    Mutant(
        "affine_forward_no_bias",
        "layers.py",
        "out = x.reshape(x.shape[0], -1) @ w + b",
        "out = x.reshape(x.shape[0], -1) @ w",
        "I forgot to add the bias.",
    ),
    Mutant(
        "affine_backward_divides_by_n",
        "layers.py",
        "dw = x.reshape(x.shape[0], -1).T @ dout",
        "dw = x.reshape(x.shape[0], -1).T @ dout / x.shape[0]",
        "I averaged the weight gradient over the batch, like the loss.",
    ),
    Mutant(
        "affine_backward_transposed_product",
        "layers.py",
        "dw = x.reshape(x.shape[0], -1).T @ dout",
        "dw = dout.T @ x.reshape(x.shape[0], -1)",
        "I multiplied dout by x in the wrong order, so dw came out transposed.",
    ),
    Mutant(
        "affine_backward_db_sums_features",
        "layers.py",
        "    db = dout.sum(axis=0)\n    # END YOUR CODE\n    return dx, dw, db\n\n\ndef relu_forward",
        "    db = dout.sum(axis=1)\n    # END YOUR CODE\n    return dx, dw, db\n\n\ndef relu_forward",
        "I summed the bias gradient over the wrong axis.",
    ),
    # ---- relu
    Mutant(
        "relu_forward_leaky",
        "layers.py",
        "out = np.maximum(x, 0)",
        "out = np.maximum(x, 0.01 * x)",
        "I wrote a leaky ReLU by habit.",
    ),
    Mutant(
        "relu_backward_masks_on_dout",
        "layers.py",
        "dx = dout * (x > 0)",
        "dx = dout * (dout > 0)",
        "I masked the gradient where dout is negative instead of where x is.",
    ),
    # ---- sigmoid
    Mutant(
        "sigmoid_forward_wrong_sign",
        "layers.py",
        "out = 0.5 * (1 + np.tanh(0.5 * x))",
        "out = 1 / (1 + np.exp(x))",
        "I dropped the minus sign in exp(-x).",
    ),
    Mutant(
        "sigmoid_backward_ignores_dout",
        "layers.py",
        "dx = dout * out * (1 - out)",
        "dx = out * (1 - out)",
        "I returned the local derivative and forgot to multiply by the upstream gradient.",
    ),
    # ---- losses
    Mutant(
        "softmax_loss_sums_over_batch",
        "layers.py",
        "loss = -log_probs[rows, y].mean()",
        "loss = -log_probs[rows, y].sum()",
        "I summed the loss over the batch but averaged the gradient.",
    ),
    Mutant(
        "softmax_loss_gradient_misses_minus_one",
        "layers.py",
        "    dx[rows, y] -= 1\n",
        "",
        "I forgot to subtract 1 at the correct class in the gradient.",
    ),
    Mutant(
        "svm_loss_counts_correct_class",
        "layers.py",
        "    margins[rows, y] = 0\n",
        "",
        "I did not exclude the correct class from the margins, so every example adds 1.",
    ),
    Mutant(
        "svm_loss_gradient_misses_correct_class",
        "layers.py",
        "    positive[rows, y] = -positive.sum(axis=1)\n",
        "",
        "I forgot the gradient on the correct-class score.",
    ),
    # ---- dropout
    Mutant(
        "dropout_forward_not_scaled",
        "layers.py",
        "mask = (np.random.rand(*x.shape) < p) / p",
        "mask = np.random.rand(*x.shape) < p",
        "I dropped units but did not divide by p (not inverted dropout).",
    ),
    Mutant(
        "dropout_forward_p_is_drop_probability",
        "layers.py",
        "mask = (np.random.rand(*x.shape) < p) / p",
        "mask = (np.random.rand(*x.shape) > p) / p",
        "I treated p as the probability of dropping a unit.",
    ),
    Mutant(
        "dropout_forward_scales_in_test_mode",
        "layers.py",
        "out = x.copy()",
        "out = x * p",
        "I scaled by p at test time too, on top of the inverted scaling in training.",
    ),
    Mutant(
        "dropout_backward_ignores_mask",
        "layers.py",
        "dx = dout * mask",
        "dx = dout",
        "I passed the gradient straight through in training mode.",
    ),
    # ---- batch norm
    Mutant(
        "batchnorm_forward_unbiased_variance",
        "layers.py",
        "var = x.var(axis=0)",
        "var = x.var(axis=0, ddof=1)",
        "I used the unbiased variance (divide by N - 1).",
    ),
    Mutant(
        "batchnorm_forward_running_average_swapped",
        "layers.py",
        "running_mean = momentum * running_mean + (1 - momentum) * mean",
        "running_mean = (1 - momentum) * running_mean + momentum * mean",
        "I swapped momentum and 1 - momentum in the running mean.",
    ),
    Mutant(
        "batchnorm_forward_test_uses_batch_statistics",
        "layers.py",
        "x_hat = (x - running_mean) / np.sqrt(running_var + eps)",
        "x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)",
        "In test mode I normalized with the batch statistics instead of the running ones.",
    ),
    Mutant(
        "batchnorm_backward_ignores_variance_path",
        "layers.py",
        "dcentered = dx_hat * inv_std + dvar * 2 * centered / N",
        "dcentered = dx_hat * inv_std",
        "I treated the variance as a constant in the backward pass.",
    ),
    Mutant(
        "batchnorm_backward_dgamma_without_x_hat",
        "layers.py",
        "    dgamma = (dout * x_hat).sum(axis=0)\n    dx_hat = dout * gamma\n    centered",
        "    dgamma = dout.sum(axis=0)\n    dx_hat = dout * gamma\n    centered",
        "I took the gradient of gamma to be the same as that of beta.",
    ),
    Mutant(
        "batchnorm_backward_alt_misses_mean_term",
        "layers.py",
        "(dout - dbeta / dout.shape[0] - x_hat * dgamma / dout.shape[0])",
        "(dout - x_hat * dgamma / dout.shape[0])",
        "I dropped the term that comes from the mean in my simplified formula.",
    ),
    # ---- layer norm
    Mutant(
        "layernorm_forward_normalizes_over_batch",
        "layers.py",
        "    mean = x.mean(axis=1, keepdims=True)  # (N, 1)\n"
        "    inv_std = 1 / np.sqrt(x.var(axis=1, keepdims=True) + eps)  # (N, 1)\n",
        "    mean = x.mean(axis=0, keepdims=True)\n"
        "    inv_std = 1 / np.sqrt(x.var(axis=0, keepdims=True) + eps)\n",
        "I copied batch norm and normalized over the batch instead of over the features.",
    ),
    Mutant(
        "layernorm_backward_mean_over_batch",
        "layers.py",
        "- dx_hat.mean(axis=1, keepdims=True)",
        "- dx_hat.mean(axis=0, keepdims=True)",
        "In the backward pass I averaged over the batch axis, as in batch norm.",
    ),
    # ---- convolution
    Mutant(
        "conv_forward_ignores_stride",
        "layers.py",
        "window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]",
        "window = x_pad[:, :, i : i + HH, j : j + WW]",
        "I moved the filter by one pixel whatever the stride.",
    ),
    Mutant(
        "conv_forward_assumes_square",
        "layers.py",
        "out_w = 1 + (W + 2 * pad - WW) // stride\n    x_pad",
        "out_w = 1 + (H + 2 * pad - HH) // stride\n    x_pad",
        "I assumed square images and filters when computing the output width.",
    ),
    Mutant(
        "conv_forward_flips_filter",
        "layers.py",
        "np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))",
        "np.tensordot(window, w[:, :, ::-1, ::-1], axes=([1, 2, 3], [1, 2, 3]))",
        "I flipped the filter, as in the textbook definition of convolution.",
    ),
    Mutant(
        "conv_backward_ignores_stride",
        "layers.py",
        "            rows = slice(i * stride, i * stride + HH)\n"
        "            cols = slice(j * stride, j * stride + WW)\n",
        "            rows = slice(i, i + HH)\n"
        "            cols = slice(j, j + WW)\n",
        "In the backward pass I forgot the stride when locating each window.",
    ),
    Mutant(
        "conv_backward_dw_overwritten",
        "layers.py",
        "dw += np.tensordot(d, x_pad[:, :, rows, cols], axes=(0, 0))",
        "dw = np.tensordot(d, x_pad[:, :, rows, cols], axes=(0, 0))",
        "I assigned the weight gradient at each position instead of accumulating it.",
    ),
    Mutant(
        "conv_backward_db_averaged",
        "layers.py",
        "db = dout.sum(axis=(0, 2, 3))",
        "db = dout.sum(axis=(0, 2, 3)) / dout.shape[0]",
        "I averaged the bias gradient over the batch.",
    ),
    # ---- max pooling
    Mutant(
        "max_pool_forward_assumes_no_overlap",
        "layers.py",
        "            rows = slice(i * stride, i * stride + pool_height)\n"
        "            cols = slice(j * stride, j * stride + pool_width)\n"
        "            out[:, :, i, j]",
        "            rows = slice(i * pool_height, (i + 1) * pool_height)\n"
        "            cols = slice(j * pool_width, (j + 1) * pool_width)\n"
        "            out[:, :, i, j]",
        "I stepped by the window size, assuming the stride always equals it.",
    ),
    Mutant(
        "max_pool_forward_averages",
        "layers.py",
        "out[:, :, i, j] = x[:, :, rows, cols].max(axis=(2, 3))",
        "out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))",
        "I wrote average pooling.",
    ),
    Mutant(
        "max_pool_backward_routes_to_all_ties",
        "layers.py",
        "            first_max = flat.argmax(axis=2)[:, :, None]  # (N, C, 1)\n"
        "            routed = np.zeros_like(flat)\n"
        "            np.put_along_axis(routed, first_max, dout[:, :, i, j][:, :, None], axis=2)\n",
        "            is_max = flat == flat.max(axis=2, keepdims=True)\n"
        "            routed = is_max * dout[:, :, i, j][:, :, None]\n",
        "I sent the gradient to every element equal to the maximum.",
    ),
    Mutant(
        "max_pool_backward_routes_to_last_tie",
        "layers.py",
        "first_max = flat.argmax(axis=2)[:, :, None]  # (N, C, 1)",
        "first_max = (flat.shape[2] - 1 - flat[:, :, ::-1].argmax(axis=2))[:, :, None]",
        "Where several elements tie for the maximum I picked the last one.",
    ),
    Mutant(
        "max_pool_backward_transposed_window_index",
        "layers.py",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_width, pool_height).swapaxes(2, 3)",
        "I swapped row and column when turning the argmax back into a position.",
    ),
    Mutant(
        "max_pool_backward_overwrites_overlaps",
        "layers.py",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)",
        "dx[:, :, rows, cols] = routed.reshape(N, C, pool_height, pool_width)",
        "I assigned the gradient of each window, so overlapping windows overwrite each other.",
    ),
    # ---- spatial normalization
    Mutant(
        "spatial_batchnorm_forward_reshape_without_transpose",
        "layers.py",
        "rows = x.transpose(0, 2, 3, 1).reshape(-1, C)",
        "rows = x.reshape(-1, C)",
        "I reshaped (N, C, H, W) to (N * H * W, C) without moving the channels last.",
    ),
    Mutant(
        "spatial_batchnorm_backward_reshape_without_transpose",
        "layers.py",
        "drows = dout.transpose(0, 2, 3, 1).reshape(-1, C)",
        "drows = dout.reshape(-1, C)",
        "In the backward pass I reshaped dout without moving the channels last.",
    ),
    Mutant(
        "spatial_groupnorm_forward_per_channel",
        "layers.py",
        "groups = x.reshape(N, G, -1)",
        "groups = x.reshape(N, C, -1)",
        "I normalized every channel on its own instead of every group of channels.",
    ),
    Mutant(
        "spatial_groupnorm_backward_misses_variance_term",
        "layers.py",
        "        - x_hat_groups * (dx_hat * x_hat_groups).mean(axis=2, keepdims=True)\n",
        "",
        "I left out the term that comes from the variance.",
    ),
    Mutant(
        "spatial_groupnorm_backward_dgamma_averaged",
        "layers.py",
        "dgamma = (dout * x_hat).sum(axis=(0, 2, 3), keepdims=True)",
        "dgamma = (dout * x_hat).mean(axis=(0, 2, 3), keepdims=True)",
        "I averaged the gradient of gamma instead of summing it.",
    ),
    # ---- optimizers
    Mutant(
        "sgd_ascends",
        "optim.py",
        'next_w = w - config["learning_rate"] * dw\n',
        'next_w = w + config["learning_rate"] * dw\n',
        "I added the gradient instead of subtracting it.",
    ),
    Mutant(
        "sgd_momentum_sign_error",
        "optim.py",
        'v = config["momentum"] * config["velocity"] - config["learning_rate"] * dw',
        'v = config["momentum"] * config["velocity"] + config["learning_rate"] * dw',
        "I added the scaled gradient to the velocity.",
    ),
    Mutant(
        "sgd_momentum_forgets_velocity",
        "optim.py",
        '    config["velocity"] = v\n',
        "",
        "I never stored the new velocity, so momentum never builds up.",
    ),
    Mutant(
        "rmsprop_missing_sqrt",
        "optim.py",
        '(np.sqrt(cache) + config["epsilon"])',
        '(cache + config["epsilon"])',
        "I divided by the cache instead of its square root.",
    ),
    Mutant(
        "rmsprop_decay_swapped",
        "optim.py",
        "cache = decay_rate * config[\"cache\"] + (1 - decay_rate) * dw**2",
        "cache = (1 - decay_rate) * config[\"cache\"] + decay_rate * dw**2",
        "I swapped decay_rate and 1 - decay_rate.",
    ),
    Mutant(
        "adam_no_bias_correction",
        "optim.py",
        "    m_hat = m / (1 - beta1**t)\n    v_hat = v / (1 - beta2**t)\n",
        "    m_hat = m\n    v_hat = v\n",
        "I skipped the bias correction.",
    ),
    Mutant(
        "adam_missing_sqrt",
        "optim.py",
        "(np.sqrt(v_hat) + config[\"epsilon\"])",
        "(v_hat + config[\"epsilon\"])",
        "I divided by the second moment instead of its square root.",
    ),
    Mutant(
        "adam_forgets_step_count",
        "optim.py",
        'config["m"], config["v"], config["t"] = m, v, t',
        'config["m"], config["v"] = m, v',
        "I did not store t, so the bias correction always thinks it is the first step.",
    ),
    # ---- TwoLayerNet
    Mutant(
        "two_layer_net_random_biases",
        "models.py",
        'self.params["b1"] = np.zeros(hidden_dim)',
        'self.params["b1"] = weight_scale * np.random.randn(hidden_dim)',
        "I initialized the biases randomly like the weights.",
    ),
    Mutant(
        "two_layer_net_reg_loss_without_half",
        "models.py",
        "loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))",
        "loss += self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))",
        "I left out the 0.5 in the L2 loss but kept reg * W in the gradient.",
    ),
    Mutant(
        "two_layer_net_reg_gradient_squared",
        "models.py",
        'grads["W1"] += self.reg * W1\n',
        'grads["W1"] += self.reg * W1**2\n',
        "I added reg * W**2 to the gradient instead of its derivative.",
    ),
    Mutant(
        "two_layer_net_missing_reg_gradient",
        "models.py",
        '        grads["W2"] += self.reg * W2\n',
        "",
        "I forgot the regularization gradient of W2.",
    ),
    # ---- FullyConnectedNet
    Mutant(
        "fc_net_ignores_weight_scale",
        "models.py",
        'self.params[f"W{i}"] = weight_scale * np.random.randn(dims[i - 1], dims[i])',
        'self.params[f"W{i}"] = 0.01 * np.random.randn(dims[i - 1], dims[i])',
        "I hard-coded the initial weight scale.",
    ),
    Mutant(
        "fc_net_normalizes_output_layer",
        "models.py",
        "if normalization is not None and i < self.num_layers:",
        "if normalization is not None:",
        "I created gamma and beta for the output layer too.",
    ),
    Mutant(
        "fc_net_shares_norm_params",
        "models.py",
        "hidden, w, b, gamma, beta, self.bn_params[i - 1], self.normalization",
        "hidden, w, b, gamma, beta, self.bn_params[0], self.normalization",
        "All my batch-norm layers used the first layer's bn_param.",
    ),
    Mutant(
        "fc_net_skips_dropout_backward",
        "models.py",
        "dhidden = dropout_backward(dhidden, dropout_cache)",
        "dhidden = dhidden",
        "I forgot to backpropagate through dropout.",
    ),
    Mutant(
        "fc_net_missing_reg_gradient",
        "models.py",
        '            grads[f"W{i}"] += self.reg * w\n',
        "",
        "I added the L2 term to the loss but not to the gradients.",
    ),
    Mutant(
        "fc_net_regularizes_last_layer_only",
        "models.py",
        "for i in range(1, L + 1):\n            w = self.params[f\"W{i}\"]",
        "for i in range(L, L + 1):\n            w = self.params[f\"W{i}\"]",
        "I only regularized the output layer.",
    ),
    # ---- training entries
    Mutant(
        "two_layer_solver_learning_rate_too_small",
        "models.py",
        'optim_config={"learning_rate": 1e-3},',
        'optim_config={"learning_rate": 1e-7},',
        "I picked a learning rate so small that nothing trains in the time limit.",
    ),
    Mutant(
        "overfit_weight_scale_too_small",
        "models.py",
        "    weight_scale = 5e-2\n",
        "    weight_scale = 1e-3\n",
        "I kept the default tiny weight scale; the signal vanishes in five layers.",
    ),
]
