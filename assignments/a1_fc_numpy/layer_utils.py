"""Sandwich layers: common sequences of the layers in layers.py, as one forward/backward pair.

Provided; you do not need to change this file. Each helper returns (out, cache) like the layers
it is built from, and its backward pass returns the gradients in the order of its inputs.
"""

from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
)


def affine_relu_forward(x, w, b):
    """Affine layer followed by a ReLU.

    Inputs:
    - x: Input to the affine layer, of shape (N, d_1, ..., d_k)
    - w, b: Weights (D, M) and biases (M,) of the affine layer

    Returns a tuple of:
    - out: Output of the ReLU, of shape (N, M)
    - cache: Object to give to affine_relu_backward
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of affine_relu_forward; returns (dx, dw, db)."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def affine_norm_relu_forward(x, w, b, gamma, beta, norm_param, normalization):
    """Affine layer, then batch or layer normalization, then a ReLU.

    Inputs:
    - x: Input to the affine layer, of shape (N, d_1, ..., d_k)
    - w, b: Weights (D, M) and biases (M,) of the affine layer
    - gamma, beta: Scale and shift of the normalization, of shape (M,)
    - norm_param: bn_param of batchnorm_forward or ln_param of layernorm_forward
    - normalization: 'batchnorm' or 'layernorm'

    Returns a tuple of:
    - out: Output of the ReLU, of shape (N, M)
    - cache: Object to give to affine_norm_relu_backward
    """
    if normalization == "batchnorm":
        norm_forward = batchnorm_forward
    elif normalization == "layernorm":
        norm_forward = layernorm_forward
    else:
        raise ValueError(f"Unknown normalization {normalization!r}")
    a, fc_cache = affine_forward(x, w, b)
    a_norm, norm_cache = norm_forward(a, gamma, beta, norm_param)
    out, relu_cache = relu_forward(a_norm)
    return out, (fc_cache, norm_cache, relu_cache, normalization)


def affine_norm_relu_backward(dout, cache):
    """Backward pass of affine_norm_relu_forward; returns (dx, dw, db, dgamma, dbeta)."""
    fc_cache, norm_cache, relu_cache, normalization = cache
    norm_backward = batchnorm_backward if normalization == "batchnorm" else layernorm_backward
    da_norm = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = norm_backward(da_norm, norm_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta
