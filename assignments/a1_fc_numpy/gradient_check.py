"""Tools to check analytic gradients against numeric ones (centered finite differences).

Provided for your own debugging; the grader runs its own checks. Use float64 inputs: in float32
the rounding error of a finite difference swamps the quantity it measures.
"""

import numpy as np


def rel_error(x, y):
    """Largest element-wise relative error between two arrays (or numbers)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Numeric gradient of a scalar function f at x, one element of x at a time.

    Inputs:
    - f: Function taking the array x and returning a scalar
    - x: Array at which to evaluate the gradient; perturbed in place and restored
    - verbose: Print every element's gradient as it is computed
    - h: Step of the finite difference

    Returns:
    - grad: Array of the same shape as x
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old_value = x[ix]
        x[ix] = old_value + h
        f_plus = f(x)
        x[ix] = old_value - h
        f_minus = f(x)
        x[ix] = old_value
        grad[ix] = (f_plus - f_minus) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numeric gradient of sum(f(x) * df) at x, for an array-valued function f.

    This is what a layer's backward pass computes for upstream gradient df.

    Inputs:
    - f: Function taking the array x and returning an array of the shape of df
    - x: Array at which to evaluate the gradient; perturbed in place and restored
    - df: Upstream gradient, of the shape of f(x)
    - h: Step of the finite difference

    Returns:
    - grad: Array of the same shape as x
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old_value = x[ix]
        x[ix] = old_value + h
        f_plus = np.array(f(x), copy=True)
        x[ix] = old_value - h
        f_minus = np.array(f(x), copy=True)
        x[ix] = old_value
        grad[ix] = np.sum((f_plus - f_minus) * df) / (2 * h)
        it.iternext()
    return grad
