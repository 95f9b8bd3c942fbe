"""Checks of layers.py: reference outputs for every forward pass and loss; for every backward pass,
the forward pass's output at the same inputs equal to the reference's, then gradients equal to the
numeric gradients of the submission's own forward pass and to the reference's; and the behaviour the
docstrings promise."""

import numpy as np
import pytest

from grader.checking import (answers_live, as_array, assert_close, assert_true, away_from_zero, changed_in_place,
                            check_backward_cost, check_layer_backward, check_loss_cost, check_loss_gradient,
                            LargeExpectation, reference_expectation, check_masks_are_drawn, distinct, expect_tuple,
                            forward_matches, hinge_safe_scores, inspect_call, InvertedDropout, ReferenceLayer)

# The arguments of each forward pass that its caller keeps and uses again: a model's parameters. A
# forward pass may change any other argument in place (the layers' docstring says so); whether its
# backward pass still gets what it needs from the cache is the backward check's business.
PARAMETERS = {
    "affine_forward": {1: "w", 2: "b"},
    "relu_forward": {},
    "sigmoid_forward": {},
    "dropout_forward": {},
    "batchnorm_forward": {1: "gamma", 2: "beta"},
    "layernorm_forward": {1: "gamma", 2: "beta"},
    "conv_forward_naive": {1: "w", 2: "b"},
    "max_pool_forward_naive": {},
    "spatial_groupnorm_forward": {1: "gamma", 2: "beta"},
}


def check_backward(student, reference, rng, forward, backward, args, gradients, behaviour=None):
    """The submission's `backward` of `forward` at `args`, tied to the reference's pair of functions
    (or to `behaviour`, where the contract leaves the output to the submission, as a dropout mask)."""
    check_layer_backward(getattr(student.layers, forward), getattr(student.layers, backward), args,
                         gradients=gradients, rng=rng,
                         reference=behaviour or ReferenceLayer(getattr(reference.layers, forward),
                                                               getattr(reference.layers, backward)))


# -- affine -----------------------------------------------------------------------------------------

AFFINE_SHAPES = [((2, 4, 5, 6), 3), ((1, 7), 4), ((3, 2, 5), 1)]


@pytest.mark.task("affine.forward")
@pytest.mark.parametrize("x_shape,M", AFFINE_SHAPES)
def test_affine_forward(student, reference, rng, x_shape, M):
    D = int(np.prod(x_shape[1:]))
    args = (rng.standard_normal(x_shape), rng.standard_normal((D, M)), rng.standard_normal(M))
    forward_matches(student.layers.affine_forward, reference.layers.affine_forward, args, "affine_forward",
                    kept_by_caller=PARAMETERS["affine_forward"])


@pytest.mark.task("affine.backward")
@pytest.mark.parametrize("x_shape,M", AFFINE_SHAPES)
def test_affine_backward(student, reference, rng, x_shape, M):
    D = int(np.prod(x_shape[1:]))
    args = [rng.standard_normal(x_shape), rng.standard_normal((D, M)), rng.standard_normal(M)]
    check_backward(student, reference, rng, "affine_forward", "affine_backward", args,
                   [("dx", 0), ("dw", 1), ("db", 2)])


# -- relu, sigmoid ------------------------------------------------------------------------------------

@pytest.mark.task("relu.forward")
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
def test_relu_forward(student, reference, rng, shape):
    forward_matches(student.layers.relu_forward, reference.layers.relu_forward,
                    (away_from_zero(rng, shape),), "relu_forward", kept_by_caller=PARAMETERS["relu_forward"])


@pytest.mark.task("relu.backward")
@pytest.mark.parametrize("shape", [(10, 10), (2, 3, 8, 8)])
def test_relu_backward(student, reference, rng, shape):
    check_backward(student, reference, rng, "relu_forward", "relu_backward", [away_from_zero(rng, shape)], [("dx", 0)])


@pytest.mark.task("sigmoid.forward")
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
def test_sigmoid_forward(student, reference, rng, shape):
    x = 4 * rng.standard_normal(shape)
    forward_matches(student.layers.sigmoid_forward, reference.layers.sigmoid_forward, (x,), "sigmoid_forward",
                    kept_by_caller=PARAMETERS["sigmoid_forward"])


@pytest.mark.task("sigmoid.forward")
def test_sigmoid_forward_is_stable_for_large_inputs(student, rng):
    x = np.array([[-800.0, -30.0, 0.0, 30.0, 800.0]])
    out, _ = expect_tuple(student.layers.sigmoid_forward(x), 2, "sigmoid_forward")
    assert_close(out, 1 / (1 + np.exp(-np.clip(x, -500, 500))), name="out of sigmoid_forward on large inputs",
                 rtol=1e-6, atol=1e-12)


@pytest.mark.task("sigmoid.backward")
@pytest.mark.parametrize("shape", [(10, 10), (2, 3, 8, 8)])
def test_sigmoid_backward(student, reference, rng, shape):
    check_backward(student, reference, rng, "sigmoid_forward", "sigmoid_backward", [2 * rng.standard_normal(shape)],
                   [("dx", 0)])


# -- losses ---------------------------------------------------------------------------------------

LOSS_SHAPES = [(50, 10), (1, 5), (7, 3)]


@pytest.mark.parametrize("loss_name", [pytest.param(name, marks=pytest.mark.task(f"{name}.loss"))
                                       for name in ("softmax_loss", "svm_loss")])
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_loss_value(student, reference, rng, loss_name, N, C):
    x, y = 3 * rng.standard_normal((N, C)), rng.integers(C, size=N)
    loss, _ = expect_tuple(getattr(student.layers, loss_name)(x, y), 2, loss_name)
    expected, _ = getattr(reference.layers, loss_name)(x, y)
    assert_close(loss, expected, name=f"loss of {loss_name}")


@pytest.mark.task("softmax_loss.loss")
def test_softmax_loss_is_log_c_for_tiny_scores_and_stable_for_huge(student, reference, rng):
    N, C = 100, 10
    y = rng.integers(C, size=N)
    loss, _ = expect_tuple(student.layers.softmax_loss(0.001 * rng.standard_normal((N, C)), y), 2, "softmax_loss")
    assert_close(loss, np.log(C), name="loss of softmax_loss for near-zero scores (should be about log C)",
                 rtol=1e-2)
    # The docstring states that scores up to about 1000 keep loss and dx finite.
    huge = rng.standard_normal((N, C)) * 1000
    loss, dx = expect_tuple(student.layers.softmax_loss(huge, y), 2, "softmax_loss")
    expected_loss, expected_dx = reference.layers.softmax_loss(huge, y)
    dx = as_array(dx, "dx of softmax_loss")
    # A dx that is right there means the row's maximum was subtracted before exp: only the loss can then
    # go wrong, by a log of probabilities that underflowed to 0.
    dx_right = dx.shape == expected_dx.shape and np.allclose(dx, expected_dx, rtol=1e-6, atol=1e-8)
    assert_true(dx_right or np.isfinite(float(loss)),
                "softmax_loss: scores of size 1000 give a loss of inf or NaN and a wrong dx: exp of such scores "
                "overflows; subtract each row's maximum before taking exp")
    assert_true(np.isfinite(float(loss)),
                f"softmax_loss: scores of size 1000 give the loss {float(loss)}, though dx is right: the loss takes "
                "the log of probabilities that underflow to 0; compute the log-probabilities directly, as "
                "shifted - log(sum(exp(shifted))) with shifted = x - max of the row (log-sum-exp)")
    assert_close(loss, expected_loss, name="loss of softmax_loss for scores of size 1000")
    # dx itself is the gradient task's to judge; here it only has to stay finite, as the docstring says.
    assert_true(np.all(np.isfinite(dx)), "softmax_loss: scores of size 1000 give a NaN or infinite dx: exp of such "
                                         "scores overflows; subtract each row's maximum before taking exp")


@pytest.mark.task("softmax_loss.gradient")
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_softmax_loss_gradient(student, reference, rng, N, C):
    x, y = rng.standard_normal((N, C)), rng.integers(C, size=N)
    check_loss_gradient(student.layers.softmax_loss, x, y, name="softmax_loss", rng=rng,
                        reference=reference.layers.softmax_loss)


@pytest.mark.task("svm_loss.gradient")
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_svm_loss_gradient(student, reference, rng, N, C):
    # Scores spread out so that no margin sits at the hinge's kink.
    y = rng.integers(C, size=N)
    x = hinge_safe_scores(rng, y, C)
    check_loss_gradient(student.layers.svm_loss, x, y, name="svm_loss", rng=rng,
                        reference=reference.layers.svm_loss)


# -- dropout ----------------------------------------------------------------------------------------

DROPOUT_OTHER_READING = ("your dropout drops units with probability p (kept units scaled by 1 / (1 - p)); here p is "
                         "the probability of keeping a unit, and kept units are scaled by 1 / p")


@pytest.mark.task("dropout.forward")
@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_forward_keeps_p_and_scales(student, rng, p):
    x = rng.standard_normal((500, 500)) + 10
    out, _ = expect_tuple(student.layers.dropout_forward(x, {"mode": "train", "p": p, "seed": 123}), 2,
                          "dropout_forward")
    kept = out != 0
    fraction = float(kept.mean())
    # The other reading of p (EECS 498's, torch's): the probability of dropping a unit.
    assert_true(abs(fraction - (1 - p)) >= 0.01,
                f"dropout_forward: your dropout drops units with probability p (it kept {fraction:.3f} of the units "
                f"with p={p}); here p is the probability of keeping a unit")
    assert_true(abs(fraction - p) < 0.01, f"dropout_forward in train mode kept {fraction:.3f} of the units "
                                          f"with p={p}; p is the probability of KEEPING a unit")
    assert_close(out[kept], x[kept] / p, name="kept units of dropout_forward (should be x / p)")


@pytest.mark.task("dropout.forward")
def test_dropout_forward_draws_its_masks_at_random(student):
    x = np.full((10, 100), 2.0)

    def kept(seed):
        out, _ = expect_tuple(student.layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": seed}), 2,
                              "dropout_forward")
        return as_array(out, "out of dropout_forward") != 0

    check_masks_are_drawn(kept, "dropout_forward")


@pytest.mark.task("dropout.forward")
def test_dropout_forward_test_mode_is_identity(student, rng):
    x = rng.standard_normal((20, 30))
    out, _ = expect_tuple(student.layers.dropout_forward(x, {"mode": "test", "p": 0.3}), 2, "dropout_forward")
    assert_close(out, x, name="out of dropout_forward in test mode (should equal x)", rtol=0, atol=0)


@pytest.mark.task("dropout.backward")
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_backward(student, reference, rng, mode):
    x = rng.standard_normal((10, 10)) + 10
    # The mask is the submission's to draw: in train mode its gradient is tied to the mask it drew.
    keep = 0.2
    check_backward(student, reference, rng, "dropout_forward", "dropout_backward",
                   [x, {"mode": mode, "p": keep, "seed": 123}], [("dx", 0)],
                   behaviour=InvertedDropout(keep, DROPOUT_OTHER_READING) if mode == "train" else None)


# -- batch normalization ---------------------------------------------------------------------------

@pytest.mark.task("batchnorm.forward")
@pytest.mark.parametrize("N,D", [(200, 3), (4, 5), (2, 1)])
def test_batchnorm_forward_train(student, reference, rng, N, D):
    x = 5 * rng.standard_normal((N, D)) + 12
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    bn_param = {"mode": "train", "running_mean": rng.standard_normal(D), "running_var": rng.random(D) + 0.5}
    args = (x, gamma, beta, bn_param)
    record = inspect_call(student.layers.batchnorm_forward, *args)
    out, _ = expect_tuple(record.result, 2, "batchnorm_forward")
    expected = inspect_call(reference.layers.batchnorm_forward, *args)
    assert_close(out, expected.result[0], name="out of batchnorm_forward in train mode")
    for key in ("running_mean", "running_var"):
        assert_close(record.args[3].get(key), expected.args[3][key],
                     name=f"bn_param[{key!r}] after batchnorm_forward (momentum * running + (1 - momentum) * batch)")
    for index, parameter in PARAMETERS["batchnorm_forward"].items():
        assert_true(not changed_in_place(args[index], record.args[index]),
                    f"batchnorm_forward changed {parameter} in place: {parameter} belongs to the caller (a model keeps "
                    "its parameters there), so every forward pass would change the model")


@pytest.mark.task("batchnorm.forward")
def test_batchnorm_forward_output_statistics(student, rng):
    N, D = 500, 4
    x = 3 * rng.standard_normal((N, D)) - 7
    gamma, beta = np.array([1.0, 2.0, 3.0, 0.5]), np.array([0.0, -1.0, 4.0, 11.0])
    out, _ = expect_tuple(student.layers.batchnorm_forward(x, gamma, beta, {"mode": "train"}), 2, "batchnorm_forward")
    out = np.asarray(out)
    assert_close(out.mean(axis=0), beta, name="per-feature mean of batchnorm_forward's output (should be beta)",
                 atol=1e-6)
    assert_close(out.std(axis=0), gamma, name="per-feature std of batchnorm_forward's output (should be gamma)",
                 rtol=1e-3)


@pytest.mark.task("batchnorm.forward")
def test_batchnorm_forward_test_mode_uses_running_averages(student, reference, rng):
    N, D = 6, 5
    x = rng.standard_normal((N, D)) * 2 + 1
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    bn_param = {"mode": "test", "running_mean": rng.standard_normal(D), "running_var": rng.random(D) + 0.5}
    forward_matches(student.layers.batchnorm_forward, reference.layers.batchnorm_forward, (x, gamma, beta, bn_param),
                    "batchnorm_forward in test mode", kept_by_caller=PARAMETERS["batchnorm_forward"])


def _batchnorm_args(rng, N=4, D=5):
    return [4 * rng.standard_normal((N, D)) + 10, rng.standard_normal(D), rng.standard_normal(D), {"mode": "train"}]


@pytest.mark.task("batchnorm.backward")
@pytest.mark.parametrize("N,D", [(4, 5), (30, 10)])
def test_batchnorm_backward(student, reference, rng, N, D):
    check_backward(student, reference, rng, "batchnorm_forward", "batchnorm_backward", _batchnorm_args(rng, N, D),
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


@pytest.mark.task("batchnorm.backward_alt")
@pytest.mark.parametrize("N,D", [(4, 5), (30, 10)])
def test_batchnorm_backward_alt(student, reference, rng, N, D):
    check_backward(student, reference, rng, "batchnorm_forward", "batchnorm_backward_alt", _batchnorm_args(rng, N, D),
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


# -- layer normalization ---------------------------------------------------------------------------

@pytest.mark.task("layernorm.forward")
@pytest.mark.parametrize("N,D", [(4, 5), (1, 7), (50, 3)])
def test_layernorm_forward(student, reference, rng, N, D):
    args = (3 * rng.standard_normal((N, D)) + 2, rng.standard_normal(D), rng.standard_normal(D), {})
    forward_matches(student.layers.layernorm_forward, reference.layers.layernorm_forward, args, "layernorm_forward",
                    kept_by_caller=PARAMETERS["layernorm_forward"])


@pytest.mark.task("layernorm.backward")
@pytest.mark.parametrize("N,D", [(4, 5), (20, 12)])
def test_layernorm_backward(student, reference, rng, N, D):
    args = [3 * rng.standard_normal((N, D)) + 2, rng.standard_normal(D), rng.standard_normal(D), {}]
    check_backward(student, reference, rng, "layernorm_forward", "layernorm_backward", args,
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


# -- convolution -----------------------------------------------------------------------------------

CONV_CASES = [
    # x shape, w shape, stride, pad
    ((2, 3, 4, 4), (3, 3, 4, 4), 2, 1),
    ((2, 3, 5, 7), (4, 3, 3, 2), 1, 0),   # non-square image and filters, no padding
    ((1, 2, 7, 6), (2, 2, 3, 3), 3, 2),   # a batch of one, larger padding and stride
]


@pytest.mark.task("conv.forward")
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_conv_forward(student, reference, rng, x_shape, w_shape, stride, pad):
    args = (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]),
            {"stride": stride, "pad": pad})
    forward_matches(student.layers.conv_forward_naive, reference.layers.conv_forward_naive, args, "conv_forward_naive",
                    kept_by_caller=PARAMETERS["conv_forward_naive"])


@pytest.mark.task("conv.backward")
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_conv_backward(student, reference, rng, x_shape, w_shape, stride, pad):
    args = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]),
            {"stride": stride, "pad": pad}]
    check_backward(student, reference, rng, "conv_forward_naive", "conv_backward_naive", args,
                   [("dx", 0), ("dw", 1), ("db", 2)])


# -- max pooling -----------------------------------------------------------------------------------

POOL_CASES = [
    ((2, 3, 4, 4), 2, 2, 2),
    ((2, 2, 5, 7), 3, 2, 1),   # overlapping windows, non-square image and window
    ((1, 1, 6, 6), 2, 2, 1),   # overlapping windows, a batch of one
]


@pytest.mark.task("max_pool.forward")
@pytest.mark.parametrize("x_shape,height,width,stride", POOL_CASES)
def test_max_pool_forward(student, reference, rng, x_shape, height, width, stride):
    args = (distinct(rng, x_shape), {"pool_height": height, "pool_width": width, "stride": stride})
    forward_matches(student.layers.max_pool_forward_naive, reference.layers.max_pool_forward_naive, args,
                    "max_pool_forward_naive", kept_by_caller=PARAMETERS["max_pool_forward_naive"])


@pytest.mark.task("max_pool.backward")
@pytest.mark.parametrize("x_shape,height,width,stride", POOL_CASES)
def test_max_pool_backward(student, reference, rng, x_shape, height, width, stride):
    args = [distinct(rng, x_shape), {"pool_height": height, "pool_width": width, "stride": stride}]
    check_backward(student, reference, rng, "max_pool_forward_naive", "max_pool_backward_naive", args, [("dx", 0)])


@pytest.mark.task("max_pool.backward")
def test_max_pool_backward_routes_each_tie_to_the_maxima(student):
    """Where elements tie for a window's maximum, the docstring lets the gradient go to any one of them
    or be shared among them: every routing that is a subgradient of max passes."""
    x = np.array([[[[3.0, 1.0, 2.0, 2.0, 5.0, 1.0],
                    [3.0, 0.0, 2.0, 2.0, 0.0, 2.0]]]])  # (1, 1, 2, 6): ties of 2, of 4, and none
    dout = np.array([[[[1.0, -10.0, 4.0]]]])
    out, cache = expect_tuple(student.layers.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2,
                                                                        "stride": 2}), 2, "max_pool_forward_naive")
    dx = as_array(student.layers.max_pool_backward_naive(dout, cache), "dx of max_pool_backward_naive")
    assert_true(dx.shape == x.shape, f"dx of max_pool_backward_naive: expected shape {x.shape}, got {dx.shape}")
    for j in range(3):
        cols = slice(2 * j, 2 * j + 2)
        window, routed, upstream = x[0, 0, :, cols], dx[0, 0, :, cols], dout[0, 0, 0, j]
        maxima = window == window.max()
        where = f"dx of max_pool_backward_naive in the window x[0, 0, 0:2, {cols.start}:{cols.stop}]"
        assert_true(np.allclose(routed[~maxima], 0, atol=1e-12),
                    f"{where}: an element that is not the window's maximum got gradient {routed[~maxima]}")
        shares = routed[maxima] / upstream
        assert_true(np.all(shares >= -1e-9) and abs(shares.sum() - 1) < 1e-9,
                    f"{where}, where {int(maxima.sum())} elements tie for the maximum: they got {routed[maxima]}, "
                    f"which add up to {routed[maxima].sum():g}, but the window's upstream gradient is {upstream:g}; "
                    "route it to one of them (any one) or share it among them")


# -- spatial normalization -------------------------------------------------------------------------

@pytest.mark.task("spatial_batchnorm.forward")
@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_forward(student, reference, rng, mode):
    N, C, H, W = 2, 3, 4, 5
    bn_param = {"mode": mode, "running_mean": rng.standard_normal(C), "running_var": rng.random(C) + 0.5}
    args = (4 * rng.standard_normal((N, C, H, W)) + 10, rng.standard_normal(C), rng.standard_normal(C), bn_param)
    record = inspect_call(student.layers.spatial_batchnorm_forward, *args)
    out, _ = expect_tuple(record.result, 2, "spatial_batchnorm_forward")
    expected = inspect_call(reference.layers.spatial_batchnorm_forward, *args)
    assert_close(out, expected.result[0], name=f"out of spatial_batchnorm_forward in {mode} mode")
    if mode == "train":
        for key in ("running_mean", "running_var"):
            assert_close(record.args[3].get(key), expected.args[3][key],
                         name=f"bn_param[{key!r}] after spatial_batchnorm_forward")


@pytest.mark.task("spatial_batchnorm.backward")
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 3)])
def test_spatial_batchnorm_backward(student, reference, rng, shape):
    C = shape[1]
    args = [4 * rng.standard_normal(shape) + 10, rng.standard_normal(C), rng.standard_normal(C), {"mode": "train"}]
    check_backward(student, reference, rng, "spatial_batchnorm_forward", "spatial_batchnorm_backward", args,
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


@pytest.mark.task("spatial_groupnorm.forward")
@pytest.mark.parametrize("shape,G", [((2, 6, 4, 5), 2), ((1, 4, 3, 3), 4), ((3, 6, 2, 2), 1)])
def test_spatial_groupnorm_forward(student, reference, rng, shape, G):
    C = shape[1]
    args = (4 * rng.standard_normal(shape) + 10, rng.standard_normal((1, C, 1, 1)), rng.standard_normal((1, C, 1, 1)),
            G, {})
    forward_matches(student.layers.spatial_groupnorm_forward, reference.layers.spatial_groupnorm_forward, args,
                    "spatial_groupnorm_forward", kept_by_caller=PARAMETERS["spatial_groupnorm_forward"])


@pytest.mark.task("spatial_groupnorm.backward")
@pytest.mark.parametrize("shape,G", [((2, 6, 4, 5), 2), ((1, 4, 3, 3), 4)])
def test_spatial_groupnorm_backward(student, reference, rng, shape, G):
    C = shape[1]
    args = [4 * rng.standard_normal(shape) + 10, rng.standard_normal((1, C, 1, 1)), rng.standard_normal((1, C, 1, 1)),
            G, {}]
    check_backward(student, reference, rng, "spatial_groupnorm_forward", "spatial_groupnorm_backward", args,
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


# -- what a backward pass costs ---------------------------------------------------------------------

def cost_cases():
    """(task, forward, backward, input builder, what the gradients are of) on inputs of 10^5 to 4 x 10^5
    elements, where a gradient measured by finite differences takes minutes (see check_backward_cost):
    it runs the forward pass twice per element, each time on all of them. Elements that share no output
    can be measured together (all of ReLU's at once; one per column of batch normalization), so the
    shapes make the groups many where a layer allows: the axis a layer couples its inputs along is the
    long one. Benchmarks/bench_measured_gradients.py shows both costs per check."""
    def affine(rng):
        # x's elements couple along a row, w's along a column: D = 20,000 of each to measure; N * D * M =
        # 2 x 10^6, so that even loops over every product finish in seconds
        return [rng.standard_normal((10, 20000)), rng.standard_normal((20000, 10)), rng.standard_normal(10)]

    def elementwise(rng):
        return [away_from_zero(rng, (250, 400))]

    def dropout(rng):
        return [rng.standard_normal((250, 400)), {"mode": "train", "p": 0.5, "seed": 7}]

    def normalized(rng):
        # Normalized over the batch: 50,000 examples of 2 features
        return [4 * rng.standard_normal((50000, 2)) + 10, rng.standard_normal(2), rng.standard_normal(2),
                {"mode": "train"}]

    def layer_normalized(rng):
        # Normalized over the features: 2 examples of 50,000
        return [4 * rng.standard_normal((2, 50000)) + 10, rng.standard_normal(50000), rng.standard_normal(50000), {}]

    def conv(rng):
        # Channels rather than examples or filters: elements for a measured gradient, few loops for a naive one
        return [rng.standard_normal((2, 8, 32, 32)), rng.standard_normal((8, 8, 3, 3)), rng.standard_normal(8),
                {"stride": 1, "pad": 1}]

    def pool(rng):
        return [distinct(rng, (4, 16, 32, 32)), {"pool_height": 2, "pool_width": 2, "stride": 2}]

    def spatial(rng):
        # Normalized per channel over N, H and W: 2 channels of 32 x 32 x 48
        return [4 * rng.standard_normal((32, 2, 32, 48)) + 10, rng.standard_normal(2), rng.standard_normal(2),
                {"mode": "train"}]

    def grouped(rng):
        # Normalized per example and group over its channels, H and W: 2 groups of 4 x 96 x 96
        return [4 * rng.standard_normal((2, 8, 96, 96)) + 10, rng.standard_normal((1, 8, 1, 1)),
                rng.standard_normal((1, 8, 1, 1)), 2, {}]

    cases = [("affine", "affine", affine, "x, w and b"), ("relu", "relu", elementwise, "x"),
             ("sigmoid", "sigmoid", elementwise, "x"), ("dropout", "dropout", dropout, "x"),
             ("batchnorm", "batchnorm", normalized, "x, gamma and beta"),
             ("batchnorm.backward_alt", "batchnorm", normalized, "x, gamma and beta"),
             ("layernorm", "layernorm", layer_normalized, "x, gamma and beta"),
             ("conv", "conv", conv, "x, w and b"), ("max_pool", "max_pool", pool, "x"),
             ("spatial_batchnorm", "spatial_batchnorm", spatial, "x, gamma and beta"),
             ("spatial_groupnorm", "spatial_groupnorm", grouped, "x, gamma and beta")]
    params = []
    for task, layer, make, names in cases:
        suffix = "_naive" if layer in ("conv", "max_pool") else ""
        backward = f"{layer}_backward_alt" if task.endswith("_alt") else f"{layer}_backward{suffix}"
        task_id = task if "." in task else f"{task}.backward"
        params.append(pytest.param(f"{layer}_forward{suffix}", backward, make, names, marks=pytest.mark.task(task_id),
                                   id=task_id))
    return params


@pytest.mark.parametrize("forward,backward,make_args,names", cost_cases())
def test_backward_costs_about_what_its_forward_pass_costs(student, reference, rng, forward, backward, make_args,
                                                          names):
    args = make_args(rng)
    if forward == "dropout_forward":  # the mask is the submission's: dx = dout * out / x whatever it drew
        dout = rng.standard_normal(args[0].shape)
        expected = LargeExpectation(dout, lambda out: [dout * as_array(out, "out of dropout_forward") / args[0]])
    else:
        expected = reference_expectation(getattr(reference.layers, forward), getattr(reference.layers, backward),
                                         args, rng)
    check_backward_cost(getattr(student.layers, forward), getattr(student.layers, backward), args,
                        input_names=names, expected=expected)


@pytest.mark.parametrize("loss_name", [pytest.param(name, marks=pytest.mark.task(f"{name}.gradient"))
                                       for name in ("softmax_loss", "svm_loss")])
def test_loss_gradient_costs_about_what_the_loss_costs(student, reference, rng, loss_name):
    # A row's scores couple through its loss only: 50,000 classes, each measured across the 2 rows at once
    N, C = 2, 50000
    args = [rng.standard_normal((N, C)), rng.integers(0, C, N)]
    loss = getattr(reference.layers, loss_name)
    check_loss_cost(getattr(student.layers, loss_name), args, input_names="x",
                    expected=expect_tuple(loss(*args), 2, loss_name) if answers_live(loss) else None)


# -- float32 ----------------------------------------------------------------------------------------

def float32_cases():
    """FullyConnectedNet computes in float32 by default, so every forward pass it uses must too."""
    def affine(rng):
        return rng.standard_normal((3, 2, 4)), rng.standard_normal((8, 5)), rng.standard_normal(5)

    def relu(rng):
        return (away_from_zero(rng, (4, 6)),)

    def batchnorm(rng):
        return 3 * rng.standard_normal((10, 4)) + 2, rng.standard_normal(4), rng.standard_normal(4), {"mode": "train"}

    def layernorm(rng):
        return 3 * rng.standard_normal((5, 6)) + 2, rng.standard_normal(6), rng.standard_normal(6), {}

    def dropout(rng):
        return rng.standard_normal((4, 5)), {"mode": "test", "p": 0.5}

    cases = [("affine", "affine_forward", affine), ("relu", "relu_forward", relu),
             ("batchnorm", "batchnorm_forward", batchnorm), ("layernorm", "layernorm_forward", layernorm),
             ("dropout", "dropout_forward", dropout)]
    return [pytest.param(function, make, marks=pytest.mark.task(f"{task}.forward"), id=function)
            for task, function, make in cases]


@pytest.mark.parametrize("function,make_args", float32_cases())
def test_forward_in_float32(student, reference, rng, function, make_args):
    args = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in make_args(rng))
    forward_matches(getattr(student.layers, function), getattr(reference.layers, function), args,
                    f"{function} on float32 inputs", rtol=1e-4, atol=1e-5, kept_by_caller=PARAMETERS[function])
