"""Checks of layers.py on tensors: reference outputs for every forward pass and loss, on CPU and
(where there is one) CUDA, in float64 and float32, with the parameters left unchanged; for every
backward pass, the forward pass's output at the same inputs equal to the reference's, then gradients
equal to the numeric gradients of the submission's own forward pass and to the reference's. An input x
changed in place fails only where it breaks the backward pass that reads it from the cache."""

import itertools

import numpy as np
import pytest
import torch

from grader.checking import (answers_live, as_array, assert_close, assert_true, away_from_zero,
                            check_backward_cost, check_layer_backward, check_loss_cost, check_loss_gradient,
                            LargeExpectation, reference_expectation, check_masks_are_drawn, CheckFailed, distinct, expect_tuple,
                            forward_matches as shared_forward_matches, hinge_safe_scores, inspect_call,
                            InvertedDropout, NonContiguous, ReferenceLayer)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def t(array, dtype=torch.float64, device="cpu"):
    """A tensor built by the grader from a NumPy array the check drew."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype=dtype, device=device)


# The arguments of each forward pass that are a model's parameters (by index), which the model keeps
# using: a forward pass may change x in place (the backward checks see whether its cache still holds
# what the backward pass needs), never these.
PARAMETERS = {"Linear": {1: "w", 2: "b"}, "Linear_ReLU": {1: "w", 2: "b"}, "BatchNorm": {1: "gamma", 2: "beta"},
              "Conv": {1: "w", 2: "b"}}


def forward_matches(student, reference, layer, args, *, name=None, **tolerances):
    """`layer.forward(*args) -> (out, cache)`: out equal to the reference's, the parameters unchanged."""
    return shared_forward_matches(getattr(student.layers, layer).forward, getattr(reference.layers, layer).forward,
                                  args, name or f"{layer}.forward", kept_by_caller=PARAMETERS.get(layer, {}),
                                  **tolerances)


def check_backward(student, reference, rng, layer, args, gradients, backward="backward", behaviour=None):
    """The submission's `layer.backward` at `args`, tied to the reference's layer (or to `behaviour`,
    where the contract leaves the output to the submission, as a dropout mask)."""
    ours, theirs = getattr(student.layers, layer), getattr(reference.layers, layer)
    check_layer_backward(ours.forward, getattr(ours, backward), args, gradients=gradients, rng=rng,
                         reference=behaviour or ReferenceLayer(theirs.forward, getattr(theirs, backward)))


def layer_cases():
    """(class, task, input builder) for layers whose forward takes (x, ...params) and has a reference."""
    def linear(rng, dtype, device):
        return (t(rng.standard_normal((3, 2, 5)), dtype, device), t(rng.standard_normal((10, 4)), dtype, device),
                t(rng.standard_normal(4), dtype, device))

    def relu(rng, dtype, device):
        return (t(away_from_zero(rng, (4, 6)), dtype, device),)

    def batchnorm(rng, dtype, device):
        return (t(3 * rng.standard_normal((10, 4)) + 2, dtype, device), t(rng.standard_normal(4), dtype, device),
                t(rng.standard_normal(4), dtype, device), {"mode": "train"})

    def conv(rng, dtype, device):
        return (t(rng.standard_normal((2, 3, 5, 7)), dtype, device), t(rng.standard_normal((4, 3, 3, 2)), dtype, device),
                t(rng.standard_normal(4), dtype, device), {"stride": 2, "pad": 1})

    def max_pool(rng, dtype, device):
        return (t(distinct(rng, (2, 2, 5, 7)), dtype, device), {"pool_height": 3, "pool_width": 2, "stride": 1})

    return [("Linear", "linear", linear), ("ReLU", "relu", relu), ("BatchNorm", "batchnorm", batchnorm),
            ("Conv", "conv", conv), ("MaxPool", "max_pool", max_pool)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("layer,make_args", [pytest.param(layer, make, marks=pytest.mark.task(f"{task}.forward"),
                                                           id=layer) for layer, task, make in layer_cases()])
def test_forward_keeps_dtype_and_device(student, reference, rng, layer, make_args, dtype, device):
    args = make_args(rng, dtype, device)
    loose = dtype == torch.float32
    out = forward_matches(student, reference, layer, args,
                          name=f"{layer}.forward on {device} {str(dtype).removeprefix('torch.')}",
                          rtol=1e-4 if loose else 1e-6, atol=1e-5 if loose else 1e-8, check_dtype=True)
    assert_true(str(out.device).split(":")[0] == device,
                f"{layer}.forward returned a tensor on {out.device} for inputs on {device}; create new tensors "
                "with device=x.device")


@pytest.mark.parametrize("layer,make_args", [pytest.param(layer, make, marks=pytest.mark.task(f"{task}.forward"),
                                                           id=layer) for layer, task, make in layer_cases()
                                              if layer != "Linear"])
def test_forward_takes_non_contiguous_input(student, reference, rng, layer, make_args):
    """The stubs say x may be a view (a transpose, a permute) for these layers, where x.view() fails and
    x.reshape() works; Linear's x is contiguous."""
    x, *rest = make_args(rng, torch.float64, "cpu")
    student_out, _ = expect_tuple(getattr(student.layers, layer).forward(NonContiguous(x), *rest), 2,
                                  f"{layer}.forward")
    expected, _ = getattr(reference.layers, layer).forward(x, *rest)
    assert_close(student_out, expected, name=f"out of {layer}.forward on a non-contiguous x")


# -- linear, relu ---------------------------------------------------------------------------------

LINEAR_SHAPES = [((2, 4, 5, 6), 3), ((1, 7), 4), ((3, 2, 5), 1)]


@pytest.mark.task("linear.forward")
@pytest.mark.parametrize("x_shape,M", LINEAR_SHAPES)
def test_linear_forward(student, reference, rng, x_shape, M):
    D = int(np.prod(x_shape[1:]))
    args = (t(rng.standard_normal(x_shape)), t(rng.standard_normal((D, M))), t(rng.standard_normal(M)))
    forward_matches(student, reference, "Linear", args)


@pytest.mark.task("linear.backward")
@pytest.mark.parametrize("x_shape,M", LINEAR_SHAPES)
def test_linear_backward(student, reference, rng, x_shape, M):
    D = int(np.prod(x_shape[1:]))
    args = [t(rng.standard_normal(x_shape)), t(rng.standard_normal((D, M))), t(rng.standard_normal(M))]
    check_backward(student, reference, rng, "Linear", args, [("dx", 0), ("dw", 1), ("db", 2)])


@pytest.mark.task("relu.backward")
@pytest.mark.parametrize("shape", [(10, 10), (2, 3, 8, 8)])
def test_relu_backward(student, reference, rng, shape):
    check_backward(student, reference, rng, "ReLU", [t(away_from_zero(rng, shape))], [("dx", 0)])


@pytest.mark.task("linear_relu.forward")
def test_linear_relu_forward(student, reference, rng):
    args = (t(rng.standard_normal((4, 3, 2))), t(rng.standard_normal((6, 5))), t(rng.standard_normal(5)))
    forward_matches(student, reference, "Linear_ReLU", args)


@pytest.mark.task("linear_relu.backward")
def test_linear_relu_backward(student, reference, rng):
    args = [t(rng.standard_normal((4, 6))), t(rng.standard_normal((6, 5))), t(0.5 + rng.random(5))]
    check_backward(student, reference, rng, "Linear_ReLU", args, [("dx", 0), ("dw", 1), ("db", 2)])


# -- losses ---------------------------------------------------------------------------------------

LOSS_SHAPES = [(50, 10), (1, 5), (7, 3)]


@pytest.mark.parametrize("loss_name", [pytest.param(name, marks=pytest.mark.task(f"{name}.loss"))
                                       for name in ("softmax_loss", "svm_loss")])
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_loss_value(student, reference, rng, loss_name, N, C):
    x, y = t(3 * rng.standard_normal((N, C))), torch.from_numpy(rng.integers(C, size=N))
    loss, _ = expect_tuple(getattr(student.layers, loss_name)(x, y), 2, loss_name)
    expected, _ = getattr(reference.layers, loss_name)(x, y)
    assert_close(loss, expected, name=f"loss of {loss_name}")


@pytest.mark.task("softmax_loss.loss")
def test_softmax_loss_is_log_c_for_tiny_scores_and_stable_for_huge(student, reference, rng):
    N, C = 100, 10
    y = torch.from_numpy(rng.integers(C, size=N))
    loss, _ = expect_tuple(student.layers.softmax_loss(t(0.001 * rng.standard_normal((N, C))), y), 2, "softmax_loss")
    assert_close(loss, np.log(C), name="loss of softmax_loss for near-zero scores (should be about log C)", rtol=1e-2)
    huge = t(1000 * rng.standard_normal((N, C)))
    loss, dx = expect_tuple(student.layers.softmax_loss(huge, y), 2, "softmax_loss")
    dx = as_array(dx, "dx of softmax_loss")
    expected_dx = as_array(reference.layers.softmax_loss(huge, y)[1], "the reference's dx")
    loss_finite = bool(np.isfinite(as_array(loss, "loss of softmax_loss")).all())
    # A dx that is right there means the probabilities were computed stably (the row's maximum
    # subtracted, or torch.softmax): only the loss can then go wrong, by a log of probabilities that
    # underflowed to 0.
    dx_right = dx.shape == expected_dx.shape and np.allclose(dx, expected_dx, rtol=1e-6, atol=1e-8)
    assert_true(dx_right or loss_finite,
                "softmax_loss: scores of size 1000 give a loss of inf or NaN and a wrong dx: exp of such scores "
                "overflows; subtract each row's maximum before taking exp")
    assert_true(loss_finite,
                f"softmax_loss: scores of size 1000 give the loss {float(as_array(loss, 'loss').sum())}, though dx is "
                "right: the loss takes the log of probabilities that underflow to 0 (as log of torch.softmax does); "
                "compute the log-probabilities directly, as shifted - log(sum(exp(shifted))) with shifted = x - max "
                "of the row (log-sum-exp, or torch.log_softmax)")
    assert_true(bool(np.isfinite(dx).all()), "softmax_loss: scores of size 1000 give a NaN or infinite dx: exp of "
                                            "such scores overflows; subtract each row's maximum before taking exp")


@pytest.mark.task("softmax_loss.gradient")
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_softmax_loss_gradient(student, reference, rng, N, C):
    x, y = t(rng.standard_normal((N, C))), torch.from_numpy(rng.integers(C, size=N))
    check_loss_gradient(student.layers.softmax_loss, x, y, name="softmax_loss", rng=rng,
                        reference=reference.layers.softmax_loss)


@pytest.mark.task("svm_loss.gradient")
@pytest.mark.parametrize("N,C", LOSS_SHAPES)
def test_svm_loss_gradient(student, reference, rng, N, C):
    y = rng.integers(C, size=N)
    check_loss_gradient(student.layers.svm_loss, t(hinge_safe_scores(rng, y, C)), torch.from_numpy(y),
                        name="svm_loss", rng=rng, reference=reference.layers.svm_loss)


# -- dropout (p is the probability of DROPPING a unit) ----------------------------------------------

@pytest.mark.task("dropout.forward")
@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_forward_drops_p_and_scales(student, rng, p):
    x = t(rng.standard_normal((500, 500)) + 10)
    out, _ = expect_tuple(student.layers.Dropout.forward(x, {"mode": "train", "p": p, "seed": 123}), 2,
                          "Dropout.forward")
    out, x = out.numpy(), x.numpy()
    dropped = float((out == 0).mean())
    kept = out != 0
    # CS231n's reading: p the probability of KEEPING a unit, kept units divided by p.
    keeps_p = abs(dropped - (1 - p)) < 0.01 or (kept.any() and np.allclose(out[kept], x[kept] / p))
    assert_true(not keeps_p, f"Dropout.forward in train mode with p={p} dropped {dropped:.3f} of the units: your layer "
                             "treats p as the probability of keeping a unit (CS231n's convention); in this assignment "
                             "p is the probability of DROPPING a unit, and kept units are divided by 1 - p")
    assert_true(abs(dropped - p) < 0.01, f"Dropout.forward in train mode dropped {dropped:.3f} of the units with "
                                         f"p={p}; p is the probability of DROPPING a unit")
    assert_close(out[kept], x[kept] / (1 - p), name="kept units of Dropout.forward (should be x / (1 - p))")


@pytest.mark.task("dropout.forward")
def test_dropout_forward_draws_its_masks_at_random(student):
    x = t(np.full((10, 100), 2.0))

    def kept(seed):
        out, _ = expect_tuple(student.layers.Dropout.forward(x, {"mode": "train", "p": 0.5, "seed": seed}), 2,
                              "Dropout.forward")
        return as_array(out, "out of Dropout.forward") != 0

    check_masks_are_drawn(kept, "Dropout.forward")


@pytest.mark.task("dropout.forward")
def test_dropout_forward_test_mode_is_identity(student, rng):
    x = t(rng.standard_normal((20, 30)))
    out, _ = expect_tuple(student.layers.Dropout.forward(x, {"mode": "test", "p": 0.3}), 2, "Dropout.forward")
    assert_close(out, x, name="out of Dropout.forward in test mode (should equal x)", rtol=0, atol=0)


@pytest.mark.task("dropout.backward")
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_backward(student, reference, rng, mode):
    x = t(rng.standard_normal((10, 10)) + 10)
    # The mask is the submission's to draw: in train mode its gradient is tied to the mask it drew.
    drop = 0.2
    check_backward(student, reference, rng, "Dropout", [x, {"mode": mode, "p": drop, "seed": 123}], [("dx", 0)],
                   behaviour=InvertedDropout(1 - drop) if mode == "train" else None)


# -- batch normalization ---------------------------------------------------------------------------

@pytest.mark.task("batchnorm.forward")
@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("N,D", [(200, 3), (4, 5), (2, 1)])
def test_batchnorm_forward(student, reference, rng, N, D, mode):
    x = t(5 * rng.standard_normal((N, D)) + 12)
    gamma, beta = t(rng.standard_normal(D)), t(rng.standard_normal(D))
    bn_param = {"mode": mode, "running_mean": t(rng.standard_normal(D)), "running_var": t(rng.random(D) + 0.5)}
    record = inspect_call(student.layers.BatchNorm.forward, x, gamma, beta, bn_param)
    out, _ = expect_tuple(record.result, 2, "BatchNorm.forward")
    expected = inspect_call(reference.layers.BatchNorm.forward, x, gamma, beta, bn_param)
    assert_close(out, expected.result[0], name=f"out of BatchNorm.forward in {mode} mode")
    for key in ("running_mean", "running_var"):
        assert_close(record.args[3].get(key), expected.args[3][key],
                     name=f"bn_param[{key!r}] after BatchNorm.forward in {mode} mode")


@pytest.mark.task("batchnorm.forward")
def test_batchnorm_forward_output_statistics(student, rng):
    x = t(3 * rng.standard_normal((500, 4)) - 7)
    gamma, beta = t(np.array([1.0, 2.0, 3.0, 0.5])), t(np.array([0.0, -1.0, 4.0, 11.0]))
    out, _ = expect_tuple(student.layers.BatchNorm.forward(x, gamma, beta, {"mode": "train"}), 2, "BatchNorm.forward")
    assert_close(out.mean(dim=0), beta, name="per-feature mean of BatchNorm.forward's output (should be beta)",
                 atol=1e-6)
    assert_close(out.std(dim=0, unbiased=False), gamma,
                 name="per-feature std of BatchNorm.forward's output (should be gamma)", rtol=1e-3)


def _batchnorm_args(rng, N, D):
    return [t(4 * rng.standard_normal((N, D)) + 10), t(rng.standard_normal(D)), t(rng.standard_normal(D)),
            {"mode": "train"}]


@pytest.mark.parametrize("backward", [pytest.param("backward", marks=pytest.mark.task("batchnorm.backward")),
                                      pytest.param("backward_alt", marks=pytest.mark.task("batchnorm.backward_alt"))])
@pytest.mark.parametrize("N,D", [(4, 5), (30, 10)])
def test_batchnorm_backward(student, reference, rng, backward, N, D):
    check_backward(student, reference, rng, "BatchNorm", _batchnorm_args(rng, N, D),
                   [("dx", 0), ("dgamma", 1), ("dbeta", 2)], backward=backward)


@pytest.mark.task("spatial_batchnorm.forward")
@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_forward(student, reference, rng, mode):
    N, C, H, W = 2, 3, 4, 5
    bn_param = {"mode": mode, "running_mean": t(rng.standard_normal(C)), "running_var": t(rng.random(C) + 0.5)}
    args = (t(4 * rng.standard_normal((N, C, H, W)) + 10), t(rng.standard_normal(C)), t(rng.standard_normal(C)),
            bn_param)
    record = inspect_call(student.layers.SpatialBatchNorm.forward, *args)
    expected = inspect_call(reference.layers.SpatialBatchNorm.forward, *args)
    assert_close(expect_tuple(record.result, 2, "SpatialBatchNorm.forward")[0], expected.result[0],
                 name=f"out of SpatialBatchNorm.forward in {mode} mode")
    for key in ("running_mean", "running_var"):
        assert_close(record.args[3].get(key), expected.args[3][key], name=f"bn_param[{key!r}] after SpatialBatchNorm.forward")


@pytest.mark.task("spatial_batchnorm.backward")
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 3)])
def test_spatial_batchnorm_backward(student, reference, rng, shape):
    C = shape[1]
    args = [t(4 * rng.standard_normal(shape) + 10), t(rng.standard_normal(C)), t(rng.standard_normal(C)),
            {"mode": "train"}]
    check_backward(student, reference, rng, "SpatialBatchNorm", args, [("dx", 0), ("dgamma", 1), ("dbeta", 2)])


# -- convolution and pooling -----------------------------------------------------------------------

CONV_CASES = [
    ((2, 3, 4, 4), (3, 3, 4, 4), 2, 1),
    ((2, 3, 5, 7), (4, 3, 3, 2), 1, 0),   # non-square image and filters, no padding
    ((1, 2, 7, 6), (2, 2, 3, 3), 3, 2),   # a batch of one, larger padding and stride
]


@pytest.mark.task("conv.forward")
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_conv_forward(student, reference, rng, x_shape, w_shape, stride, pad):
    args = (t(rng.standard_normal(x_shape)), t(rng.standard_normal(w_shape)), t(rng.standard_normal(w_shape[0])),
            {"stride": stride, "pad": pad})
    forward_matches(student, reference, "Conv", args)


@pytest.mark.task("conv.forward")
def test_conv_forward_matches_torch(student, rng):
    x, w, b = t(rng.standard_normal((2, 3, 6, 5))), t(rng.standard_normal((4, 3, 3, 3))), t(rng.standard_normal(4))
    out, _ = expect_tuple(student.layers.Conv.forward(x, w, b, {"stride": 2, "pad": 1}), 2, "Conv.forward")
    expected = torch.nn.functional.conv2d(x, w, b, stride=2, padding=1)
    assert_close(out, expected, name="out of Conv.forward (against torch.nn.functional.conv2d)")


@pytest.mark.task("conv.backward")
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", CONV_CASES)
def test_conv_backward(student, reference, rng, x_shape, w_shape, stride, pad):
    args = [t(rng.standard_normal(x_shape)), t(rng.standard_normal(w_shape)), t(rng.standard_normal(w_shape[0])),
            {"stride": stride, "pad": pad}]
    check_backward(student, reference, rng, "Conv", args, [("dx", 0), ("dw", 1), ("db", 2)])


POOL_CASES = [((2, 3, 4, 4), 2, 2, 2), ((2, 2, 5, 7), 3, 2, 1), ((1, 1, 6, 6), 2, 2, 1)]


@pytest.mark.task("max_pool.forward")
@pytest.mark.parametrize("x_shape,height,width,stride", POOL_CASES)
def test_max_pool_forward(student, reference, rng, x_shape, height, width, stride):
    args = (t(distinct(rng, x_shape)), {"pool_height": height, "pool_width": width, "stride": stride})
    forward_matches(student, reference, "MaxPool", args)


@pytest.mark.task("max_pool.backward")
@pytest.mark.parametrize("x_shape,height,width,stride", POOL_CASES)
def test_max_pool_backward(student, reference, rng, x_shape, height, width, stride):
    args = [t(distinct(rng, x_shape)), {"pool_height": height, "pool_width": width, "stride": stride}]
    check_backward(student, reference, rng, "MaxPool", args, [("dx", 0)])


def tie_routings(x, dout, height, width, stride):
    """Every dx a max pooling may return where elements tie: each window's gradient on one of its
    maxima (a subgradient), overlapping windows adding up. x of shape (H, W), one channel."""
    windows = []
    for i, j in np.ndindex(*dout.shape):
        window = x[i * stride:i * stride + height, j * stride:j * stride + width]
        maxima = zip(*np.nonzero(window == window.max()))
        windows.append([(i * stride + a, j * stride + b, dout[i, j]) for a, b in maxima])
    for choice in itertools.product(*windows):
        dx = np.zeros_like(x)
        for row, col, gradient in choice:
            dx[row, col] += gradient
        yield dx


@pytest.mark.task("max_pool.backward")
def test_max_pool_backward_routes_a_tie_to_one_maximum(student):
    x, dout = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]]), np.array([[1.0, 10.0]])
    out, cache = expect_tuple(student.layers.MaxPool.forward(t(x[None, None]), {"pool_height": 2, "pool_width": 2,
                                                                                "stride": 1}), 2, "MaxPool.forward")
    dx = as_array(student.layers.MaxPool.backward(t(dout[None, None]), cache), "dx of MaxPool.backward")
    valid = list(tie_routings(x, dout, 2, 2, 1))
    if dx.shape != (1, 1, *x.shape) or not any(np.array_equal(dx[0, 0], v) for v in valid):
        raise CheckFailed("dx of MaxPool.backward where elements tie for the maximum: each window's gradient must go "
                          "to exactly one of its maxima (any one), overlapping windows adding up",
                          f"x:\n{x}\ndout: {dout}\ngot dx:\n{np.squeeze(dx)}\nfor instance (first maxima):\n{valid[0]}")


# -- the provided sandwiches, built on the student's ReLU and SpatialBatchNorm ---------------------

@pytest.mark.task("sandwich.backward")
def test_conv_relu_pool_backward(student, reference, rng):
    args = [t(rng.standard_normal((2, 3, 8, 8))), t(rng.standard_normal((3, 3, 3, 3))), t(rng.standard_normal(3)),
            {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}]
    check_backward(student, reference, rng, "Conv_ReLU_Pool", args, [("dx", 0), ("dw", 1), ("db", 2)])


@pytest.mark.task("sandwich.backward")
def test_conv_batchnorm_relu_pool_backward(student, reference, rng):
    args = [t(rng.standard_normal((2, 3, 8, 8))), t(rng.standard_normal((3, 3, 3, 3))), t(rng.standard_normal(3)),
            t(1 + 0.1 * rng.standard_normal(3)), t(0.1 * rng.standard_normal(3)), {"stride": 1, "pad": 1},
            {"mode": "train"}, {"pool_height": 2, "pool_width": 2, "stride": 2}]
    check_backward(student, reference, rng, "Conv_BatchNorm_ReLU_Pool", args,
                   [("dx", 0), ("dw", 1), ("db", 2), ("dgamma", 3), ("dbeta", 4)])


# -- what a backward pass costs ---------------------------------------------------------------------

def cost_cases():
    """(task, layer, backward, input builder, what the gradients are of) on inputs of 10^4 to 3 x 10^5
    elements, where a gradient measured by finite differences takes minutes, the axis a layer couples
    its inputs along the long one (see a1's cost_cases; benchmarks/bench_measured_gradients.py).
    The convolution is left out: a naive convolution written as scalar loops over tensors is slow
    enough that no input size tells its honest backward pass from a measured one by time alone."""
    def linear(rng):
        # x's elements couple along a row, w's along a column: D = 20,000 of each to measure; N * D * M =
        # 10^6, so that even loops over every product finish in seconds
        return [t(rng.standard_normal((5, 20000))), t(rng.standard_normal((20000, 10))), t(rng.standard_normal(10))]

    def elementwise(rng):
        return [t(away_from_zero(rng, (500, 400)))]

    def dropout(rng):
        return [t(rng.standard_normal((500, 400))), {"mode": "train", "p": 0.5, "seed": 7}]

    def normalized(rng):
        # Normalized over the batch: 50,000 examples of 2 features
        return [t(4 * rng.standard_normal((50000, 2)) + 10), t(rng.standard_normal(2)), t(rng.standard_normal(2)),
                {"mode": "train"}]

    def spatial(rng):
        # Normalized per channel over N, H and W: 2 channels of 32 x 32 x 48
        return [t(4 * rng.standard_normal((32, 2, 32, 48)) + 10), t(rng.standard_normal(2)),
                t(rng.standard_normal(2)), {"mode": "train"}]

    def pool(rng):
        return [t(distinct(rng, (4, 16, 32, 32))), {"pool_height": 2, "pool_width": 2, "stride": 2}]

    cases = [("linear.backward", "Linear", "backward", linear, "x, w and b"),
             ("relu.backward", "ReLU", "backward", elementwise, "x"),
             ("linear_relu.backward", "Linear_ReLU", "backward", linear, "x, w and b"),
             ("dropout.backward", "Dropout", "backward", dropout, "x"),
             ("batchnorm.backward", "BatchNorm", "backward", normalized, "x, gamma and beta"),
             ("batchnorm.backward_alt", "BatchNorm", "backward_alt", normalized, "x, gamma and beta"),
             ("spatial_batchnorm.backward", "SpatialBatchNorm", "backward", spatial, "x, gamma and beta"),
             ("max_pool.backward", "MaxPool", "backward", pool, "x")]
    return [pytest.param(layer, backward, make, names, marks=pytest.mark.task(task), id=task)
            for task, layer, backward, make, names in cases]


@pytest.mark.parametrize("layer,backward,make_args,names", cost_cases())
def test_backward_costs_about_what_its_forward_pass_costs(student, reference, rng, layer, backward, make_args, names):
    ours, theirs = getattr(student.layers, layer), getattr(reference.layers, layer)
    args = make_args(rng)
    if layer == "Dropout":  # the mask is the submission's: dx = dout * out / x whatever it drew
        dout = rng.standard_normal(tuple(args[0].shape))
        x = args[0].numpy()
        expected = LargeExpectation(dout, lambda out: [dout * as_array(out, "out of Dropout.forward") / x])
    else:
        expected = reference_expectation(theirs.forward, getattr(theirs, backward), args, rng)
    check_backward_cost(ours.forward, getattr(ours, backward), args, input_names=names, expected=expected)


@pytest.mark.parametrize("loss_name", [pytest.param(name, marks=pytest.mark.task(f"{name}.gradient"))
                                       for name in ("softmax_loss", "svm_loss")])
def test_loss_gradient_costs_about_what_the_loss_costs(student, reference, rng, loss_name):
    # A row's scores couple through its loss only: 50,000 classes, each measured across the 2 rows at once
    N, C = 2, 50000
    args = [t(rng.standard_normal((N, C))), torch.from_numpy(rng.integers(C, size=N))]
    loss = getattr(reference.layers, loss_name)
    check_loss_cost(getattr(student.layers, loss_name), args, input_names="x",
                    expected=expect_tuple(loss(*args), 2, loss_name) if answers_live(loss) else None)
