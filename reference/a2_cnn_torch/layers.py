"""Layers of fully-connected and convolutional networks, on PyTorch tensors, with hand-written
backward passes.

Every layer is a class with two static methods. `forward` takes the inputs (and the layer's
parameters) and returns a tuple `(out, cache)`; `backward` takes the upstream gradient `dout` and
that `cache` and returns the gradients with respect to the forward pass's inputs, in the same
order. Autograd is not used, except by the provided FastConv and FastMaxPool.

Every layer works on CPU and CUDA tensors alike and keeps the dtype and device it is given:
create new tensors with `dtype=x.dtype, device=x.device` (or `torch.zeros_like(x)`, ...).
A layer may change an input tensor in place only where nothing needs it afterwards: not its
own backward pass (through the cache), and never the parameters (w, b, gamma, beta), which
the model that passes them keeps and trains.

The input x of ReLU, BatchNorm, SpatialBatchNorm, Conv and MaxPool may be a non-contiguous
view (a permuted or transposed tensor), where x.view() fails and x.reshape() works. The x
that Linear and Linear_ReLU get is contiguous.

A backward pass is graded only where its forward pass is right: at the inputs of a backward check
the forward pass's output must equal the reference's, and the gradients must equal both the numeric
gradients of your forward pass and the reference's gradients. Fix a forward pass first.

A backward pass computes its gradients from the cache with the layer's derivatives
(backpropagation), at about the cost of a forward pass. A gradient measured by finite differences
(running the forward pass again for each input element, as the numeric gradient check does) is not
a backward pass: on the large inputs the grader also uses it takes minutes, and fails for its time.
The same holds for the losses' dx and the models' grads.
"""

import torch


class Linear:
    @staticmethod
    def forward(x, w, b):
        """Forward pass of a linear (fully-connected) layer.

        Each of the N examples x[i] of shape (d_1, ..., d_k) is flattened into a vector of
        dimension D = d_1 * ... * d_k and mapped to an output vector of dimension M.

        Inputs:
        - x: Input data, of shape (N, d_1, ..., d_k), contiguous (view and reshape both work)
        - w: Weights, of shape (D, M)
        - b: Biases, of shape (M,)

        Returns a tuple of:
        - out: Output, of shape (N, M)
        - cache: Whatever Linear.backward needs

        Graded by task: linear.forward
        """
        out, cache = None, None
        # BEGIN YOUR CODE
        out = x.reshape(x.shape[0], -1) @ w + b
        cache = (x, w, b)
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of a linear layer.

        Inputs:
        - dout: Upstream gradient, of shape (N, M)
        - cache: The cache returned by Linear.forward

        Returns a tuple of:
        - dx: Gradient with respect to x, of shape (N, d_1, ..., d_k)
        - dw: Gradient with respect to w, of shape (D, M)
        - db: Gradient with respect to b, of shape (M,)

        Graded by task: linear.backward
        """
        dx, dw, db = None, None, None
        # BEGIN YOUR CODE
        x, w, b = cache
        dx = (dout @ w.t()).reshape(x.shape)
        dw = x.reshape(x.shape[0], -1).t() @ dout
        db = dout.sum(dim=0)
        # END YOUR CODE
        return dx, dw, db


class ReLU:
    @staticmethod
    def forward(x):
        """Forward pass of a rectified linear unit, max(0, x) element-wise.

        Input:
        - x: Inputs, of any shape

        Returns a tuple of:
        - out: Output, of the same shape as x
        - cache: Whatever ReLU.backward needs

        Graded by task: relu.forward
        """
        out, cache = None, None
        # BEGIN YOUR CODE
        out = x.clamp(min=0)
        cache = x
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of a rectified linear unit.

        Input:
        - dout: Upstream gradient, of any shape
        - cache: The cache returned by ReLU.forward

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


class Linear_ReLU:
    @staticmethod
    def forward(x, w, b):
        """A linear layer followed by a ReLU; build it from Linear and ReLU.

        Inputs:
        - x: Input to the linear layer, of shape (N, d_1, ..., d_k)
        - w, b: Weights (D, M) and biases (M,) of the linear layer

        Returns a tuple of:
        - out: Output of the ReLU, of shape (N, M)
        - cache: Whatever Linear_ReLU.backward needs

        Graded by task: linear_relu.forward
        """
        out, cache = None, None
        # BEGIN YOUR CODE
        a, fc_cache = Linear.forward(x, w, b)
        out, relu_cache = ReLU.forward(a)
        cache = (fc_cache, relu_cache)
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of Linear_ReLU.

        Inputs:
        - dout: Upstream gradient, of shape (N, M)
        - cache: The cache returned by Linear_ReLU.forward

        Returns a tuple of:
        - dx: Gradient with respect to x, of shape (N, d_1, ..., d_k)
        - dw: Gradient with respect to w, of shape (D, M)
        - db: Gradient with respect to b, of shape (M,)

        Graded by task: linear_relu.backward
        """
        dx, dw, db = None, None, None
        # BEGIN YOUR CODE
        fc_cache, relu_cache = cache
        da = ReLU.backward(dout, relu_cache)
        dx, dw, db = Linear.backward(da, fc_cache)
        # END YOUR CODE
        return dx, dw, db


def softmax_loss(x, y):
    """Softmax (cross-entropy) loss, averaged over the minibatch.

    Scores may be huge (1000 and more): the loss and dx stay finite.

    Inputs:
    - x: Class scores, of shape (N, C); x[i, j] is the score of class j for example i
    - y: Labels, an integer tensor of shape (N,); y[i] is the label of x[i], 0 <= y[i] < C

    Returns a tuple of:
    - loss: 0-dimensional tensor of x's dtype and device, the mean over the N examples of
      -log(softmax(x[i])[y[i]])
    - dx: Gradient of the loss with respect to x, of shape (N, C)

    Graded by tasks: softmax_loss.loss, softmax_loss.gradient
    """
    loss, dx = None, None
    # BEGIN YOUR CODE
    num_examples = x.shape[0]
    shifted = x - x.max(dim=1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    rows = torch.arange(num_examples, device=x.device)
    loss = -log_probs[rows, y].mean()
    dx = log_probs.exp()
    dx[rows, y] -= 1
    dx /= num_examples
    # END YOUR CODE
    return loss, dx


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the minibatch.

    Inputs:
    - x: Class scores, of shape (N, C); x[i, j] is the score of class j for example i
    - y: Labels, an integer tensor of shape (N,); y[i] is the label of x[i], 0 <= y[i] < C

    Returns a tuple of:
    - loss: 0-dimensional tensor of x's dtype and device, the mean over i of the sum over
      j != y[i] of max(0, x[i, j] - x[i, y[i]] + 1)
    - dx: Gradient of the loss with respect to x, of shape (N, C)

    Graded by tasks: svm_loss.loss, svm_loss.gradient
    """
    loss, dx = None, None
    # BEGIN YOUR CODE
    num_examples = x.shape[0]
    rows = torch.arange(num_examples, device=x.device)
    correct = x[rows, y][:, None]  # (N, 1)
    margins = (x - correct + 1).clamp(min=0)
    margins[rows, y] = 0
    loss = margins.sum() / num_examples
    positive = (margins > 0).to(x.dtype)
    positive[rows, y] = -positive.sum(dim=1)
    dx = positive / num_examples
    # END YOUR CODE
    return loss, dx


class Dropout:
    @staticmethod
    def forward(x, dropout_param):
        """Forward pass of (inverted) dropout.

        In training mode each unit is dropped (set to zero) with probability p, and the units
        that are kept are scaled by 1 / (1 - p), so that the expected output equals the input
        and test mode is the identity.

        Inputs:
        - x: Input data, of any shape
        - dropout_param: A dictionary with the keys:
          - p: Probability of DROPPING each unit, 0 <= p < 1
          - mode: 'train' or 'test'
          - seed (optional): Seed for torch's random generator, for reproducible masks

        Returns a tuple of:
        - out: Output, of the same shape, dtype and device as x
        - cache: Whatever Dropout.backward needs

        Graded by task: dropout.forward
        """
        p, mode = dropout_param["p"], dropout_param["mode"]
        if "seed" in dropout_param:
            torch.manual_seed(dropout_param["seed"])

        mask, out = None, None
        # BEGIN YOUR CODE
        if mode == "train":
            keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= p
            mask = keep.to(x.dtype) / (1 - p)
            out = x * mask
        elif mode == "test":
            out = x.clone()
        else:
            raise ValueError(f"Invalid dropout mode {mode!r}")
        # END YOUR CODE
        cache = (dropout_param, mask)
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of (inverted) dropout.

        Inputs:
        - dout: Upstream gradient, of any shape
        - cache: The cache (dropout_param, mask) returned by Dropout.forward

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
            dx = dout.clone()
        # END YOUR CODE
        return dx


class BatchNorm:
    @staticmethod
    def forward(x, gamma, beta, bn_param):
        """Forward pass of batch normalization.

        In training mode each feature is normalized with the minibatch mean and the biased
        (divide by N) minibatch variance, then scaled by gamma and shifted by beta.
        Exponential running averages of the mean and variance are kept for test mode:

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
          - running_mean: Tensor of shape (D,), the running mean (zeros when absent)
          - running_var: Tensor of shape (D,), the running variance (zeros when absent)
          The updated running averages are written back into bn_param: update running_mean
          and running_var (new tensors, or the old ones in place), or store new ones in
          bn_param.

        Returns a tuple of:
        - out: Output, of shape (N, D)
        - cache: Whatever BatchNorm.backward and BatchNorm.backward_alt need

        Graded by task: batchnorm.forward
        """
        mode = bn_param["mode"]
        eps = bn_param.get("eps", 1e-5)
        momentum = bn_param.get("momentum", 0.9)
        N, D = x.shape
        # Zeros made only when missing: a default of get() would be made at every call.
        running_mean = bn_param.get("running_mean")
        if running_mean is None:
            running_mean = torch.zeros(D, dtype=x.dtype, device=x.device)
        running_var = bn_param.get("running_var")
        if running_var is None:
            running_var = torch.zeros(D, dtype=x.dtype, device=x.device)

        stored_mean, stored_var = bn_param.get("running_mean"), bn_param.get("running_var")

        out, cache = None, None
        # BEGIN YOUR CODE
        if mode == "train":
            mean = x.mean(dim=0)
            var = ((x - mean) ** 2).mean(dim=0)
            inv_std = 1 / torch.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            out = gamma * x_hat + beta
            cache = (x_hat, gamma, inv_std)
            running_mean = momentum * running_mean + (1 - momentum) * mean
            running_var = momentum * running_var + (1 - momentum) * var
        elif mode == "test":
            x_hat = (x - running_mean) / torch.sqrt(running_var + eps)
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

    @staticmethod
    def backward(dout, cache):
        """Backward pass of batch normalization (training mode), through the computational
        graph of the forward pass step by step.

        Inputs:
        - dout: Upstream gradient, of shape (N, D)
        - cache: The cache returned by BatchNorm.forward

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
        dbeta = dout.sum(dim=0)
        dgamma = (dout * x_hat).sum(dim=0)
        dx_hat = dout * gamma
        centered = x_hat / inv_std  # x - mean, (N, D)
        # x_hat = centered * inv_std, inv_std = (var + eps) ** -0.5, var = mean(centered ** 2)
        dinv_std = (dx_hat * centered).sum(dim=0)
        dvar = -0.5 * inv_std**3 * dinv_std
        dcentered = dx_hat * inv_std + dvar * 2 * centered / N
        # centered = x - mean, mean = mean(x)
        dx = dcentered - dcentered.mean(dim=0)
        # END YOUR CODE
        return dx, dgamma, dbeta

    @staticmethod
    def backward_alt(dout, cache):
        """Backward pass of batch normalization (training mode), as one simplified expression.

        Work out the gradient with respect to x on paper and write it without the
        intermediate steps of BatchNorm.backward; the results are the same.

        Inputs and outputs as BatchNorm.backward.

        Graded by task: batchnorm.backward_alt
        """
        dx, dgamma, dbeta = None, None, None
        # BEGIN YOUR CODE
        x_hat, gamma, inv_std = cache
        N = dout.shape[0]
        dbeta = dout.sum(dim=0)
        dgamma = (dout * x_hat).sum(dim=0)
        dx = gamma * inv_std * (dout - dbeta / N - x_hat * dgamma / N)
        # END YOUR CODE
        return dx, dgamma, dbeta


class SpatialBatchNorm:
    @staticmethod
    def forward(x, gamma, beta, bn_param):
        """Forward pass of spatial batch normalization.

        Each channel is normalized with statistics over the batch and both spatial
        dimensions, that is over N * H * W values; otherwise as BatchNorm.forward, which
        you can reuse.

        Inputs:
        - x: Input data, of shape (N, C, H, W)
        - gamma: Scale, of shape (C,)
        - beta: Shift, of shape (C,)
        - bn_param: A dictionary with the keys of BatchNorm.forward (mode, eps, momentum,
          running_mean and running_var of shape (C,)); the running averages are written back.

        Returns a tuple of:
        - out: Output, of shape (N, C, H, W)
        - cache: Whatever SpatialBatchNorm.backward needs

        Graded by task: spatial_batchnorm.forward
        """
        out, cache = None, None
        # BEGIN YOUR CODE
        N, C, H, W = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(-1, C)  # (N * H * W, C)
        out_rows, cache = BatchNorm.forward(rows, gamma, beta, bn_param)
        out = out_rows.reshape(N, H, W, C).permute(0, 3, 1, 2)
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of spatial batch normalization.

        Inputs:
        - dout: Upstream gradient, of shape (N, C, H, W)
        - cache: The cache returned by SpatialBatchNorm.forward

        Returns a tuple of:
        - dx: Gradient with respect to x, of shape (N, C, H, W)
        - dgamma: Gradient with respect to gamma, of shape (C,)
        - dbeta: Gradient with respect to beta, of shape (C,)

        Graded by task: spatial_batchnorm.backward
        """
        dx, dgamma, dbeta = None, None, None
        # BEGIN YOUR CODE
        N, C, H, W = dout.shape
        drows = dout.permute(0, 2, 3, 1).reshape(-1, C)  # (N * H * W, C)
        dx_rows, dgamma, dbeta = BatchNorm.backward(drows, cache)
        dx = dx_rows.reshape(N, H, W, C).permute(0, 3, 1, 2)
        # END YOUR CODE
        return dx, dgamma, dbeta


class Conv:
    @staticmethod
    def forward(x, w, b, conv_param):
        """Forward pass of a convolutional layer (cross-correlation, as in every DL library),
        written with explicit loops.

        The input has N examples of C channels, height H and width W; it is convolved with F
        filters spanning all C channels, of height HH and width WW. Images and filters need
        not be square.

        Inputs:
        - x: Input data, of shape (N, C, H, W)
        - w: Filter weights, of shape (F, C, HH, WW)
        - b: Biases, of shape (F,)
        - conv_param: A dictionary with the keys:
          - stride: Distance in pixels between neighbouring receptive fields, both directions
          - pad: Number of pixels of zeros added on every side of the input, 0 for none
            (pad the input as a new tensor)

        Returns a tuple of:
        - out: Output, of shape (N, F, H', W') where
          H' = 1 + (H + 2 * pad - HH) // stride
          W' = 1 + (W + 2 * pad - WW) // stride
        - cache: Whatever Conv.backward needs

        Graded by task: conv.forward
        """
        stride, pad = conv_param["stride"], conv_param["pad"]

        out, cache = None, None
        # BEGIN YOUR CODE
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        out_h = 1 + (H + 2 * pad - HH) // stride
        out_w = 1 + (W + 2 * pad - WW) // stride
        x_pad = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        w_rows = w.reshape(F, -1)  # (F, C * HH * WW)
        out = torch.empty((N, F, out_h, out_w), dtype=x.dtype, device=x.device)
        for i in range(out_h):
            for j in range(out_w):
                window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
                out[:, :, i, j] = window.reshape(N, -1) @ w_rows.t() + b
        cache = (x, w, b, conv_param)
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of a convolutional layer.

        Inputs:
        - dout: Upstream gradient, of shape (N, F, H', W')
        - cache: The cache returned by Conv.forward

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
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        _, _, out_h, out_w = dout.shape
        x_pad = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dx_pad = torch.zeros_like(x_pad)
        w_rows = w.reshape(F, -1)  # (F, C * HH * WW)
        dw_rows = torch.zeros_like(w_rows)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + HH)
                cols = slice(j * stride, j * stride + WW)
                d = dout[:, :, i, j]  # (N, F)
                dw_rows += d.t() @ x_pad[:, :, rows, cols].reshape(N, -1)
                dx_pad[:, :, rows, cols] += (d @ w_rows).reshape(N, C, HH, WW)
        dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
        dw = dw_rows.reshape(w.shape)
        db = dout.sum(dim=(0, 2, 3))
        # END YOUR CODE
        return dx, dw, db


class MaxPool:
    @staticmethod
    def forward(x, pool_param):
        """Forward pass of a max-pooling layer, written with explicit loops.

        Windows of pool_height x pool_width pixels are taken every `stride` pixels; when
        stride is smaller than the window, neighbouring windows overlap. No padding.

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
        - cache: Whatever MaxPool.backward needs

        Graded by task: max_pool.forward
        """
        pool_height, pool_width = pool_param["pool_height"], pool_param["pool_width"]
        stride = pool_param["stride"]

        out, cache = None, None
        # BEGIN YOUR CODE
        N, C, H, W = x.shape
        out_h = 1 + (H - pool_height) // stride
        out_w = 1 + (W - pool_width) // stride
        out = torch.empty((N, C, out_h, out_w), dtype=x.dtype, device=x.device)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + pool_height)
                cols = slice(j * stride, j * stride + pool_width)
                out[:, :, i, j] = x[:, :, rows, cols].amax(dim=(2, 3))
        cache = (x, pool_param)
        # END YOUR CODE
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Backward pass of a max-pooling layer.

        Each window's upstream gradient goes to ONE element of the window: its maximum. Where
        several elements tie for the maximum, any one of them may take it (the first or the
        last, say), never all of them. Where windows overlap (stride smaller than the window),
        the gradients they route to the same element add up.

        Inputs:
        - dout: Upstream gradient, of shape (N, C, H', W')
        - cache: The cache returned by MaxPool.forward

        Returns:
        - dx: Gradient with respect to x, of shape (N, C, H, W)

        Graded by task: max_pool.backward
        """
        dx = None
        # BEGIN YOUR CODE
        x, pool_param = cache
        pool_height, pool_width = pool_param["pool_height"], pool_param["pool_width"]
        stride = pool_param["stride"]
        N, C, H, W = x.shape
        _, _, out_h, out_w = dout.shape
        dx = torch.zeros_like(x)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + pool_height)
                cols = slice(j * stride, j * stride + pool_width)
                flat = x[:, :, rows, cols].reshape(N, C, -1)  # (N, C, pool_height * pool_width)
                first_max = flat.argmax(dim=2, keepdim=True)  # (N, C, 1)
                routed = torch.zeros_like(flat)
                routed.scatter_(2, first_max, dout[:, :, i, j].unsqueeze(2))
                dx[:, :, rows, cols] += routed.reshape(N, C, pool_height, pool_width)
        # END YOUR CODE
        return dx


class RecordedGraph:
    """Provided: what a fast layer's backward pass needs of its forward pass, the tensors autograd
    differentiates with respect to and the output it recorded from them.

    An object rather than a tuple of tensors: a copy of the tensors (the grader's copy of a cache
    made of plain values) would keep their values but lose the graph between them.
    """

    def __init__(self, inputs, out):
        self.inputs = inputs
        self.out = out

    def gradients(self, dout):
        """The gradients of out along dout with respect to each of the inputs."""
        if dout.shape != self.out.shape:
            raise ValueError(f"dout has shape {tuple(dout.shape)}, the output {tuple(self.out.shape)}")
        # The gradients of sum(out * dout) are those of out along dout, bit for bit; asked this way,
        # autograd skips the checks of a given output gradient (and their imports: 0.3 s at first use).
        with torch.enable_grad():
            along = (self.out * dout).sum()
        return torch.autograd.grad(along, self.inputs, retain_graph=True)


class FastConv:
    """Provided: a fast convolution (torch.nn.functional.conv2d) with the interface of Conv.

    The forward pass convolves detached copies of x, w and b that require gradients and keeps the
    autograd graph in the cache; the backward pass asks autograd for the gradients.
    Same shapes, dtype and device as Conv.
    """

    @staticmethod
    def forward(x, w, b, conv_param):
        stride, pad = conv_param["stride"], conv_param["pad"]
        # Functional, not a torch.nn.Conv2d module: nothing to initialize (no draw from torch's
        # random generator, which would change every later random number) and less work per call.
        tx, tw, tb = (v.detach().requires_grad_() for v in (x, w, b))
        with torch.enable_grad():  # the graph is needed in backward even under torch.no_grad()
            out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
        cache = (x, w, b, conv_param, RecordedGraph((tx, tw, tb), out))
        return out.detach(), cache

    @staticmethod
    def backward(dout, cache):
        x, w, b, conv_param, graph = cache
        dx, dw, db = graph.gradients(dout)
        return dx, dw, db


class FastMaxPool:
    """Provided: a fast max pooling (torch.nn.functional.max_pool2d) with the interface of MaxPool.

    Routes each window's gradient to one maximum of the window, as MaxPool does.
    """

    @staticmethod
    def forward(x, pool_param):
        pool_height, pool_width = pool_param["pool_height"], pool_param["pool_width"]
        stride = pool_param["stride"]
        tx = x.detach().requires_grad_()
        with torch.enable_grad():
            out = torch.nn.functional.max_pool2d(tx, kernel_size=(pool_height, pool_width), stride=stride)
        cache = (x, pool_param, RecordedGraph((tx,), out))
        return out.detach(), cache

    @staticmethod
    def backward(dout, cache):
        x, pool_param, graph = cache
        (dx,) = graph.gradients(dout)
        return dx


class Conv_ReLU:
    """Provided: FastConv followed by ReLU."""

    @staticmethod
    def forward(x, w, b, conv_param):
        """Inputs as Conv.forward; returns (out, cache) with out of shape (N, F, H', W')."""
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        out, relu_cache = ReLU.forward(a)
        cache = (conv_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Returns (dx, dw, db)."""
        conv_cache, relu_cache = cache
        da = ReLU.backward(dout, relu_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db


class Conv_ReLU_Pool:
    """Provided: FastConv, ReLU, then FastMaxPool."""

    @staticmethod
    def forward(x, w, b, conv_param, pool_param):
        """Inputs as Conv.forward plus MaxPool.forward's pool_param; returns (out, cache)."""
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        s, relu_cache = ReLU.forward(a)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Returns (dx, dw, db)."""
        conv_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        da = ReLU.backward(ds, relu_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db


class Conv_BatchNorm_ReLU:
    """Provided: FastConv, SpatialBatchNorm, then ReLU."""

    @staticmethod
    def forward(x, w, b, gamma, beta, conv_param, bn_param):
        """Inputs as Conv.forward and SpatialBatchNorm.forward; returns (out, cache), out
        contiguous (so that Linear can take it)."""
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        an = an.contiguous()  # SpatialBatchNorm may return a permuted view
        out, relu_cache = ReLU.forward(an)
        cache = (conv_cache, bn_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache = cache
        dan = ReLU.backward(dout, relu_cache)
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db, dgamma, dbeta


class Conv_BatchNorm_ReLU_Pool:
    """Provided: FastConv, SpatialBatchNorm, ReLU, then FastMaxPool."""

    @staticmethod
    def forward(x, w, b, gamma, beta, conv_param, bn_param, pool_param):
        """Inputs as Conv_BatchNorm_ReLU.forward plus pool_param; returns (out, cache), out
        contiguous."""
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        an = an.contiguous()  # pooling keeps a permuted layout, which Linear.view cannot flatten
        s, relu_cache = ReLU.forward(an)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, bn_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout, cache):
        """Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        dan = ReLU.backward(ds, relu_cache)
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db, dgamma, dbeta
