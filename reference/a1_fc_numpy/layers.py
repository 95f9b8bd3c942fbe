"""Layers of a fully-connected and convolutional network, written with NumPy.

Every layer is a pair of functions. `*_forward` takes the inputs (and the layer's parameters)
and returns a tuple `(out, cache)`; `*_backward` takes the upstream gradient `dout` and that
`cache` and returns the gradients with respect to the forward pass's inputs, in the same order.
Changing an input array in place is allowed where it breaks nothing: the parameters (w, b,
gamma, beta) belong to the caller, a model that keeps them, and must come back unchanged; x may
be changed so long as the backward pass still gets what it needs from the cache; dout may be
changed (no caller uses it again).

A backward pass is graded only where its forward pass is right: at the inputs of a backward check
the forward pass's output must equal the reference's, and the gradients must equal both the numeric
gradients of your forward pass and the reference's gradients. Fix a forward pass first.

A backward pass computes its gradients from the cache with the layer's derivatives
(backpropagation), at about the cost of a forward pass. A gradient measured by finite differences
(running the forward pass again for each input element, as the numeric gradient check does) is not
a backward pass: on the large inputs the grader also uses it takes minutes, and fails for its time.
The same holds for the losses' dx and the models' grads.
"""

import numpy as np


def affine_forward(x, w, b):
    """Forward pass of an affine (fully-connected) layer.

    Each of the N examples x[i] of shape (d_1, ..., d_k) is flattened into a vector of
    dimension D = d_1 * ... * d_k and mapped to an output vector of dimension M.

    Inputs:
    - x: Input data, of shape (N, d_1, ..., d_k)
    - w: Weights, of shape (D, M)
    - b: Biases, of shape (M,)

    Returns a tuple of:
    - out: Output, of shape (N, M)
    - cache: Whatever affine_backward needs

    Graded by task: affine.forward
    """
    out, cache = None, None
    # BEGIN YOUR CODE
    out = x.reshape(x.shape[0], -1) @ w + b
    cache = (x, w, b)
    # END YOUR CODE
    return out, cache


def affine_backward(dout, cache):
    """Backward pass of an affine layer.

    Inputs:
    - dout: Upstream gradient, of shape (N, M)
    - cache: The cache returned by affine_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, d_1, ..., d_k)
    - dw: Gradient with respect to w, of shape (D, M)
    - db: Gradient with respect to b, of shape (M,)

    Graded by task: affine.backward
    """
    dx, dw, db = None, None, None
    # BEGIN YOUR CODE
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    # END YOUR CODE
    return dx, dw, db


def relu_forward(x):
    """Forward pass of a rectified linear unit, max(0, x) element-wise.

    Input:
    - x: Inputs, of any shape

    Returns a tuple of:
    - out: Output, of the same shape as x
    - cache: Whatever relu_backward needs

    Graded by task: relu.forward
    """
    out, cache = None, None
    # BEGIN YOUR CODE
    out = np.maximum(x, 0)
    cache = x
    # END YOUR CODE
    return out, cache


def relu_backward(dout, cache):
    """Backward pass of a rectified linear unit.

    Input:
    - dout: Upstream gradient, of any shape
    - cache: The cache returned by relu_forward

    Returns:
    - dx: Gradient with respect to x, of the same shape as dout

    Graded by task: relu.backward
    """
    dx = None
    # BEGIN YOUR CODE
    x = cache
    dx = dout * (x > 0)
    # END YOUR CODE
    return dx


def sigmoid_forward(x):
    """Forward pass of the logistic sigmoid, 1 / (1 + exp(-x)) element-wise.

    Input:
    - x: Inputs, of any shape

    Returns a tuple of:
    - out: Output, of the same shape as x, with values in [0, 1]
    - cache: Whatever sigmoid_backward needs

    Inputs may be large (|x| up to about 1000): out must stay finite there.

    Graded by task: sigmoid.forward
    """
    out, cache = None, None
    # BEGIN YOUR CODE
    # The tanh form is the same function but cannot overflow for large negative x.
    out = 0.5 * (1 + np.tanh(0.5 * x))
    cache = out
    # END YOUR CODE
    return out, cache


def sigmoid_backward(dout, cache):
    """Backward pass of the logistic sigmoid.

    Input:
    - dout: Upstream gradient, of any shape
    - cache: The cache returned by sigmoid_forward

    Returns:
    - dx: Gradient with respect to x, of the same shape as dout

    Graded by task: sigmoid.backward
    """
    dx = None
    # BEGIN YOUR CODE
    out = cache
    dx = dout * out * (1 - out)
    # END YOUR CODE
    return dx


def softmax_loss(x, y):
    """Softmax (cross-entropy) loss, averaged over the minibatch.

    Inputs:
    - x: Class scores, of shape (N, C); x[i, j] is the score of class j for example i
    - y: Labels, of shape (N,); y[i] is the label of x[i], 0 <= y[i] < C

    Returns a tuple of:
    - loss: Scalar, the mean over the N examples of -log(softmax(x[i])[y[i]])
    - dx: Gradient of the loss with respect to x, of shape (N, C)

    Scores may be large (|x| up to about 1000): loss and dx must stay finite there.

    Graded by tasks: softmax_loss.loss, softmax_loss.gradient
    """
    loss, dx = None, None
    # BEGIN YOUR CODE
    num_examples = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(num_examples)
    loss = -log_probs[rows, y].mean()
    dx = np.exp(log_probs)
    dx[rows, y] -= 1
    dx /= num_examples
    # END YOUR CODE
    return loss, dx


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the minibatch.

    Inputs:
    - x: Class scores, of shape (N, C); x[i, j] is the score of class j for example i
    - y: Labels, of shape (N,); y[i] is the label of x[i], 0 <= y[i] < C

    Returns a tuple of:
    - loss: Scalar, the mean over i of sum over j != y[i] of max(0, x[i, j] - x[i, y[i]] + 1)
    - dx: Gradient of the loss with respect to x, of shape (N, C)

    Graded by tasks: svm_loss.loss, svm_loss.gradient
    """
    loss, dx = None, None
    # BEGIN YOUR CODE
    num_examples = x.shape[0]
    rows = np.arange(num_examples)
    correct = x[rows, y][:, None]  # (N, 1)
    margins = np.maximum(0, x - correct + 1)
    margins[rows, y] = 0
    loss = margins.sum() / num_examples
    positive = (margins > 0).astype(x.dtype)
    positive[rows, y] = -positive.sum(axis=1)
    dx = positive / num_examples
    # END YOUR CODE
    return loss, dx


def dropout_forward(x, dropout_param):
    """Forward pass of (inverted) dropout.

    In training mode each unit is kept with probability p and the kept units are scaled by
    1 / p, so that the expected output equals the input and test mode is the identity.

    Inputs:
    - x: Input data, of any shape
    - dropout_param: A dictionary with the keys:
      - p: Probability of KEEPING each unit
      - mode: 'train' or 'test'
      - seed (optional): Seed for NumPy's global random generator, for reproducible masks

    Returns a tuple of:
    - out: Output, of the same shape and dtype as x
    - cache: Whatever dropout_backward needs

    Graded by task: dropout.forward
    """
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])

    mask, out = None, None
    # BEGIN YOUR CODE
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    elif mode == "test":
        out = x.copy()
    else:
        raise ValueError(f"Invalid dropout mode {mode!r}")
    # END YOUR CODE
    cache = (dropout_param, mask)
    out = out.astype(x.dtype, copy=False)
    return out, cache


def dropout_backward(dout, cache):
    """Backward pass of (inverted) dropout.

    Inputs:
    - dout: Upstream gradient, of any shape
    - cache: The cache (dropout_param, mask) returned by dropout_forward

    Returns:
    - dx: Gradient with respect to x, of the same shape as dout

    Graded by task: dropout.backward
    """
    dropout_param, mask = cache
    mode = dropout_param["mode"]

    dx = None
    # BEGIN YOUR CODE
    if mode == "train":
        dx = dout * mask
    else:
        dx = dout.copy()
    # END YOUR CODE
    return dx


def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of batch normalization.

    In training mode each feature is normalized with the minibatch mean and the biased
    (divide by N) minibatch variance, then scaled by gamma and shifted by beta. Exponential
    running averages of the mean and variance are kept for test mode:

        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var

    In test mode the features are normalized with the running averages instead.

    Inputs:
    - x: Data, of shape (N, D)
    - gamma: Scale, of shape (D,)
    - beta: Shift, of shape (D,)
    - bn_param: A dictionary with the keys:
      - mode: 'train' or 'test' (required)
      - eps: Constant added to the variance for numeric stability (default 1e-5)
      - momentum: Constant of the running averages (default 0.9)
      - running_mean: Array of shape (D,), the running mean (zeros when absent)
      - running_var: Array of shape (D,), the running variance (zeros when absent)
      The updated running averages are written back into bn_param: update running_mean and
      running_var (new arrays, or the old ones in place), or store new ones in bn_param.

    Returns a tuple of:
    - out: Output, of shape (N, D)
    - cache: Whatever batchnorm_backward and batchnorm_backward_alt need

    Graded by task: batchnorm.forward
    """
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    stored_mean, stored_var = bn_param.get("running_mean"), bn_param.get("running_var")

    out, cache = None, None
    # BEGIN YOUR CODE
    if mode == "train":
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1 / np.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        out = gamma * x_hat + beta
        cache = (x_hat, gamma, inv_std)
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
    elif mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * x_hat + beta
    else:
        raise ValueError(f"Invalid batchnorm mode {mode!r}")
    # END YOUR CODE
    # The running averages go back into bn_param, unless your code stored new ones there itself.
    if bn_param.get("running_mean") is stored_mean:
        bn_param["running_mean"] = running_mean
    if bn_param.get("running_var") is stored_var:
        bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout, cache):
    """Backward pass of batch normalization (training mode), step by step through the graph.

    Inputs:
    - dout: Upstream gradient, of shape (N, D)
    - cache: The cache returned by batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, D)
    - dgamma: Gradient with respect to gamma, of shape (D,)
    - dbeta: Gradient with respect to beta, of shape (D,)

    Graded by task: batchnorm.backward
    """
    dx, dgamma, dbeta = None, None, None
    # BEGIN YOUR CODE
    x_hat, gamma, inv_std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    centered = x_hat / inv_std  # x - mean, (N, D)
    # x_hat = centered * inv_std, inv_std = (var + eps) ** -0.5, var = mean(centered ** 2)
    dinv_std = (dx_hat * centered).sum(axis=0)
    dvar = -0.5 * inv_std**3 * dinv_std
    dcentered = dx_hat * inv_std + dvar * 2 * centered / N
    # centered = x - mean, mean = mean(x)
    dx = dcentered - dcentered.mean(axis=0)
    # END YOUR CODE
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Backward pass of batch normalization (training mode), as one simplified expression.

    Same inputs and outputs as batchnorm_backward, and the same result up to rounding.

    Inputs:
    - dout: Upstream gradient, of shape (N, D)
    - cache: The cache returned by batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, D)
    - dgamma: Gradient with respect to gamma, of shape (D,)
    - dbeta: Gradient with respect to beta, of shape (D,)

    Graded by task: batchnorm.backward_alt
    """
    dx, dgamma, dbeta = None, None, None
    # BEGIN YOUR CODE
    x_hat, gamma, inv_std = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dbeta / dout.shape[0] - x_hat * dgamma / dout.shape[0])
    # END YOUR CODE
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Forward pass of layer normalization.

    Each example (row of x) is normalized with its own mean and biased variance over its D
    features, then scaled by gamma and shifted by beta. Training and test mode are the same,
    so no running averages are kept.

    Inputs:
    - x: Data, of shape (N, D)
    - gamma: Scale, of shape (D,)
    - beta: Shift, of shape (D,)
    - ln_param: A dictionary with the key:
      - eps: Constant added to the variance for numeric stability (default 1e-5)

    Returns a tuple of:
    - out: Output, of shape (N, D)
    - cache: Whatever layernorm_backward needs

    Graded by task: layernorm.forward
    """
    eps = ln_param.get("eps", 1e-5)

    out, cache = None, None
    # BEGIN YOUR CODE
    mean = x.mean(axis=1, keepdims=True)  # (N, 1)
    inv_std = 1 / np.sqrt(x.var(axis=1, keepdims=True) + eps)  # (N, 1)
    x_hat = (x - mean) * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    # END YOUR CODE
    return out, cache


def layernorm_backward(dout, cache):
    """Backward pass of layer normalization.

    Inputs:
    - dout: Upstream gradient, of shape (N, D)
    - cache: The cache returned by layernorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, D)
    - dgamma: Gradient with respect to gamma, of shape (D,)
    - dbeta: Gradient with respect to beta, of shape (D,)

    Graded by task: layernorm.backward
    """
    dx, dgamma, dbeta = None, None, None
    # BEGIN YOUR CODE
    x_hat, gamma, inv_std = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std * (
        dx_hat
        - dx_hat.mean(axis=1, keepdims=True)
        - x_hat * (dx_hat * x_hat).mean(axis=1, keepdims=True)
    )
    # END YOUR CODE
    return dx, dgamma, dbeta


def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer (cross-correlation, as in every DL library).

    The input has N examples of C channels, height H and width W; it is convolved with F
    filters spanning all C channels, of height HH and width WW. Images and filters need not
    be square.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - w: Filter weights, of shape (F, C, HH, WW)
    - b: Biases, of shape (F,)
    - conv_param: A dictionary with the keys:
      - stride: Distance in pixels between neighbouring receptive fields, both directions
      - pad: Number of pixels of zeros added on every side of the input

    Returns a tuple of:
    - out: Output, of shape (N, F, H', W') where
      H' = 1 + (H + 2 * pad - HH) // stride
      W' = 1 + (W + 2 * pad - WW) // stride
    - cache: Whatever conv_backward_naive needs

    Graded by task: conv.forward
    """
    stride, pad = conv_param["stride"], conv_param["pad"]

    out, cache = None, None
    # BEGIN YOUR CODE
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    out_h = 1 + (H + 2 * pad - HH) // stride
    out_w = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, out_h, out_w), dtype=np.result_type(x, w, b))
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, conv_param)
    # END YOUR CODE
    return out, cache


def conv_backward_naive(dout, cache):
    """Backward pass of a convolutional layer.

    Inputs:
    - dout: Upstream gradient, of shape (N, F, H', W')
    - cache: The cache returned by conv_forward_naive

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dw: Gradient with respect to w, of shape (F, C, HH, WW)
    - db: Gradient with respect to b, of shape (F,)

    Graded by task: conv.backward
    """
    dx, dw, db = None, None, None
    # BEGIN YOUR CODE
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    H, W = x.shape[2:]
    HH, WW = w.shape[2:]
    out_h, out_w = dout.shape[2:]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + HH)
            cols = slice(j * stride, j * stride + WW)
            d = dout[:, :, i, j]  # (N, F)
            dx_pad[:, :, rows, cols] += np.tensordot(d, w, axes=(1, 0))
            dw += np.tensordot(d, x_pad[:, :, rows, cols], axes=(0, 0))
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    db = dout.sum(axis=(0, 2, 3))
    # END YOUR CODE
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    """Forward pass of a max-pooling layer.

    Windows of pool_height x pool_width pixels are taken every `stride` pixels; when stride is
    smaller than the window, neighbouring windows overlap. No padding.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - pool_param: A dictionary with the keys:
      - pool_height: Height of each pooling window
      - pool_width: Width of each pooling window
      - stride: Distance between neighbouring pooling windows, both directions

    Returns a tuple of:
    - out: Output, of shape (N, C, H', W') where
      H' = 1 + (H - pool_height) // stride
      W' = 1 + (W - pool_width) // stride
    - cache: Whatever max_pool_backward_naive needs

    Graded by task: max_pool.forward
    """
    pool_height, pool_width = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]

    out, cache = None, None
    # BEGIN YOUR CODE
    N, C, H, W = x.shape
    out_h = 1 + (H - pool_height) // stride
    out_w = 1 + (W - pool_width) // stride
    out = np.empty((N, C, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + pool_height)
            cols = slice(j * stride, j * stride + pool_width)
            out[:, :, i, j] = x[:, :, rows, cols].max(axis=(2, 3))
    cache = (x, pool_param)
    # END YOUR CODE
    return out, cache


def max_pool_backward_naive(dout, cache):
    """Backward pass of a max-pooling layer.

    Each window's upstream gradient goes to the window's maximum. Where several elements tie for
    the maximum, any one of them may get it (the first, as np.argmax picks it, or the last), or
    they may share it, the shares adding up to the window's gradient; not each the whole of it.
    Where windows overlap, the gradients they route to the same element add up.

    Inputs:
    - dout: Upstream gradient, of shape (N, C, H', W')
    - cache: The cache returned by max_pool_forward_naive

    Returns:
    - dx: Gradient with respect to x, of shape (N, C, H, W)

    Graded by task: max_pool.backward
    """
    dx = None
    # BEGIN YOUR CODE
    x, pool_param = cache
    pool_height, pool_width = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C = x.shape[:2]
    out_h, out_w = dout.shape[2:]
    dx = np.zeros_like(x)
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + pool_height)
            cols = slice(j * stride, j * stride + pool_width)
            flat = x[:, :, rows, cols].reshape(N, C, -1)
            first_max = flat.argmax(axis=2)[:, :, None]  # (N, C, 1)
            routed = np.zeros_like(flat)
            np.put_along_axis(routed, first_max, dout[:, :, i, j][:, :, None], axis=2)
            dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)
    # END YOUR CODE
    return dx


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of spatial batch normalization.

    Each channel is normalized with statistics over the batch and both spatial dimensions,
    that is over N * H * W values; otherwise as batchnorm_forward.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - gamma: Scale, of shape (C,)
    - beta: Shift, of shape (C,)
    - bn_param: A dictionary with the keys of batchnorm_forward (mode, eps, momentum,
      running_mean and running_var of shape (C,)); the running averages are written back.

    Returns a tuple of:
    - out: Output, of shape (N, C, H, W)
    - cache: Whatever spatial_batchnorm_backward needs

    Graded by task: spatial_batchnorm.forward
    """
    out, cache = None, None
    # BEGIN YOUR CODE
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)  # (N * H * W, C)
    out_rows, cache = batchnorm_forward(rows, gamma, beta, bn_param)
    out = out_rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    # END YOUR CODE
    return out, cache


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial batch normalization.

    Inputs:
    - dout: Upstream gradient, of shape (N, C, H, W)
    - cache: The cache returned by spatial_batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dgamma: Gradient with respect to gamma, of shape (C,)
    - dbeta: Gradient with respect to beta, of shape (C,)

    Graded by task: spatial_batchnorm.backward
    """
    dx, dgamma, dbeta = None, None, None
    # BEGIN YOUR CODE
    N, C, H, W = dout.shape
    drows = dout.transpose(0, 2, 3, 1).reshape(-1, C)  # (N * H * W, C)
    dx_rows, dgamma, dbeta = batchnorm_backward_alt(drows, cache)
    dx = dx_rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    # END YOUR CODE
    return dx, dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Forward pass of spatial group normalization.

    The C channels of each example are split into G groups of C // G consecutive channels;
    each group is normalized with the mean and biased variance of its (C // G) * H * W
    values, then every channel is scaled by gamma and shifted by beta. Training and test mode
    are the same.

    Inputs:
    - x: Input data, of shape (N, C, H, W)
    - gamma: Scale, of shape (1, C, 1, 1)
    - beta: Shift, of shape (1, C, 1, 1)
    - G: Number of groups, a divisor of C
    - gn_param: A dictionary with the key:
      - eps: Constant added to the variance for numeric stability (default 1e-5)

    Returns a tuple of:
    - out: Output, of shape (N, C, H, W)
    - cache: Whatever spatial_groupnorm_backward needs

    Graded by task: spatial_groupnorm.forward
    """
    eps = gn_param.get("eps", 1e-5)

    out, cache = None, None
    # BEGIN YOUR CODE
    N, C, H, W = x.shape
    groups = x.reshape(N, G, -1)  # (N, G, C // G * H * W)
    mean = groups.mean(axis=2, keepdims=True)
    inv_std = 1 / np.sqrt(groups.var(axis=2, keepdims=True) + eps)  # (N, G, 1)
    x_hat = ((groups - mean) * inv_std).reshape(N, C, H, W)
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std, G)
    # END YOUR CODE
    return out, cache


def spatial_groupnorm_backward(dout, cache):
    """Backward pass of spatial group normalization.

    Inputs:
    - dout: Upstream gradient, of shape (N, C, H, W)
    - cache: The cache returned by spatial_groupnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dgamma: Gradient with respect to gamma, of shape (1, C, 1, 1)
    - dbeta: Gradient with respect to beta, of shape (1, C, 1, 1)

    Graded by task: spatial_groupnorm.backward
    """
    dx, dgamma, dbeta = None, None, None
    # BEGIN YOUR CODE
    x_hat, gamma, inv_std, G = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3), keepdims=True)
    dx_hat = (dout * gamma).reshape(N, G, -1)
    x_hat_groups = x_hat.reshape(N, G, -1)
    dx = inv_std * (
        dx_hat
        - dx_hat.mean(axis=2, keepdims=True)
        - x_hat_groups * (dx_hat * x_hat_groups).mean(axis=2, keepdims=True)
    )
    dx = dx.reshape(dout.shape)
    # END YOUR CODE
    return dx, dgamma, dbeta
