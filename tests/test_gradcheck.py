"""Numeric-gradient checks: cheap in the directional mode, strict, and failing with the worst element."""

import re

import numpy as np
import pytest

from grader.checking import notes
from grader.checking.compare import CheckFailed
from grader.checking.gradcheck import (DEFAULT_TOLERANCE, DIRECTIONAL_PROBES, ELEMENTWISE_MAX_SIZE, FORCED_ELEMENTWISE_MAX_SIZE,
                              STEP_FACTORS, Mode, mode_for_size, compare_gradient, draw_step, forced_mode, measuring)
from grader.checking.gradient_diagnosis import Sizes


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


@pytest.mark.parametrize("seed", range(5))
def test_steps_are_drawn_per_check_within_the_safe_range(seed):
    steps = {draw_step(np.random.default_rng([seed, k]), DEFAULT_TOLERANCE) for k in range(20)}
    low, high = (DEFAULT_TOLERANCE.step * f for f in STEP_FACTORS)
    assert len(steps) == 20 and all(low <= s <= high for s in steps)


# --- kinks within a tenth of a step --------------------------------------------------------------

KINK_CLOSE = np.array([3e-9, -2.0, 3.0, -4e-9])  # two elements far closer to ReLU's kink than any step


def test_a_kink_straddled_by_both_steps_is_compared_with_the_one_sided_slope():
    notes.take()
    compare_gradient((KINK_CLOSE > 0).astype(float), KINK_CLOSE, relu_sum, name="dx of relu_backward",
                     rng=np.random.default_rng(0))
    [taken] = notes.take()
    assert "both straddled a kink" in taken and "one-sided slope" in taken


@pytest.mark.parametrize("wrong", [0.5, 0.0])
def test_a_wrong_gradient_at_a_kink_still_fails(wrong):
    g = (KINK_CLOSE > 0).astype(float)
    g[0] = wrong  # neither side's slope (1 for x > 0, 0 below)
    failure = failure_of(g, KINK_CLOSE, relu_sum)
    assert "dx is wrong" in failure.message


def test_a_wrong_gradient_in_a_smooth_region_is_not_taken_for_a_kink():
    # The slope does not change with the step, so no one-sided slopes are evaluated.
    x = np.ones((2, 3))
    evaluate, calls = linear(np.ones_like(x))
    failure_of(1.5 * x, x, evaluate)
    assert calls == [12, 12]


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


# --- the message of a failed directional check --------------------------------------------------

def linear(weights):
    """f(x) = sum(weights * x), gradient weights, evaluated in one batched call."""
    calls = []

    def evaluate(points):
        calls.append(len(points))
        return [float(np.sum(weights * p)) for p in points]

    return evaluate, calls


def failure_of(analytic, x, evaluate, **kwargs):
    kwargs.setdefault("name", "dx")
    kwargs.setdefault("rng", np.random.default_rng(0))
    with pytest.raises(CheckFailed) as failure:
        compare_gradient(analytic, x, evaluate, **kwargs)
    return failure.value


def test_a_directional_failure_names_the_pattern_the_slice_and_the_worst_elements():
    rng = np.random.default_rng(3)
    x, weights = rng.standard_normal((100, 10)), rng.random((100, 10)) + 0.5
    evaluate, calls = quadratic(weights)
    failure = failure_of(weights * x / 100, x, evaluate, sizes=Sizes.of(N=100))
    assert failure.message.startswith("dx is wrong: every element is 1/N (N = 100) times the numeric gradient")
    assert "worst at [" in failure.message and "tolerance per number" in failure.message
    assert "along 4 of 4 random directions" in failure.detail
    assert "in the slice x[0:6, 0:10], 60 of 60 elements disagree" in failure.detail
    largest = [line for line in failure.detail.splitlines() if line.startswith("largest differences: ")]
    assert len(largest) == 1
    entries = largest[0].removeprefix("largest differences: ").split("; ")
    assert len(entries) == 3
    for entry in entries:
        index = [int(i) for i in entry.split(":")[0].strip("[]").split(", ")]
        assert len(index) == 2 and index[0] < 6 and index[1] < 10
        assert "analytic" in entry and "numeric" in entry
    # Two directional attempts, then the 60 elements of the slice in one further round trip.
    assert calls == [2 * DIRECTIONAL_PROBES, 2 * DIRECTIONAL_PROBES, 2 * 60]


def test_the_worst_element_of_the_message_is_the_worst_of_the_slice():
    x = np.ones((20, 10))
    wrong = x.copy()
    wrong[0, 3] = 5.0
    wrong[1, 7] = 2.0
    evaluate, calls = quadratic(np.ones_like(x))
    failure = failure_of(wrong, x, evaluate)
    assert "worst at [0, 3]: analytic 5, numeric 1" in failure.message
    assert "in the slice x[0:6, 0:10], 2 of 60 elements disagree" in failure.detail
    assert "largest differences: [0, 3]: analytic 5, numeric 1; [1, 7]: analytic 2, numeric 1" in failure.detail
    assert len(calls) == 3 and calls[-1] == 2 * 60


def test_an_error_outside_the_slice_is_reported_as_such():
    x = np.ones((20, 10))
    wrong = x.copy()
    wrong[19, 9] = 3.0
    evaluate, _ = linear(np.ones_like(x))
    failure = failure_of(wrong, x, evaluate)
    assert "the 60 elements of the slice x[0:6, 0:10] agree, so the error lies elsewhere" in failure.detail


def test_an_error_outside_the_slice_names_no_agreeing_element_as_the_worst():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 100))
    wrong = x.copy()
    wrong[99, 99] += 1.0
    evaluate, _ = quadratic(np.ones_like(x))
    failure = failure_of(wrong, x, evaluate)
    assert "agree, so the error lies elsewhere" in failure.detail
    assert "worst at" not in failure.message


@pytest.mark.parametrize("input_name", ["w", "params['W1']"])
def test_the_input_name_appears_in_the_slice(input_name):
    x = np.ones((2, 3, 8, 8))
    evaluate, _ = quadratic(np.ones_like(x))
    failure = failure_of(2 * x, x, evaluate, name="dw", input_name=input_name)
    assert f"in the slice {input_name}[0, 0, 0:8, 0:8], 64 of 64 elements disagree" in failure.detail
    assert "x[" not in failure.detail
    assert "every element is 2 times the numeric gradient" in failure.message


def test_a_factor_seen_only_along_the_directions_is_named():
    # The slice x[0:6, 0:10] lies where the gradient is 0 both ways, so the slice shows no pattern;
    # along random directions the gradient is still half the numeric one.
    x = np.ones((100, 10))
    weights = np.ones_like(x)
    weights[:6] = 0.0
    evaluate, _ = linear(weights)
    failure = failure_of(weights / 2, x, evaluate, sizes=Sizes.of(N=100))
    assert "the 60 elements of the slice x[0:6, 0:10] agree" in failure.detail
    assert failure.message.startswith("dx is wrong: along every direction it is 1/2 times the numeric gradient")


# --- the cost of a check -----------------------------------------------------------------------

@pytest.mark.parametrize("size", [65, 10_000, 1_000_000])
def test_a_passing_directional_check_costs_2_evaluations_per_probe(size):
    rng = np.random.default_rng(5)
    x, weights = rng.standard_normal(size), rng.standard_normal(size)
    evaluate, calls = linear(weights)
    with measuring() as measurements:
        compare_gradient(weights, x, evaluate, name="dx", rng=rng)
    assert calls == [2 * DIRECTIONAL_PROBES] and 2 * DIRECTIONAL_PROBES <= 8
    [measurement] = measurements
    assert (measurement.mode, measurement.size, measurement.evaluations, measurement.round_trips,
            measurement.passed) == (Mode.DIRECTIONAL, size, 2 * DIRECTIONAL_PROBES, 1, True)


def test_a_passing_elementwise_check_costs_2_evaluations_per_element():
    x = np.linspace(-1, 1, ELEMENTWISE_MAX_SIZE)
    evaluate, calls = linear(np.ones_like(x))
    with measuring() as measurements:
        compare_gradient(np.ones_like(x), x, evaluate, name="dx", rng=np.random.default_rng(0))
    assert calls == [2 * ELEMENTWISE_MAX_SIZE]
    assert measurements[0].mode is Mode.ELEMENTWISE and measurements[0].round_trips == 1


def test_forced_elementwise_checks_a_large_input_element_by_element():
    x = np.linspace(-1, 1, 100)
    evaluate, calls = linear(np.ones_like(x))
    with forced_mode(Mode.ELEMENTWISE), measuring() as measurements:
        compare_gradient(np.ones_like(x), x, evaluate, name="dx", rng=np.random.default_rng(0))
    assert calls == [200]
    assert [(m.name, m.mode, m.size, m.evaluations, m.round_trips, m.passed) for m in measurements] == [
        ("dx", Mode.ELEMENTWISE, 100, 200, 1, True)]


def test_forced_directional_checks_a_small_input_along_directions():
    x = np.linspace(-1, 1, 10)
    evaluate, calls = linear(np.ones_like(x))
    with forced_mode(Mode.DIRECTIONAL), measuring() as measurements:
        compare_gradient(np.ones_like(x), x, evaluate, name="dx", rng=np.random.default_rng(0))
    assert calls == [8]
    assert [(m.mode, m.size, m.evaluations, m.round_trips, m.passed) for m in measurements] == [
        (Mode.DIRECTIONAL, 10, 8, 1, True)]


def test_forced_elementwise_keeps_very_large_inputs_directional():
    size = FORCED_ELEMENTWISE_MAX_SIZE + 1
    x = np.linspace(-1, 1, size)
    evaluate, calls = linear(np.ones_like(x))
    with forced_mode(Mode.ELEMENTWISE), measuring() as measurements:
        compare_gradient(np.ones_like(x), x, evaluate, name="dx", rng=np.random.default_rng(0))
        assert mode_for_size(FORCED_ELEMENTWISE_MAX_SIZE) is Mode.ELEMENTWISE
        assert mode_for_size(size) is Mode.DIRECTIONAL
    assert calls == [2 * DIRECTIONAL_PROBES]
    assert measurements[0].mode is Mode.DIRECTIONAL and measurements[0].evaluations == 2 * DIRECTIONAL_PROBES


def test_a_forced_mode_and_a_measurement_end_with_their_block():
    with forced_mode(Mode.DIRECTIONAL):
        with forced_mode(Mode.ELEMENTWISE):
            assert mode_for_size(100) is Mode.ELEMENTWISE
        assert mode_for_size(3) is Mode.DIRECTIONAL
    assert mode_for_size(ELEMENTWISE_MAX_SIZE) is Mode.ELEMENTWISE
    assert mode_for_size(ELEMENTWISE_MAX_SIZE + 1) is Mode.DIRECTIONAL
    with measuring() as outer:
        with measuring() as inner:
            compare_gradient(np.ones(3), np.zeros(3), linear(np.ones(3))[0], name="inner",
                             rng=np.random.default_rng(0))
        compare_gradient(np.ones(3), np.zeros(3), linear(np.ones(3))[0], name="outer",
                         rng=np.random.default_rng(0))
    assert [m.name for m in inner] == ["inner"] and [m.name for m in outer] == ["outer"]
    compare_gradient(np.ones(3), np.zeros(3), linear(np.ones(3))[0], name="after", rng=np.random.default_rng(0))
    assert [m.name for m in outer] == ["outer"]


def test_a_failed_check_is_measured_with_all_its_evaluations():
    x = np.ones((20, 10))
    evaluate, calls = linear(np.ones_like(x))
    with measuring() as measurements:
        failure_of(-x, x, evaluate, name="db")
    [measurement] = measurements
    assert (measurement.name, measurement.mode, measurement.size, measurement.passed) == (
        "db", Mode.DIRECTIONAL, 200, False)
    assert measurement.evaluations == sum(calls) == 2 * (2 * DIRECTIONAL_PROBES) + 2 * 60
    assert measurement.round_trips == len(calls) == 3


def test_a_failed_elementwise_check_is_measured():
    x = np.ones((2, 3))
    evaluate, calls = linear(np.ones_like(x))
    with measuring() as measurements:
        failure_of(2 * x, x, evaluate)
    assert calls == [12, 12]
    assert [(m.mode, m.evaluations, m.round_trips, m.passed) for m in measurements] == [
        (Mode.ELEMENTWISE, 24, 2, False)]


# --- notes ------------------------------------------------------------------------------------

def relu_sum(points):
    return [float(np.sum(np.maximum(p, 0))) for p in points]


def test_a_pass_on_the_retry_leaves_one_note_naming_the_steps():
    notes.take()
    x = np.array([5e-7, -2.0, 3.0])
    compare_gradient((x > 0).astype(float), x, relu_sum, name="dx of relu_backward", rng=np.random.default_rng(0))
    taken = notes.take()
    assert len(taken) == 1
    assert taken[0].startswith("dx of relu_backward: ")
    first, second = (float(v) for v in re.findall(r"step (\d\.?\d*e-\d+)", taken[0]))
    assert second == pytest.approx(first / 10, rel=0.1) and "kink" in taken[0]
    assert notes.take() == ()


def test_a_plain_pass_leaves_no_note():
    notes.take()
    x = np.array([0.5, -2.0, 3.0])
    compare_gradient((x > 0).astype(float), x, relu_sum, name="dx", rng=np.random.default_rng(0))
    rng = np.random.default_rng(6)
    big = rng.standard_normal((30, 30))
    compare_gradient(big, big, quadratic(np.ones_like(big))[0], name="dx", rng=rng)
    assert notes.take() == ()


def test_a_failure_leaves_no_note():
    notes.take()
    x = np.array([5e-7, -2.0, 3.0])
    failure_of(2 * (x > 0).astype(float), x, relu_sum)
    assert notes.take() == ()


# --- findings ---------------------------------------------------------------------------------

FINDINGS = ["layer_forward modified its argument 0 in place, so the cache may hold changed values",
            "layer_backward modified dout in place"]


@pytest.mark.parametrize("shape", [(2, 3), (20, 10)])
def test_findings_appear_in_the_message_of_a_wrong_gradient(shape):
    x = np.ones(shape)
    evaluate, _ = linear(np.ones_like(x))
    failure = failure_of(3 * x, x, evaluate, findings=FINDINGS)
    assert failure.message.startswith(f"dx is wrong: {FINDINGS[0]}; ")
    assert f"pattern: {FINDINGS[1]}" in failure.detail
    assert "pattern: every element is 3 times the numeric gradient" in failure.detail


@pytest.mark.parametrize("shape", [(2, 3), (20, 10)])
def test_findings_leave_no_trace_when_the_gradient_is_right(shape):
    notes.take()
    x = np.ones(shape)
    evaluate, _ = linear(np.ones_like(x))
    compare_gradient(np.ones_like(x), x, evaluate, name="dx", rng=np.random.default_rng(0), findings=FINDINGS)
    assert notes.take() == ()


# --- gradients that cannot be compared ---------------------------------------------------------

def test_nan_in_the_gradient_names_the_count_and_the_first_index():
    x = np.ones((3, 4))
    g = np.ones_like(x)
    g[2, 1] = np.nan
    g[1, 3] = np.inf
    g[2, 3] = -np.inf
    evaluate, calls = linear(np.ones_like(x))
    failure = failure_of(g, x, evaluate)
    assert "dx: 3 of 12 element(s) are NaN or infinite, the first at [1, 3]" in failure.message
    assert calls == []  # no forward pass is spent on it


def test_a_transposed_shape_says_it_looks_transposed():
    x = np.ones((2, 3, 4))
    evaluate, calls = linear(np.ones_like(x))
    failure = failure_of(np.ones((4, 3, 2)), x, evaluate)
    assert failure.message == "dx: expected shape (2, 3, 4) (x's), got (4, 3, 2) (it looks transposed)"
    assert "transposed" not in failure_of(np.ones((3, 2, 4)), x, evaluate).message
    assert "transposed" not in failure_of(np.ones(24), x, evaluate).message
    assert calls == []


def test_a_parameter_s_gradient_of_another_shape_names_the_parameter_not_the_input():
    # dgamma kept as (1, D) by keepdims: the shape to match is gamma's, which "the input's" hid.
    gamma = np.ones(5)
    evaluate, _ = linear(np.ones_like(gamma))
    failure = failure_of(np.ones((1, 5)), gamma, evaluate, name="dgamma", input_name="gamma")
    assert failure.message == "dgamma: expected shape (5,) (gamma's), got (1, 5)"


def _network_with_a_unit_at_the_kink():
    """f(W) = sum(relu(X W + b) * V) with one pre-activation 1e-9 above ReLU's kink: every step of
    a directional check straddles it (a network with layer norm before ReLU meets this by chance)."""
    rng = np.random.default_rng(7)
    X, W, V = rng.standard_normal((4, 15)), rng.standard_normal((15, 20)), rng.standard_normal((4, 20))
    b = 0.1 * rng.standard_normal(20)
    b[0] = 1e-9 - (X @ W)[0, 0]

    def evaluate(points):
        return [float(np.sum(np.maximum(X @ p + b, 0) * V)) for p in points]

    return W, X.T @ ((X @ W + b > 0) * V), evaluate


def test_a_network_with_a_unit_at_the_kink_passes_with_its_true_gradient():
    notes.take()
    W, gradient, evaluate = _network_with_a_unit_at_the_kink()
    assert W.size > ELEMENTWISE_MAX_SIZE
    compare_gradient(gradient, W, evaluate, name="grads['W1']", rng=np.random.default_rng(0))
    [taken] = notes.take()
    assert "both straddled a kink" in taken


def test_a_network_with_a_unit_at_the_kink_still_fails_a_wrong_gradient():
    W, gradient, evaluate = _network_with_a_unit_at_the_kink()
    failure = failure_of(gradient * 1.01, W, evaluate)
    assert "is wrong" in failure.message


def test_a_scalar_that_differs_is_told_as_a_number_and_an_array_by_its_worst_element():
    from grader.checking.compare import assert_close

    with pytest.raises(CheckFailed) as scalar:
        assert_close(np.float64(2.5), np.float64(2.3), name="loss")
    assert scalar.value.message.startswith("loss: got 2.5, expected 2.3 (relative error")
    assert "elements" not in scalar.value.message and "worst" not in scalar.value.message
    with pytest.raises(CheckFailed) as array:
        assert_close(np.array([[1.0, 2.0], [3.0, 9.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), name="out")
    assert array.value.message.startswith("out: 1 of 4 elements differ; worst at [1, 1]: got 9, expected 4")
