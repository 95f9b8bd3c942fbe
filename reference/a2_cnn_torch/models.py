"""Fully-connected and convolutional networks built from the layers in layers.py, and the
entries that train them.

Every model keeps its learnable parameters in the dictionary self.params (tensors of the
model's dtype and device) and has a method loss(X, y=None): without y it returns class scores
of shape (N, C); with y it returns (loss, grads), where loss is a 0-dimensional tensor and
grads maps every key of self.params to the gradient of the loss. Gradients are graded for the
parameters each model documents, set by their names, and only where the loss agrees with the
reference's for the same parameters.

The L2 regularization of every model is reg * sum(W**2) over its weight tensors (no factor
1/2; biases, gammas and betas are not regularized), so its gradient is 2 * reg * W.
"""

import math

import torch

from . import optim
from .layers import *
from .solver import Solver


def kaiming_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
    """Kaiming (He) initialization: Gaussian weights with mean 0 and variance gain / fan_in.

    gain is 2 for a layer followed by a ReLU and 1 otherwise; fan_in is the number of inputs
    each output sums over: Din for a linear layer, Din * K * K for a convolution.

    Inputs:
    - Din, Dout: Input and output dimension (features of a linear layer, channels of a
      convolution)
    - K: None for a linear layer; the filter size (K x K) of a convolution
    - relu: Whether the layer is followed by a ReLU
    - device, dtype: Device and dtype of the weights

    Returns:
    - weight: Tensor of shape (Din, Dout) for a linear layer, (Dout, Din, K, K) for a
      convolution

    Graded by task: kaiming.initializer
    """
    gain = 2.0 if relu else 1.0

    weight = None
    # BEGIN YOUR CODE
    if K is None:
        std = math.sqrt(gain / Din)
        weight = std * torch.randn(Din, Dout, dtype=dtype, device=device)
    else:
        std = math.sqrt(gain / (Din * K * K))
        weight = std * torch.randn(Dout, Din, K, K, dtype=dtype, device=device)
    # END YOUR CODE
    return weight


class TwoLayerNet:
    """Two-layer fully-connected network: linear - relu - linear - softmax.

    Input of dimension D, a hidden layer of dimension H, classification over C classes.
    Trained with the softmax loss plus L2 regularization reg * (sum(W1**2) + sum(W2**2)).

    Parameters in self.params:
    - W1: First-layer weights, of shape (D, H)
    - b1: First-layer biases, of shape (H,)
    - W2: Second-layer weights, of shape (H, C)
    - b2: Second-layer biases, of shape (C,)
    """

    def __init__(
        self,
        input_dim=3 * 32 * 32,
        hidden_dim=100,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        dtype=torch.float32,
        device="cpu",
    ):
        """Initialize the network.

        Weights are drawn from a Gaussian with mean 0 and standard deviation weight_scale
        (weight_scale * torch.randn(...)); biases are zeros. All parameters have the given
        dtype and device.

        Inputs:
        - input_dim: Integer D, the size of the input
        - hidden_dim: Integer H, the size of the hidden layer
        - num_classes: Integer C, the number of classes
        - weight_scale: Standard deviation of the initial weights
        - reg: Strength of the L2 regularization
        - dtype: torch dtype of the parameters; float32 is faster, float64 is needed for
          numeric gradient checks
        - device: Device of the parameters, e.g. 'cpu' or 'cuda'

        Graded by task: two_layer_net.init
        """
        self.params = {}
        self.reg = reg
        self.dtype = dtype
        self.device = device

        # BEGIN YOUR CODE
        like = {"dtype": dtype, "device": device}
        self.params["W1"] = weight_scale * torch.randn(input_dim, hidden_dim, **like)
        self.params["b1"] = torch.zeros(hidden_dim, **like)
        self.params["W2"] = weight_scale * torch.randn(hidden_dim, num_classes, **like)
        self.params["b2"] = torch.zeros(num_classes, **like)
        # END YOUR CODE

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs:
        - X: Input data, of shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D
        - y: Labels, an integer tensor of shape (N,), y[i] in [0, C); or None

        Returns:
        If y is None:
        - scores: Class scores, of shape (N, C)
        Otherwise a tuple of:
        - loss: 0-dimensional tensor, the softmax loss plus the L2 regularization
        - grads: Dictionary with the keys of self.params; grads[k] is the gradient of the
          loss with respect to self.params[k], of the same shape

        Graded by tasks: two_layer_net.loss, two_layer_net.gradients
        """
        X = X.to(dtype=self.dtype, device=self.device)

        scores = None
        # BEGIN YOUR CODE
        hidden, hidden_cache = Linear_ReLU.forward(X, self.params["W1"], self.params["b1"])
        scores, scores_cache = Linear.forward(hidden, self.params["W2"], self.params["b2"])
        # END YOUR CODE

        if y is None:
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        W1, W2 = self.params["W1"], self.params["W2"]
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum())
        dhidden, dW2, grads["b2"] = Linear.backward(dscores, scores_cache)
        _, dW1, grads["b1"] = Linear_ReLU.backward(dhidden, hidden_cache)
        grads["W1"] = dW1 + 2 * self.reg * W1
        grads["W2"] = dW2 + 2 * self.reg * W2
        # END YOUR CODE
        return loss, grads


class FullyConnectedNet:
    """Fully-connected network with any number of hidden layers:

        {linear - relu - [dropout]} x (L - 1) - linear - softmax

    where dropout is optional and the {...} block is repeated L - 1 times. Trained with the
    softmax loss plus L2 regularization reg * sum of sum(W**2) over the weight matrices.

    Parameters in self.params, for layers i = 1, ..., L:
    - Wi: Weights of layer i, of shape (input size of layer i, output size of layer i)
    - bi: Biases of layer i, of shape (output size of layer i,)
    """

    def __init__(
        self,
        hidden_dims,
        input_dim=3 * 32 * 32,
        num_classes=10,
        dropout=0.0,
        reg=0.0,
        weight_scale=1e-2,
        seed=None,
        dtype=torch.float,
        device="cpu",
    ):
        """Initialize the network.

        Weights are drawn from a Gaussian with mean 0 and standard deviation weight_scale;
        biases are zeros. All parameters have the given dtype and device.

        Inputs:
        - hidden_dims: List of integers, the size of each hidden layer
        - input_dim: Integer, the size of the input
        - num_classes: Integer, the number of classes
        - dropout: Scalar in [0, 1), the probability of DROPPING a unit in the dropout layers;
          0 means no dropout
        - reg: Strength of the L2 regularization
        - weight_scale: Standard deviation of the initial weights
        - seed: If not None, the dropout layers use this seed, so the model is deterministic
        - dtype: torch dtype of all parameters and computations; float32 is faster, float64
          is needed for numeric gradient checks
        - device: Device of the parameters, e.g. 'cpu' or 'cuda'

        Graded by task: fc_net.init
        """
        self.use_dropout = dropout != 0
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.device = device
        self.params = {}

        # BEGIN YOUR CODE
        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(1, self.num_layers + 1):
            self.params[f"W{i}"] = weight_scale * torch.randn(
                dims[i - 1], dims[i], dtype=dtype, device=device
            )
            self.params[f"b{i}"] = torch.zeros(dims[i], dtype=dtype, device=device)
        # END YOUR CODE

        # The dropout layers keep their settings in this dictionary; pass it to Dropout.
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs and outputs as TwoLayerNet.loss. Without y the network runs in test mode (no
        dropout); with y, in training mode.

        Graded by tasks: fc_net.loss, fc_net.gradients, fc_net.dropout
        """
        X = X.to(dtype=self.dtype, device=self.device)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode

        scores = None
        # BEGIN YOUR CODE
        L = self.num_layers
        caches = []
        hidden = X
        for i in range(1, L):
            hidden, cache = Linear_ReLU.forward(hidden, self.params[f"W{i}"], self.params[f"b{i}"])
            dropout_cache = None
            if self.use_dropout:
                hidden, dropout_cache = Dropout.forward(hidden, self.dropout_param)
            caches.append((cache, dropout_cache))
        scores, scores_cache = Linear.forward(hidden, self.params[f"W{L}"], self.params[f"b{L}"])
        # END YOUR CODE

        if mode == "test":
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        loss, dscores = softmax_loss(scores, y)
        dhidden, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dscores, scores_cache)
        for i in range(L - 1, 0, -1):
            cache, dropout_cache = caches[i - 1]
            if self.use_dropout:
                dhidden = Dropout.backward(dhidden, dropout_cache)
            dhidden, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dhidden, cache)
        for i in range(1, L + 1):
            w = self.params[f"W{i}"]
            loss = loss + self.reg * (w * w).sum()
            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * w
        # END YOUR CODE
        return loss, grads


class ThreeLayerConvNet:
    """Three-layer convolutional network:

        conv - relu - 2x2 max pool - linear - relu - linear - softmax

    The filter size is odd, and the convolution keeps the spatial size (stride 1, zero
    padding (filter_size - 1) // 2); the pooling halves it (rounding down). Use the fast
    layers (Conv_ReLU_Pool, FastConv, FastMaxPool) and Linear_ReLU, Linear. Trained with the softmax loss plus L2
    regularization reg * (sum(W1**2) + sum(W2**2) + sum(W3**2)).

    Parameters in self.params:
    - W1: Filters, of shape (F, C, filter_size, filter_size); b1: of shape (F,)
    - W2: Hidden linear layer, of shape (F * H' * W', hidden_dim), H' x W' the pooled size;
      b2: of shape (hidden_dim,)
    - W3: Output linear layer, of shape (hidden_dim, num_classes); b3: of shape (num_classes,)
    """

    def __init__(
        self,
        input_dims=(3, 32, 32),
        num_filters=32,
        filter_size=7,
        hidden_dim=100,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        dtype=torch.float,
        device="cpu",
    ):
        """Initialize the network.

        Weights are drawn from a Gaussian with mean 0 and standard deviation weight_scale;
        biases are zeros. All parameters have the given dtype and device.

        Inputs:
        - input_dims: Tuple (C, H, W), the size of each input image
        - num_filters: Number F of filters of the convolution
        - filter_size: Width and height of the filters, an odd number
        - hidden_dim: Number of units of the hidden linear layer
        - num_classes: Number of classes
        - weight_scale: Standard deviation of the initial weights
        - reg: Strength of the L2 regularization
        - dtype: torch dtype of the parameters
        - device: Device of the parameters

        Graded by task: three_layer_convnet.init
        """
        self.params = {}
        self.reg = reg
        self.dtype = dtype
        self.device = device

        # BEGIN YOUR CODE
        C, H, W = input_dims
        pad = (filter_size - 1) // 2
        conv_h = H + 2 * pad - filter_size + 1
        conv_w = W + 2 * pad - filter_size + 1
        pooled = num_filters * (conv_h // 2) * (conv_w // 2)

        def gaussian(*shape):
            return weight_scale * torch.randn(*shape, dtype=dtype, device=device)

        self.params["W1"] = gaussian(num_filters, C, filter_size, filter_size)
        self.params["b1"] = torch.zeros(num_filters, dtype=dtype, device=device)
        self.params["W2"] = gaussian(pooled, hidden_dim)
        self.params["b2"] = torch.zeros(hidden_dim, dtype=dtype, device=device)
        self.params["W3"] = gaussian(hidden_dim, num_classes)
        self.params["b3"] = torch.zeros(num_classes, dtype=dtype, device=device)
        # END YOUR CODE

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs:
        - X: Images, of shape (N, C, H, W)
        - y: Labels, an integer tensor of shape (N,); or None

        Outputs as TwoLayerNet.loss.

        Graded by tasks: three_layer_convnet.loss, three_layer_convnet.gradients
        """
        X = X.to(dtype=self.dtype, device=self.device)
        filter_size = self.params["W1"].shape[2]
        conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        scores = None
        # BEGIN YOUR CODE
        W1, W2, W3 = self.params["W1"], self.params["W2"], self.params["W3"]
        pooled, pool_cache = Conv_ReLU_Pool.forward(
            X, W1, self.params["b1"], conv_param, pool_param
        )
        hidden, hidden_cache = Linear_ReLU.forward(pooled, W2, self.params["b2"])
        scores, scores_cache = Linear.forward(hidden, W3, self.params["b3"])
        # END YOUR CODE

        if y is None:
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum() + (W3 * W3).sum())
        dhidden, dW3, grads["b3"] = Linear.backward(dscores, scores_cache)
        dpooled, dW2, grads["b2"] = Linear_ReLU.backward(dhidden, hidden_cache)
        _, dW1, grads["b1"] = Conv_ReLU_Pool.backward(dpooled, pool_cache)
        grads["W1"] = dW1 + 2 * self.reg * W1
        grads["W2"] = dW2 + 2 * self.reg * W2
        grads["W3"] = dW3 + 2 * self.reg * W3
        # END YOUR CODE
        return loss, grads


class DeepConvNet:
    """Convolutional network with any number of convolutional layers:

        {conv - [batchnorm] - relu - [pool]} x (L - 1) - linear - softmax

    Every convolution has 3x3 filters, stride 1 and zero padding 1 (it keeps the spatial
    size); batch normalization (spatial) is optional; a 2x2 max pooling with stride 2 follows
    the layers whose index (counting from 0) is in max_pools. Use the fast sandwich layers
    (Conv_ReLU, Conv_ReLU_Pool, Conv_BatchNorm_ReLU, Conv_BatchNorm_ReLU_Pool) and Linear.
    Trained with the softmax loss plus L2 regularization reg * sum of sum(W**2) over all
    weight tensors.

    Parameters in self.params, for convolutional layers i = 1, ..., L - 1 and the output layer L:
    - Wi: Filters of layer i, of shape (num_filters[i - 1], channels in, 3, 3); WL of shape
      (channels * H' * W' of the last convolutional layer's output, num_classes)
    - bi: Biases of layer i
    - gammai, betai: Scale and shift of the batch normalization of convolutional layer i, of
      shape (num_filters[i - 1],); only with batchnorm
    """

    def __init__(
        self,
        input_dims=(3, 32, 32),
        num_filters=[8, 8, 8, 8, 8],
        max_pools=[0, 1, 2, 3, 4],
        batchnorm=False,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        weight_initializer=None,
        dtype=torch.float,
        device="cpu",
    ):
        """Initialize the network.

        With a numeric weight_scale, weights are drawn from a Gaussian with mean 0 and that
        standard deviation; with weight_scale='kaiming' they come from kaiming_initializer
        (relu=True for the convolutions, relu=False for the output layer). Biases are zeros,
        gammas ones and betas zeros. All parameters have the given dtype and device.

        Inputs:
        - input_dims: Tuple (C, H, W), the size of each input image
        - num_filters: List of length L - 1, the number of filters of each convolution
        - max_pools: List of the indices (from 0) of the convolutional layers followed by a
          2x2 max pooling with stride 2
        - batchnorm: Whether every convolution is followed by spatial batch normalization
        - num_classes: Number of classes
        - weight_scale: Standard deviation of the initial weights, or the string 'kaiming'
        - reg: Strength of the L2 regularization
        - weight_initializer: Unused; kept for compatibility with the course's notebooks
        - dtype: torch dtype of the parameters; float32 is faster, float64 is needed for
          numeric gradient checks
        - device: Device of the parameters

        Graded by task: deep_convnet.init
        """
        self.params = {}
        self.num_layers = len(num_filters) + 1
        self.max_pools = max_pools
        self.batchnorm = batchnorm
        self.reg = reg
        self.dtype = dtype
        self.device = device

        # BEGIN YOUR CODE
        channels, H, W = input_dims
        for i, filters in enumerate(num_filters, start=1):
            if weight_scale == "kaiming":
                w = kaiming_initializer(
                    channels, filters, K=3, relu=True, device=device, dtype=dtype
                )
            else:
                w = weight_scale * torch.randn(filters, channels, 3, 3, dtype=dtype, device=device)
            self.params[f"W{i}"] = w
            self.params[f"b{i}"] = torch.zeros(filters, dtype=dtype, device=device)
            if batchnorm:
                self.params[f"gamma{i}"] = torch.ones(filters, dtype=dtype, device=device)
                self.params[f"beta{i}"] = torch.zeros(filters, dtype=dtype, device=device)
            if i - 1 in max_pools:
                H, W = H // 2, W // 2
            channels = filters
        L = self.num_layers
        features = channels * H * W
        if weight_scale == "kaiming":
            w = kaiming_initializer(features, num_classes, relu=False, device=device, dtype=dtype)
        else:
            w = weight_scale * torch.randn(features, num_classes, dtype=dtype, device=device)
        self.params[f"W{L}"] = w
        self.params[f"b{L}"] = torch.zeros(num_classes, dtype=dtype, device=device)
        # END YOUR CODE

        # The batch normalization layers keep their settings and running averages in these
        # dictionaries, one per convolutional layer; pass them to the layers.
        self.bn_params = []
        if self.batchnorm:
            self.bn_params = [{"mode": "train"} for _ in num_filters]

        params_per_layer = 4 if batchnorm else 2
        expected = params_per_layer * len(num_filters) + 2
        if len(self.params) != expected:
            raise ValueError(
                f"DeepConvNet has {len(self.params)} parameter tensors, expected {expected} "
                f"({params_per_layer} per convolutional layer, 2 for the output layer)"
            )
        for name, param in self.params.items():
            if param.dtype != dtype or param.device.type != torch.device(device).type:
                raise ValueError(
                    f'Parameter "{name}" is {param.dtype} on {param.device}; '
                    f"expected {dtype} on {device}"
                )

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs:
        - X: Images, of shape (N, C, H, W)
        - y: Labels, an integer tensor of shape (N,); or None

        Outputs as TwoLayerNet.loss. Without y the network runs in test mode (batch
        normalization with its running averages); with y, in training mode.

        Graded by tasks: deep_convnet.loss, deep_convnet.gradients, deep_convnet.batchnorm
        """
        X = X.to(dtype=self.dtype, device=self.device)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        conv_param = {"stride": 1, "pad": 1}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        scores = None
        # BEGIN YOUR CODE
        L = self.num_layers
        caches = []
        hidden = X
        for i in range(1, L):
            w, b = self.params[f"W{i}"], self.params[f"b{i}"]
            pool = i - 1 in self.max_pools
            if self.batchnorm:
                gamma, beta = self.params[f"gamma{i}"], self.params[f"beta{i}"]
                bn_param = self.bn_params[i - 1]
                if pool:
                    hidden, cache = Conv_BatchNorm_ReLU_Pool.forward(
                        hidden, w, b, gamma, beta, conv_param, bn_param, pool_param
                    )
                else:
                    hidden, cache = Conv_BatchNorm_ReLU.forward(
                        hidden, w, b, gamma, beta, conv_param, bn_param
                    )
            elif pool:
                hidden, cache = Conv_ReLU_Pool.forward(hidden, w, b, conv_param, pool_param)
            else:
                hidden, cache = Conv_ReLU.forward(hidden, w, b, conv_param)
            caches.append((pool, cache))
        scores, scores_cache = Linear.forward(hidden, self.params[f"W{L}"], self.params[f"b{L}"])
        # END YOUR CODE

        if y is None:
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        loss, dscores = softmax_loss(scores, y)
        dhidden, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dscores, scores_cache)
        for i in range(L - 1, 0, -1):
            pool, cache = caches[i - 1]
            if self.batchnorm:
                sandwich = Conv_BatchNorm_ReLU_Pool if pool else Conv_BatchNorm_ReLU
                dhidden, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = (
                    sandwich.backward(dhidden, cache)
                )
            else:
                sandwich = Conv_ReLU_Pool if pool else Conv_ReLU
                dhidden, grads[f"W{i}"], grads[f"b{i}"] = sandwich.backward(dhidden, cache)
        for i in range(1, L + 1):
            w = self.params[f"W{i}"]
            loss = loss + self.reg * (w * w).sum()
            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * w
        # END YOUR CODE
        return loss, grads


def create_solver_instance(data_dict, dtype, device):
    """Build the Solver that trains a TwoLayerNet to at least 50 % validation accuracy.

    Choose the network size, the regularization and the Solver's options (update rule,
    learning rate, decay, batch size, epochs) yourself.

    The grader calls solver.train(time_limit=...) itself, with the limit that assignment.yaml
    states, and then scores solver.model on held-out CIFAR-10 images it has not shown the
    solver: the target is at least 50 % accuracy. Training stops early, keeping the best
    parameters so far, when the limit is near. Do not call train() here; leave verbose off.

    Inputs:
    - data_dict: Dictionary with X_train, y_train, X_val, y_val: images are tensors of shape
      (N, 3, 32, 32) (mean image subtracted), labels integer tensors of shape (N,), all
      already on the device
    - dtype: torch dtype for the model's parameters
    - device: Device for the model's parameters

    Returns:
    - solver: A Solver whose model is a TwoLayerNet

    Graded by task: two_layer_net.cifar10
    """
    solver = None
    # BEGIN YOUR CODE
    model = TwoLayerNet(hidden_dim=200, reg=5e-3, dtype=dtype, device=device)
    solver = Solver(
        model,
        data_dict,
        update_rule=optim.adam,
        optim_config={"learning_rate": 1e-3},
        lr_decay=0.95,
        num_epochs=15,
        batch_size=200,
        verbose=False,
        device=device,
    )
    # END YOUR CODE
    return solver


def get_three_layer_network_params():
    """The weight scale and learning rate that make a three-layer network overfit.

    training.py builds FullyConnectedNet([100, 100], weight_scale=weight_scale) and trains it
    with SGD at this learning rate for 20 epochs, in batches of 25, on 50 training images
    (mean image subtracted, pixel values 0 to 255 before that); the target is 100 % accuracy
    on those 50 images.

    Returns a tuple of:
    - weight_scale: Standard deviation of the initial weights
    - learning_rate: Learning rate of SGD

    Graded by task: fc_net.overfit_three_layer
    """
    weight_scale, learning_rate = None, None
    # BEGIN YOUR CODE
    weight_scale = 5e-2
    learning_rate = 1e-3
    # END YOUR CODE
    return weight_scale, learning_rate


def get_five_layer_network_params():
    """The weight scale and learning rate that make a five-layer network overfit.

    As get_three_layer_network_params, for FullyConnectedNet([100, 100, 100, 100]).

    Returns a tuple of:
    - weight_scale: Standard deviation of the initial weights
    - learning_rate: Learning rate of SGD

    Graded by task: fc_net.overfit_five_layer
    """
    weight_scale, learning_rate = None, None
    # BEGIN YOUR CODE
    weight_scale = 1e-1
    learning_rate = 1e-3
    # END YOUR CODE
    return weight_scale, learning_rate


def create_convolutional_solver_instance(data_dict, dtype, device):
    """Build the Solver that trains a DeepConvNet to at least 71 % validation accuracy.

    Choose the architecture (num_filters, max_pools, batchnorm, weight_scale), the
    regularization and the Solver's options yourself. The fast sandwich layers make it fast
    enough; the naive Conv and MaxPool are far too slow.

    The grader calls solver.train(time_limit=...) itself, with the limit that assignment.yaml
    states (60 seconds on a GPU), and then scores solver.model on held-out CIFAR-10 images:
    the target is at least 71 % accuracy. Training stops early, keeping the best parameters
    so far, when the limit is near, so more epochs than fit do no harm. Do not call train()
    here; leave verbose off.

    Inputs:
    - data_dict: Dictionary with X_train, y_train, X_val, y_val: images are tensors of shape
      (N, 3, 32, 32) (mean image subtracted), labels integer tensors of shape (N,), all
      already on the device
    - dtype: torch dtype for the model's parameters
    - device: Device for the model's parameters

    Returns:
    - solver: A Solver whose model is a DeepConvNet

    Graded by task: deep_convnet.cifar10
    """
    solver = None
    # BEGIN YOUR CODE
    input_dims = tuple(data_dict["X_train"].shape[1:])
    model = DeepConvNet(
        input_dims=input_dims,
        num_filters=[32, 64, 128, 256],
        max_pools=[0, 1, 2, 3],
        batchnorm=True,
        num_classes=10,
        weight_scale="kaiming",
        reg=1e-5,
        dtype=dtype,
        device=device,
    )
    solver = Solver(
        model,
        data_dict,
        update_rule=optim.adam,
        optim_config={"learning_rate": 2e-3},
        lr_decay=0.9,
        num_epochs=10,
        batch_size=128,
        verbose=False,
        device=device,
    )
    # END YOUR CODE
    return solver
