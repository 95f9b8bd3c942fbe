"""First-order update rules for training neural networks, on PyTorch tensors.

Every rule has the same interface:

    next_w, config = update(w, dw, config)

- w: Tensor of the current weights
- dw: Tensor of the same shape, dtype and device as w, the gradient of the loss with respect to w
- config: Dictionary of hyper-parameters (learning rate, ...) and of the state the rule keeps
  between steps (velocity, moving averages, ...). The rule sets missing entries to their
  defaults, updates its state in this same dictionary, and returns it.
  Passing None starts from an empty dictionary.

The rule returns the updated weights as next_w, of w's dtype and device: a new tensor, or w
itself, which it may update in place and return (the caller uses next_w, never w or dw again).
The state tensors in config may likewise be new tensors or the old ones updated in place.
"""

import torch


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: next_w = w - learning_rate * dw.

    config format:
    - learning_rate: Scalar learning rate (default 1e-2)

    Graded by task: optim.sgd
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)

    next_w = None
    # BEGIN YOUR CODE
    raise NotImplementedError("sgd in optim.py (graded by task optim.sgd)")
    # END YOUR CODE
    return next_w, config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum.

        v = momentum * v - learning_rate * dw
        next_w = w + v

    config format:
    - learning_rate: Scalar learning rate (default 1e-2)
    - momentum: Scalar between 0 and 1 (default 0.9); 0 is vanilla SGD
    - velocity: Tensor of the same shape as w, a moving average of the gradients
      (default zeros); store the new velocity here

    Graded by task: optim.sgd_momentum
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    # Tensors are made only when missing: setdefault's default would be made at every step.
    if "velocity" not in config:
        config["velocity"] = torch.zeros_like(w)

    next_w = None
    # BEGIN YOUR CODE
    raise NotImplementedError("sgd_momentum in optim.py (graded by task optim.sgd_momentum)")
    # END YOUR CODE
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: a per-parameter learning rate from a moving average of squared gradients.

        cache = decay_rate * cache + (1 - decay_rate) * dw ** 2
        next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)

    config format:
    - learning_rate: Scalar learning rate (default 1e-2)
    - decay_rate: Scalar between 0 and 1, the decay of the squared-gradient cache (default 0.99)
    - epsilon: Small scalar that avoids dividing by zero (default 1e-8)
    - cache: Tensor of the same shape as w, the moving average of squared gradients
      (default zeros); store the new cache here

    Graded by task: optim.rmsprop
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    if "cache" not in config:
        config["cache"] = torch.zeros_like(w)

    next_w = None
    # BEGIN YOUR CODE
    raise NotImplementedError("rmsprop in optim.py (graded by task optim.rmsprop)")
    # END YOUR CODE
    return next_w, config


def adam(w, dw, config=None):
    """Adam: moving averages of the gradient and of its square, with bias correction.

        t = t + 1
        m = beta1 * m + (1 - beta1) * dw
        v = beta2 * v + (1 - beta2) * dw ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    config format:
    - learning_rate: Scalar learning rate (default 1e-3)
    - beta1: Decay rate of the moving average of the gradient (default 0.9)
    - beta2: Decay rate of the moving average of the squared gradient (default 0.999)
    - epsilon: Small scalar that avoids dividing by zero (default 1e-8)
    - m: Tensor of the same shape as w, the moving average of the gradient (default zeros)
    - v: Tensor of the same shape as w, the moving average of the squared gradient
      (default zeros)
    - t: Number of steps taken so far, an int (default 0); incremented BEFORE the bias
      correction
    Store the new m, v and t in config.

    Graded by task: optim.adam
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    if "m" not in config:
        config["m"] = torch.zeros_like(w)
    if "v" not in config:
        config["v"] = torch.zeros_like(w)
    config.setdefault("t", 0)

    next_w = None
    # BEGIN YOUR CODE
    raise NotImplementedError("adam in optim.py (graded by task optim.adam)")
    # END YOUR CODE
    return next_w, config
