"""Numeric-gradient checks: cheap in the directional mode, strict, and failing with the worst element."""

import numpy as np
import pytest

from grader.compare import CheckFailed
from grader.gradcheck import DIRECTIONAL_PROBES, ELEMENTWISE_MAX_SIZE, compare_gradient


def quadratic(weights):
    """f(x) = sum(weights * x**2) / 2, gradient weights * x, evaluated in one batched call."""
    calls = []

    def evaluate(points):
        calls.append(len(points))
        return [float(np.sum(weights * p ** 2) / 2) for p in points]

    return evaluate, calls


@pytest.mark.parametrize("shape", [(3, 4), (50, 60), (2, 3, 32, 32)])
def test_a_correct_gradient_passes(shape):
    rng = np.random.default_rng(0)
    x, weights = rng.standard_normal(shape), rng.random(shape)
    evaluate, calls = quadratic(weights)
    compare_gradient(weights * x, x, evaluate, name="dx", rng=rng)
    assert len(calls) == 1  # one round trip whatever the size


def test_large_inputs_cost_at_most_8_forward_evaluations():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3, 32, 32))
    evaluate, calls = quadratic(np.ones_like(x))
    compare_gradient(x, x, evaluate, name="dx", rng=rng)
    assert calls == [2 * DIRECTIONAL_PROBES] and 2 * DIRECTIONAL_PROBES <= 8


def test_a_step_that_straddles_a_kink_is_retried_with_a_smaller_one():
    x = np.array([5e-7, -2.0, 3.0])  # the first element sits within one step of ReLU's kink

    def relu_sum(points):
        return [float(np.sum(np.maximum(p, 0))) for p in points]

    compare_gradient((x > 0).astype(float), x, relu_sum, name="dx", rng=np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(3, 4), (40, 50)])
@pytest.mark.parametrize("mistake", ["scaled by 1/N", "one element wrong", "sign flipped", "transposed"])
def test_typical_mistakes_fail(shape, mistake):
    rng = np.random.default_rng(2)
    x, weights = rng.standard_normal(shape), rng.random(shape) + 0.5
    gradient = weights * x
    if mistake == "scaled by 1/N":
        wrong = gradient / shape[0]
    elif mistake == "one element wrong":
        wrong = gradient.copy()
        wrong.flat[-1] *= 1.5
    elif mistake == "sign flipped":
        wrong = -gradient
    else:
        wrong = gradient.T.reshape(shape)
    evaluate, _ = quadratic(weights)
    with pytest.raises(CheckFailed) as failure:
        compare_gradient(wrong, x, evaluate, name="dx of layer_backward", rng=rng)
    assert "dx of layer_backward" in failure.value.message and "tolerance" in failure.value.message


def test_an_elementwise_failure_points_at_the_worst_element():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    assert x.size <= ELEMENTWISE_MAX_SIZE
    wrong = x.copy()
    wrong[1, 2] = 0.0
    evaluate, _ = quadratic(np.ones_like(x))
    with pytest.raises(CheckFailed, match=r"1 of 6 elements.*worst at \[1, 2\]: analytic 0, numeric 6"):
        compare_gradient(wrong, x, evaluate, name="dx", rng=np.random.default_rng(0))


def test_wrong_shape_and_nan_fail_with_a_clear_message():
    x = np.ones((2, 3))
    evaluate, _ = quadratic(np.ones_like(x))
    with pytest.raises(CheckFailed, match=r"expected shape \(2, 3\)"):
        compare_gradient(np.ones((3, 2)), x, evaluate, name="dx", rng=np.random.default_rng(0))
    with pytest.raises(CheckFailed, match="NaN"):
        compare_gradient(np.full((2, 3), np.nan), x, evaluate, name="dx", rng=np.random.default_rng(0))
