"""Fully-connected networks built from the layers in layers.py, and the entries that train them.

Every model keeps its learnable parameters in the dictionary self.params and has a method
loss(X, y=None): without y it returns class scores of shape (N, C); with y it returns
(loss, grads), where grads maps every key of self.params to the gradient of the loss.
Gradients are graded for the parameters documented below, set by their names, and only where the
loss agrees with the reference's for the same parameters.
The sandwich layers of layer_utils.py (affine_relu_forward, affine_norm_relu_forward and their
backward passes) are imported here for you.
"""

import numpy as np

from .layer_utils import *
from .layers import *
from .solver import Solver


class TwoLayerNet:
    """Two-layer fully-connected network: affine - relu - affine - softmax.

    Input of dimension D, a hidden layer of dimension H, classification over C classes.
    Trained with the softmax loss plus L2 regularization 0.5 * reg * (sum(W1**2) + sum(W2**2))
    (biases are not regularized).

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
    ):
        """Initialize the network.

        Weights are drawn from a Gaussian with mean 0 and standard deviation weight_scale
        (weight_scale * np.random.randn(...)); biases are zeros.

        Inputs:
        - input_dim: Integer D, the size of the input
        - hidden_dim: Integer H, the size of the hidden layer
        - num_classes: Integer C, the number of classes
        - weight_scale: Standard deviation of the initial weights
        - reg: Strength of the L2 regularization

        Graded by task: two_layer_net.init
        """
        self.params = {}
        self.reg = reg

        # BEGIN YOUR CODE
        self.params["W1"] = weight_scale * np.random.randn(input_dim, hidden_dim)
        self.params["b1"] = np.zeros(hidden_dim)
        self.params["W2"] = weight_scale * np.random.randn(hidden_dim, num_classes)
        self.params["b2"] = np.zeros(num_classes)
        # END YOUR CODE

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs:
        - X: Input data, of shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D
        - y: Labels, of shape (N,), y[i] in [0, C); or None

        Returns:
        If y is None:
        - scores: Class scores, of shape (N, C)
        Otherwise a tuple of:
        - loss: Scalar, the softmax loss plus the L2 regularization
        - grads: Dictionary with the keys of self.params; grads[k] is the gradient of the
          loss with respect to self.params[k], of the same shape

        Graded by tasks: two_layer_net.loss, two_layer_net.gradients
        """
        scores = None
        # BEGIN YOUR CODE
        hidden, hidden_cache = affine_relu_forward(X, self.params["W1"], self.params["b1"])
        scores, scores_cache = affine_forward(hidden, self.params["W2"], self.params["b2"])
        # END YOUR CODE

        if y is None:
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        W1, W2 = self.params["W1"], self.params["W2"]
        loss, dscores = softmax_loss(scores, y)
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dhidden, grads["W2"], grads["b2"] = affine_backward(dscores, scores_cache)
        _, grads["W1"], grads["b1"] = affine_relu_backward(dhidden, hidden_cache)
        grads["W1"] += self.reg * W1
        grads["W2"] += self.reg * W2
        # END YOUR CODE
        return loss, grads


class FullyConnectedNet:
    """Fully-connected network with any number of hidden layers:

        {affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax

    where normalization and dropout are optional and the {...} block is repeated L - 1 times.
    Trained with the softmax loss plus L2 regularization 0.5 * reg * sum of sum(W**2) over
    the weight matrices (biases, gammas and betas are not regularized).

    Parameters in self.params, for layers i = 1, ..., L:
    - Wi: Weights of layer i, of shape (input size of layer i, output size of layer i)
    - bi: Biases of layer i
    - gammai, betai: Scale and shift of the normalization after affine layer i, of shape
      (output size of layer i,); only for hidden layers (i < L) and only with normalization
    """

    def __init__(
        self,
        hidden_dims,
        input_dim=3 * 32 * 32,
        num_classes=10,
        dropout_keep_ratio=1,
        normalization=None,
        reg=0.0,
        weight_scale=1e-2,
        dtype=np.float32,
        seed=None,
    ):
        """Initialize the network.

        Weights are drawn from a Gaussian with mean 0 and standard deviation weight_scale;
        biases are zeros; gammas are ones and betas zeros.

        Inputs:
        - hidden_dims: List of integers, the size of each hidden layer
        - input_dim: Integer, the size of the input
        - num_classes: Integer, the number of classes
        - dropout_keep_ratio: Scalar in (0, 1], the probability of keeping a unit in dropout;
          1 means no dropout
        - normalization: None, "batchnorm" or "layernorm"
        - reg: Strength of the L2 regularization
        - weight_scale: Standard deviation of the initial weights
        - dtype: NumPy dtype of all parameters and computations; float32 is faster,
          float64 is needed for numeric gradient checks
        - seed: If not None, the dropout layers use this seed, so the model is deterministic

        Graded by task: fc_net.init
        """
        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params = {}

        # BEGIN YOUR CODE
        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(1, self.num_layers + 1):
            self.params[f"W{i}"] = weight_scale * np.random.randn(dims[i - 1], dims[i])
            self.params[f"b{i}"] = np.zeros(dims[i])
            if normalization is not None and i < self.num_layers:
                self.params[f"gamma{i}"] = np.ones(dims[i])
                self.params[f"beta{i}"] = np.zeros(dims[i])
        # END YOUR CODE

        # Dropout and normalization layers keep their settings (and batch norm its running
        # averages) in these dictionaries, one per layer; pass them to the layer functions.
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed

        self.bn_params = []
        if self.normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        if self.normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def loss(self, X, y=None):
        """Compute the scores, or the loss and its gradients, on a minibatch.

        Inputs and outputs as TwoLayerNet.loss. Without y the network runs in test mode
        (no dropout, batch norm with its running averages); with y, in training mode.

        Graded by tasks: fc_net.loss, fc_net.gradients, fc_net.dropout, fc_net.batchnorm, fc_net.layernorm
        """
        X = X.astype(self.dtype)
        mode = "test" if y is None else "train"

        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode

        scores = None
        # BEGIN YOUR CODE
        caches = []
        hidden = X
        for i in range(1, self.num_layers):
            w, b = self.params[f"W{i}"], self.params[f"b{i}"]
            if self.normalization is None:
                hidden, cache = affine_relu_forward(hidden, w, b)
            else:
                gamma, beta = self.params[f"gamma{i}"], self.params[f"beta{i}"]
                hidden, cache = affine_norm_relu_forward(
                    hidden, w, b, gamma, beta, self.bn_params[i - 1], self.normalization
                )
            dropout_cache = None
            if self.use_dropout:
                hidden, dropout_cache = dropout_forward(hidden, self.dropout_param)
            caches.append((cache, dropout_cache))
        L = self.num_layers
        scores, scores_cache = affine_forward(hidden, self.params[f"W{L}"], self.params[f"b{L}"])
        # END YOUR CODE

        if mode == "test":
            return scores

        loss, grads = 0.0, {}
        # BEGIN YOUR CODE
        loss, dscores = softmax_loss(scores, y)
        dhidden, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, scores_cache)
        for i in range(L - 1, 0, -1):
            cache, dropout_cache = caches[i - 1]
            if self.use_dropout:
                dhidden = dropout_backward(dhidden, dropout_cache)
            if self.normalization is None:
                dhidden, grads[f"W{i}"], grads[f"b{i}"] = affine_relu_backward(dhidden, cache)
            else:
                dhidden, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = (
                    affine_norm_relu_backward(dhidden, cache)
                )
        for i in range(1, L + 1):
            w = self.params[f"W{i}"]
            loss += 0.5 * self.reg * np.sum(w * w)
            grads[f"W{i}"] += self.reg * w
        # END YOUR CODE
        return loss, grads


def create_solver_instance(data_dict):
    """Build the Solver that trains a TwoLayerNet to at least 50 % validation accuracy.

    Choose the network size, the regularization and the Solver's options (update rule,
    learning rate, decay, batch size, epochs) yourself.

    The grader calls solver.train(time_limit=...) itself, with the limit that assignment.yaml
    states (a minute or two of CPU time), and then scores solver.model on held-out CIFAR-10
    images: the target is at least 50 % accuracy. Training stops early, keeping the best
    parameters so far, when the limit is near. Do not call train() here; leave verbose off.

    Inputs:
    - data_dict: Dictionary with X_train, y_train, X_val, y_val; images are float32 arrays
      of shape (N, 3, 32, 32), labels integer arrays of shape (N,)

    Returns:
    - solver: A Solver whose model is a TwoLayerNet

    Graded by task: two_layer_net.cifar10
    """
    solver = None
    # BEGIN YOUR CODE
    model = TwoLayerNet(hidden_dim=100, reg=1e-2)
    solver = Solver(
        model,
        data_dict,
        update_rule="adam",
        optim_config={"learning_rate": 1e-3},
        lr_decay=0.95,
        num_epochs=10,
        batch_size=200,
        verbose=False,
    )
    # END YOUR CODE
    return solver


def create_overfit_solver_instance(data_dict):
    """Build the Solver that overfits 50 training images with a five-layer network.

    The network and the Solver are fixed below; choose the weight scale of the initial
    weights and the learning rate so that the training accuracy reaches 100 % within the 20
    epochs.

    Inputs:
    - data_dict: Dictionary with X_train, y_train (50 images), X_val, y_val; images are
      float32 arrays of shape (N, 3, 32, 32), labels integer arrays of shape (N,)

    Returns:
    - solver: A Solver, not yet trained

    Graded by task: fc_net.overfit
    """
    weight_scale, learning_rate = None, None
    # BEGIN YOUR CODE
    weight_scale = 5e-2
    learning_rate = 1e-2
    # END YOUR CODE
    model = FullyConnectedNet([100, 100, 100, 100], weight_scale=weight_scale, dtype=np.float64)
    solver = Solver(
        model,
        data_dict,
        num_epochs=20,
        batch_size=25,
        update_rule="sgd",
        optim_config={"learning_rate": learning_rate},
        verbose=False,
    )
    return solver
