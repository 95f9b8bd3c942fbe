"""Deliberately wrong versions of the a2_cnn_torch reference: typical student mistakes.

Each mutant replaces one small snippet of one reference file (reference/a2_cnn_torch/). A grader
that is worth its points fails every one of them on some task; the tests that say which tasks
live elsewhere.
"""

from __future__ import annotations

from mutants_a1 import Mutant, apply

__all__ = ["MUTANTS", "Mutant", "apply"]

MUTANTS: list[Mutant] = [
    Mutant(
        "linear_forward_uses_view",
        "layers.py",
        "        out = x.reshape(x.shape[0], -1) @ w + b",
        "        out = x.view(x.shape[0], -1) @ w + b",
        "I flattened x with view(), which only works when x is contiguous.",
    ),
    # ---- Linear
    Mutant(
        "linear_forward_no_bias",
        "layers.py",
        "out = x.reshape(x.shape[0], -1) @ w + b",
        "out = x.reshape(x.shape[0], -1) @ w",
        "I forgot to add the bias.",
    ),
    Mutant(
        "linear_backward_divides_by_n",
        "layers.py",
        "dw = x.reshape(x.shape[0], -1).t() @ dout",
        "dw = x.reshape(x.shape[0], -1).t() @ dout / x.shape[0]",
        "I averaged the weight gradient over the batch, like the loss.",
    ),
    Mutant(
        "linear_backward_dx_not_reshaped",
        "layers.py",
        "dx = (dout @ w.t()).reshape(x.shape)",
        "dx = dout @ w.t()",
        "I returned dx flattened to (N, D) instead of in the shape of x.",
    ),
    Mutant(
        "linear_backward_db_sums_features",
        "layers.py",
        "        db = dout.sum(dim=0)\n        # END YOUR CODE\n        return dx, dw, db\n\n\nclass ReLU",
        "        db = dout.sum(dim=1)\n        # END YOUR CODE\n        return dx, dw, db\n\n\nclass ReLU",
        "I summed the bias gradient over the wrong dimension.",
    ),
    # ---- ReLU
    Mutant(
        "relu_forward_leaky",
        "layers.py",
        "out = x.clamp(min=0)",
        "out = torch.maximum(x, 0.01 * x)",
        "I wrote a leaky ReLU by habit.",
    ),
    Mutant(
        "relu_forward_in_place",
        "layers.py",
        "out = x.clamp(min=0)",
        "x[x < 0] = 0\n        out = x",
        "I zeroed the negative entries of x itself instead of a copy.",
    ),
    Mutant(
        "relu_backward_masks_on_dout",
        "layers.py",
        "dx = dout * (x > 0)",
        "dx = dout * (dout > 0)",
        "I masked the gradient where dout is negative instead of where x is.",
    ),
    # ---- Linear_ReLU
    Mutant(
        "linear_relu_backward_skips_relu",
        "layers.py",
        "da = ReLU.backward(dout, relu_cache)\n        dx, dw, db = Linear.backward(da, fc_cache)",
        "dx, dw, db = Linear.backward(dout, fc_cache)",
        "I passed dout straight to the linear layer and forgot the ReLU's backward pass.",
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
        "    positive[rows, y] = -positive.sum(dim=1)\n",
        "",
        "I forgot the gradient on the correct-class score.",
    ),
    # ---- Dropout
    Mutant(
        "dropout_forward_p_is_keep_probability",
        "layers.py",
        "keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= p",
        "keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) < p",
        "I treated p as the probability of keeping a unit, as in CS231n.",
    ),
    Mutant(
        "dropout_forward_not_scaled",
        "layers.py",
        "mask = keep.to(x.dtype) / (1 - p)",
        "mask = keep.to(x.dtype)",
        "I dropped units but did not scale the kept ones (not inverted dropout).",
    ),
    Mutant(
        "dropout_forward_scales_in_test_mode",
        "layers.py",
        "out = x.clone()",
        "out = x * (1 - p)",
        "I scaled by 1 - p at test time too, on top of the inverted scaling in training.",
    ),
    Mutant(
        "dropout_backward_ignores_mask",
        "layers.py",
        "dx = dout * mask",
        "dx = dout.clone()",
        "I passed the gradient straight through in training mode.",
    ),
    # ---- BatchNorm
    Mutant(
        "batchnorm_forward_unbiased_variance",
        "layers.py",
        "var = ((x - mean) ** 2).mean(dim=0)",
        "var = x.var(dim=0)",
        "I used torch's default variance, which divides by N - 1.",
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
        "x_hat = (x - running_mean) / torch.sqrt(running_var + eps)",
        "x_hat = (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + eps)",
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
        "        dgamma = (dout * x_hat).sum(dim=0)\n        dx_hat = dout * gamma\n",
        "        dgamma = dout.sum(dim=0)\n        dx_hat = dout * gamma\n",
        "I took the gradient of gamma to be the same as that of beta.",
    ),
    Mutant(
        "batchnorm_backward_alt_misses_mean_term",
        "layers.py",
        "(dout - dbeta / N - x_hat * dgamma / N)",
        "(dout - x_hat * dgamma / N)",
        "I dropped the term that comes from the mean in my simplified formula.",
    ),
    Mutant(
        "batchnorm_backward_alt_without_gamma",
        "layers.py",
        "dx = gamma * inv_std * (",
        "dx = inv_std * (",
        "My simplified formula forgot that the output is scaled by gamma.",
    ),
    # ---- SpatialBatchNorm
    Mutant(
        "spatial_batchnorm_forward_reshape_without_permute",
        "layers.py",
        "rows = x.permute(0, 2, 3, 1).reshape(-1, C)",
        "rows = x.reshape(-1, C)",
        "I reshaped (N, C, H, W) to (N * H * W, C) without moving the channels last.",
    ),
    Mutant(
        "spatial_batchnorm_backward_reshape_without_permute",
        "layers.py",
        "drows = dout.permute(0, 2, 3, 1).reshape(-1, C)",
        "drows = dout.reshape(-1, C)",
        "In the backward pass I reshaped dout without moving the channels last.",
    ),
    # ---- Conv
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
        "out_w = 1 + (W + 2 * pad - WW) // stride",
        "out_w = 1 + (H + 2 * pad - HH) // stride",
        "I assumed square images and filters when computing the output width.",
    ),
    Mutant(
        "conv_forward_flips_filter",
        "layers.py",
        "out[:, :, i, j] = window.reshape(N, -1) @ w_rows.t() + b",
        "out[:, :, i, j] = window.reshape(N, -1) @ w.flip(2, 3).reshape(F, -1).t() + b",
        "I flipped the filter, as in the textbook definition of convolution.",
    ),
    Mutant(
        "conv_forward_output_default_dtype",
        "layers.py",
        "out = torch.empty((N, F, out_h, out_w), dtype=x.dtype, device=x.device)",
        "out = torch.zeros((N, F, out_h, out_w))",
        "I created the output with torch's defaults: float32 on the CPU, whatever x is.",
    ),
    Mutant(
        "conv_backward_ignores_stride",
        "layers.py",
        "                rows = slice(i * stride, i * stride + HH)\n"
        "                cols = slice(j * stride, j * stride + WW)\n",
        "                rows = slice(i, i + HH)\n"
        "                cols = slice(j, j + WW)\n",
        "In the backward pass I forgot the stride when locating each window.",
    ),
    Mutant(
        "conv_backward_dw_overwritten",
        "layers.py",
        "dw_rows += d.t() @ x_pad[:, :, rows, cols].reshape(N, -1)",
        "dw_rows = d.t() @ x_pad[:, :, rows, cols].reshape(N, -1)",
        "I assigned the weight gradient at each position instead of accumulating it.",
    ),
    Mutant(
        "conv_backward_db_averaged",
        "layers.py",
        "db = dout.sum(dim=(0, 2, 3))",
        "db = dout.sum(dim=(0, 2, 3)) / dout.shape[0]",
        "I averaged the bias gradient over the batch.",
    ),
    Mutant(
        "conv_backward_dx_keeps_padding",
        "layers.py",
        "dx = dx_pad[:, :, pad : pad + H, pad : pad + W]",
        "dx = dx_pad",
        "I returned the gradient of the padded input, border included.",
    ),
    # ---- MaxPool
    Mutant(
        "max_pool_forward_assumes_no_overlap",
        "layers.py",
        "                rows = slice(i * stride, i * stride + pool_height)\n"
        "                cols = slice(j * stride, j * stride + pool_width)\n"
        "                out[:, :, i, j]",
        "                rows = slice(i * pool_height, (i + 1) * pool_height)\n"
        "                cols = slice(j * pool_width, (j + 1) * pool_width)\n"
        "                out[:, :, i, j]",
        "I stepped by the window size, assuming the stride always equals it.",
    ),
    Mutant(
        "max_pool_forward_averages",
        "layers.py",
        "out[:, :, i, j] = x[:, :, rows, cols].amax(dim=(2, 3))",
        "out[:, :, i, j] = x[:, :, rows, cols].mean(dim=(2, 3))",
        "I wrote average pooling.",
    ),
    Mutant(
        "max_pool_backward_routes_to_all_ties",
        "layers.py",
        "                first_max = flat.argmax(dim=2, keepdim=True)  # (N, C, 1)\n"
        "                routed = torch.zeros_like(flat)\n"
        "                routed.scatter_(2, first_max, dout[:, :, i, j].unsqueeze(2))\n",
        "                is_max = flat == flat.amax(dim=2, keepdim=True)\n"
        "                routed = is_max * dout[:, :, i, j].unsqueeze(2)\n",
        "I sent the gradient to every element equal to the maximum.",
    ),
    Mutant(
        "max_pool_backward_routes_to_last_tie",
        "layers.py",
        "first_max = flat.argmax(dim=2, keepdim=True)  # (N, C, 1)",
        "first_max = flat.shape[2] - 1 - flat.flip(2).argmax(dim=2, keepdim=True)",
        "Where several elements tie for the maximum I picked the last one.",
    ),
    Mutant(
        "max_pool_backward_transposed_window_index",
        "layers.py",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_width, pool_height).transpose(2, 3)",
        "I swapped row and column when turning the argmax back into a position.",
    ),
    Mutant(
        "max_pool_backward_overwrites_overlaps",
        "layers.py",
        "dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)",
        "dx[:, :, rows, cols] = routed.reshape(N, C, pool_height, pool_width)",
        "I assigned the gradient of each window, so overlapping windows overwrite each other.",
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
        '(torch.sqrt(cache) + config["epsilon"])',
        '(cache + config["epsilon"])',
        "I divided by the cache instead of its square root.",
    ),
    Mutant(
        "rmsprop_decay_swapped",
        "optim.py",
        'cache = decay_rate * config["cache"] + (1 - decay_rate) * dw**2',
        'cache = (1 - decay_rate) * config["cache"] + decay_rate * dw**2',
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
        '(torch.sqrt(v_hat) + config["epsilon"])',
        '(v_hat + config["epsilon"])',
        "I divided by the second moment instead of its square root.",
    ),
    Mutant(
        "adam_forgets_step_count",
        "optim.py",
        'config["m"], config["v"], config["t"] = m, v, t',
        'config["m"], config["v"] = m, v',
        "I did not store t, so the bias correction always thinks it is the first step.",
    ),
    # ---- kaiming_initializer
    Mutant(
        "kaiming_ignores_gain",
        "models.py",
        "std = math.sqrt(gain / Din)",
        "std = math.sqrt(1 / Din)",
        "I used variance 1 / fan_in for every layer, ReLU or not.",
    ),
    Mutant(
        "kaiming_variance_used_as_std",
        "models.py",
        "std = math.sqrt(gain / Din)",
        "std = gain / Din",
        "I used gain / fan_in as the standard deviation instead of the variance.",
    ),
    Mutant(
        "kaiming_conv_fan_in_without_filter_size",
        "models.py",
        "std = math.sqrt(gain / (Din * K * K))",
        "std = math.sqrt(gain / Din)",
        "For convolutions I took fan_in to be the number of input channels only.",
    ),
    # ---- TwoLayerNet
    Mutant(
        "two_layer_net_random_biases",
        "models.py",
        'self.params["b1"] = torch.zeros(hidden_dim, **like)',
        'self.params["b1"] = weight_scale * torch.randn(hidden_dim, **like)',
        "I initialized the biases randomly like the weights.",
    ),
    Mutant(
        "two_layer_net_half_reg_loss",
        "models.py",
        "loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum())",
        "loss = loss + 0.5 * self.reg * ((W1 * W1).sum() + (W2 * W2).sum())",
        "I kept CS231n's 0.5 in the L2 loss.",
    ),
    Mutant(
        "two_layer_net_reg_gradient_without_two",
        "models.py",
        '_, dW1, grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)\n'
        '        grads["W1"] = dW1 + 2 * self.reg * W1\n'
        '        grads["W2"] = dW2 + 2 * self.reg * W2\n',
        '_, dW1, grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)\n'
        '        grads["W1"] = dW1 + self.reg * W1\n'
        '        grads["W2"] = dW2 + self.reg * W2\n',
        "I added reg * W to the gradients, as if the loss had the 0.5.",
    ),
    Mutant(
        "two_layer_net_missing_reg_gradient",
        "models.py",
        '_, dW1, grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)\n'
        '        grads["W1"] = dW1 + 2 * self.reg * W1\n',
        '_, dW1, grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)\n'
        '        grads["W1"] = dW1\n',
        "I forgot the regularization gradient of W1.",
    ),
    # ---- FullyConnectedNet
    Mutant(
        "fc_net_ignores_weight_scale",
        "models.py",
        'self.params[f"W{i}"] = weight_scale * torch.randn(\n                dims[i - 1], dims[i]',
        'self.params[f"W{i}"] = 0.01 * torch.randn(\n                dims[i - 1], dims[i]',
        "I hard-coded the initial weight scale.",
    ),
    Mutant(
        "fc_net_dropout_keep_drop_confused",
        "models.py",
        'self.dropout_param = {"mode": "train", "p": dropout}',
        'self.dropout_param = {"mode": "train", "p": 1 - dropout}',
        "I turned the dropout probability into a keep probability for the layer.",
    ),
    Mutant(
        "fc_net_skips_dropout_backward",
        "models.py",
        "dhidden = Dropout.backward(dhidden, dropout_cache)",
        "dhidden = dhidden",
        "I forgot to backpropagate through dropout.",
    ),
    Mutant(
        "fc_net_half_reg_loss",
        "models.py",
        '            dhidden, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dhidden, cache)\n'
        "        for i in range(1, L + 1):\n"
        '            w = self.params[f"W{i}"]\n'
        "            loss = loss + self.reg * (w * w).sum()\n",
        '            dhidden, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dhidden, cache)\n'
        "        for i in range(1, L + 1):\n"
        '            w = self.params[f"W{i}"]\n'
        "            loss = loss + 0.5 * self.reg * (w * w).sum()\n",
        "I kept CS231n's 0.5 in the L2 loss.",
    ),
    Mutant(
        "fc_net_regularizes_hidden_layers_only",
        "models.py",
        '            dhidden, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dhidden, cache)\n'
        "        for i in range(1, L + 1):\n",
        '            dhidden, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dhidden, cache)\n'
        "        for i in range(1, L):\n",
        "My regularization loop stopped before the output layer.",
    ),
    # ---- ThreeLayerConvNet
    Mutant(
        "three_layer_conv_net_half_reg_loss",
        "models.py",
        "loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum() + (W3 * W3).sum())",
        "loss = loss + 0.5 * self.reg * ((W1 * W1).sum() + (W2 * W2).sum() + (W3 * W3).sum())",
        "I kept CS231n's 0.5 in the L2 loss.",
    ),
    Mutant(
        "three_layer_conv_net_missing_conv_reg_gradient",
        "models.py",
        '_, dW1, grads["b1"] = Conv_ReLU_Pool.backward(dpooled, pool_cache)\n'
        '        grads["W1"] = dW1 + 2 * self.reg * W1\n',
        '_, dW1, grads["b1"] = Conv_ReLU_Pool.backward(dpooled, pool_cache)\n'
        '        grads["W1"] = dW1\n',
        "I forgot the regularization gradient of the filters.",
    ),
    Mutant(
        "three_layer_conv_net_hidden_size_ignores_filter_size",
        "models.py",
        "pooled = num_filters * (conv_h // 2) * (conv_w // 2)",
        "pooled = num_filters * (H // 2) * (W // 2)",
        "I assumed the convolution always keeps the image size, even for even filter sizes.",
    ),
    # ---- DeepConvNet
    Mutant(
        "deep_conv_net_pool_index_off_by_one",
        "models.py",
        "pool = i - 1 in self.max_pools",
        "pool = i in self.max_pools",
        "I compared the 1-based layer number with max_pools, which counts from 0.",
    ),
    Mutant(
        "deep_conv_net_batchnorm_params_missing",
        "models.py",
        "            if batchnorm:\n"
        '                self.params[f"gamma{i}"] = torch.ones(filters, dtype=dtype, device=device)\n'
        '                self.params[f"beta{i}"] = torch.zeros(filters, dtype=dtype, device=device)\n',
        "",
        "I forgot to create gamma and beta for the batch normalization layers.",
    ),
    Mutant(
        "deep_conv_net_shares_bn_param",
        "models.py",
        "bn_param = self.bn_params[i - 1]",
        "bn_param = self.bn_params[0]",
        "All my batch-norm layers used the first layer's bn_param.",
    ),
    Mutant(
        "deep_conv_net_kaiming_output_layer_as_relu",
        "models.py",
        "w = kaiming_initializer(features, num_classes, relu=False, device=device, dtype=dtype)",
        "w = kaiming_initializer(features, num_classes, relu=True, device=device, dtype=dtype)",
        "I used the ReLU gain for the output layer, which no ReLU follows.",
    ),
    Mutant(
        "deep_conv_net_missing_reg_gradient",
        "models.py",
        '                dhidden, grads[f"W{i}"], grads[f"b{i}"] = sandwich.backward(dhidden, cache)\n'
        "        for i in range(1, L + 1):\n"
        '            w = self.params[f"W{i}"]\n'
        "            loss = loss + self.reg * (w * w).sum()\n"
        '            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * w\n',
        '                dhidden, grads[f"W{i}"], grads[f"b{i}"] = sandwich.backward(dhidden, cache)\n'
        "        for i in range(1, L + 1):\n"
        '            w = self.params[f"W{i}"]\n'
        "            loss = loss + self.reg * (w * w).sum()\n",
        "I added the L2 term to the loss but not to the gradients.",
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
        "three_layer_overfit_weight_scale_too_small",
        "models.py",
        "    weight_scale = 5e-2\n    learning_rate = 1e-3\n",
        "    weight_scale = 1e-3\n    learning_rate = 1e-3\n",
        "I kept a tiny weight scale; the signal vanishes before the output.",
    ),
    Mutant(
        "five_layer_overfit_learning_rate_too_small",
        "models.py",
        "    weight_scale = 1e-1\n    learning_rate = 1e-3\n",
        "    weight_scale = 1e-1\n    learning_rate = 1e-5\n",
        "My learning rate was too small to fit 50 images in 20 epochs.",
    ),
    Mutant(
        "conv_solver_learning_rate_too_small",
        "models.py",
        'optim_config={"learning_rate": 2e-3},',
        'optim_config={"learning_rate": 2e-8},',
        "I picked a learning rate so small that the network barely moves in 60 seconds.",
    ),
]
