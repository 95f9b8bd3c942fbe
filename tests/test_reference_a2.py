"""The a2_cnn_torch reference: published notebook values, numeric gradients, optimizers, models.

The reference is loaded the way the harness overlays it: one package whose path lists
reference/a2_cnn_torch first and assignments/a2_cnn_torch second, so the reference's student
files sit next to the assignment's provided files (solver, training).
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grader.boundary.packages import install_package, uninstall_package
from mutants_a2 import MUTANTS, apply

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "reference" / "a2_cnn_torch"
ASSIGNMENT_DIR = ROOT / "assignments" / "a2_cnn_torch"
PACKAGE = "a2_cnn_torch_reference_under_test"
STUDENT_FILES = ("layers.py", "optim.py", "models.py")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def ref():
    install_package(PACKAGE, [REFERENCE_DIR, ASSIGNMENT_DIR])
    yield {
        name: importlib.import_module(f"{PACKAGE}.{name}")
        for name in ("layers", "optim", "models", "solver", "training")
    }
    uninstall_package(PACKAGE)


@pytest.fixture(scope="module")
def layers(ref):
    return ref["layers"]


@pytest.fixture(scope="module")
def optim(ref):
    return ref["optim"]


@pytest.fixture(scope="module")
def models(ref):
    return ref["models"]


def numeric_gradient(f, x, dout, h=1e-6):
    """Central-difference gradient of sum(f(x) * dout) with respect to x, element by element."""
    assert x.is_contiguous()
    grad = torch.zeros_like(x)
    flat, flat_grad = x.view(-1), grad.view(-1)
    for k in range(flat.numel()):
        old = flat[k].item()
        flat[k] = old + h
        plus = (f(x) * dout).sum().item()
        flat[k] = old - h
        minus = (f(x) * dout).sum().item()
        flat[k] = old
        flat_grad[k] = (plus - minus) / (2 * h)
    return grad


def linspace(start, stop, shape, dtype=torch.float64):
    return torch.linspace(start, stop, steps=math.prod(shape), dtype=dtype).reshape(shape)


def max_abs_diff(actual, expected):
    expected = torch.as_tensor(expected, dtype=torch.float64)
    return (actual.detach().cpu().to(torch.float64) - expected).abs().max().item()


# ---------------------------------------------------------------------------------------------
# Values the EECS 498 notebooks (fully_connected_networks, convolutional_networks) publish for
# their deterministic tests; CS231n's notebooks publish the same tests with the same values.
# The notebooks print 8 decimals, so a correct result is within half a unit of the last digit.
PUBLISHED_ATOL = 1e-8


def test_linear_forward_reproduces_the_published_output(layers):
    x = linspace(-0.1, 0.5, (2, 4, 5, 6))
    w = linspace(-0.2, 0.3, (120, 3))
    b = torch.linspace(-0.3, 0.1, steps=3, dtype=torch.float64)
    out, _ = layers.Linear.forward(x, w, b)
    expected = [[1.49834967, 1.70660132, 1.91485297], [3.25553199, 3.5141327, 3.77273342]]
    assert max_abs_diff(out, expected) < PUBLISHED_ATOL


def test_relu_forward_reproduces_the_published_output(layers):
    out, _ = layers.ReLU.forward(linspace(-0.5, 0.5, (3, 4)))
    expected = [
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.04545455, 0.13636364],
        [0.22727273, 0.31818182, 0.40909091, 0.5],
    ]
    assert max_abs_diff(out, expected) < PUBLISHED_ATOL


OPTIM_SHAPE = (4, 5)


def test_sgd_momentum_reproduces_the_published_update(optim):
    w = linspace(-0.4, 0.6, OPTIM_SHAPE)
    dw = linspace(-0.6, 0.4, OPTIM_SHAPE)
    config = {"learning_rate": 1e-3, "velocity": linspace(0.6, 0.9, OPTIM_SHAPE)}
    next_w, config = optim.sgd_momentum(w, dw, config)
    expected_next_w = [
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096],
    ]
    expected_velocity = [
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096],
    ]
    assert max_abs_diff(next_w, expected_next_w) < PUBLISHED_ATOL
    assert max_abs_diff(config["velocity"], expected_velocity) < PUBLISHED_ATOL


def test_rmsprop_reproduces_the_published_update(optim):
    w = linspace(-0.4, 0.6, OPTIM_SHAPE)
    dw = linspace(-0.6, 0.4, OPTIM_SHAPE)
    config = {"learning_rate": 1e-2, "cache": linspace(0.6, 0.9, OPTIM_SHAPE)}
    next_w, config = optim.rmsprop(w, dw, config)
    expected_next_w = [
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619],
    ]
    expected_cache = [
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926],
    ]
    assert max_abs_diff(next_w, expected_next_w) < PUBLISHED_ATOL
    assert max_abs_diff(config["cache"], expected_cache) < PUBLISHED_ATOL


def test_adam_reproduces_the_published_update(optim):
    w = linspace(-0.4, 0.6, OPTIM_SHAPE)
    dw = linspace(-0.6, 0.4, OPTIM_SHAPE)
    m = linspace(0.6, 0.9, OPTIM_SHAPE)
    v = linspace(0.7, 0.5, OPTIM_SHAPE)
    config = {"learning_rate": 1e-2, "m": m, "v": v, "t": 5}
    next_w, config = optim.adam(w, dw, config)
    expected_next_w = [
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459],
    ]
    expected_v = [
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966],
    ]
    expected_m = [
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85],
    ]
    assert max_abs_diff(next_w, expected_next_w) < PUBLISHED_ATOL
    assert max_abs_diff(config["v"], expected_v) < PUBLISHED_ATOL
    assert max_abs_diff(config["m"], expected_m) < PUBLISHED_ATOL
    assert config["t"] == 6


def test_two_layer_net_reproduces_the_published_scores_and_losses(models):
    N, D, H, C = 3, 5, 50, 7
    model = models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, dtype=torch.float64)
    model.params["W1"] = linspace(-0.7, 0.3, (D, H))
    model.params["b1"] = torch.linspace(-0.1, 0.9, steps=H, dtype=torch.float64)
    model.params["W2"] = linspace(-0.3, 0.4, (H, C))
    model.params["b2"] = torch.linspace(-0.9, 0.1, steps=C, dtype=torch.float64)
    X = linspace(-5.5, 4.5, (D, N)).t()
    expected_scores = [
        [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319],
    ]
    assert max_abs_diff(model.loss(X), expected_scores) < PUBLISHED_ATOL
    y = torch.tensor([0, 5, 1])
    assert abs(model.loss(X, y)[0].item() - 3.4702243556) < 1e-10
    # reg * sum(W**2), without CS231n's factor 1/2.
    model.reg = 1.0
    assert abs(model.loss(X, y)[0].item() - 49.719461034881775) < 1e-10


def test_conv_forward_reproduces_the_published_output(layers):
    x = linspace(-0.1, 0.5, (2, 3, 4, 4))
    w = linspace(-0.2, 0.3, (3, 3, 4, 4))
    b = torch.linspace(-0.1, 0.2, steps=3, dtype=torch.float64)
    expected = [
        [
            [[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
            [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
            [[0.50813986, 0.54309974], [0.64082444, 0.67101435]],
        ],
        [
            [[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
            [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
            [[2.36270298, 2.36904306], [2.38090835, 2.38247847]],
        ],
    ]
    for conv in (layers.Conv, layers.FastConv):
        out, _ = conv.forward(x, w, b, {"stride": 2, "pad": 1})
        assert max_abs_diff(out, expected) < PUBLISHED_ATOL, conv.__name__


def test_max_pool_forward_reproduces_the_published_output(layers):
    x = linspace(-0.3, 0.4, (2, 3, 4, 4))
    expected = [
        [
            [[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
            [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
            [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]],
        ],
        [
            [[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
            [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
            [[0.32631579, 0.34105263], [0.38526316, 0.4]],
        ],
    ]
    for pool in (layers.MaxPool, layers.FastMaxPool):
        out, _ = pool.forward(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
        assert max_abs_diff(out, expected) < PUBLISHED_ATOL, pool.__name__


# ---------------------------------------------------------------------------------------------
# Numeric gradients of every backward pass, in float64.


def layer_cases(layers, generator, dtype=torch.float64, device="cpu"):
    """(name, forward, backward, inputs, extra arguments) for every layer and sandwich."""

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype).to(device)

    x2 = randn(4, 5)
    img = randn(2, 3, 5, 7)  # non-square on purpose
    gamma, beta = randn(5), randn(5)
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    cases = [
        ("linear", layers.Linear, [randn(3, 2, 3), randn(6, 4), randn(4)], ()),
        ("relu", layers.ReLU, [x2], ()),
        ("linear_relu", layers.Linear_ReLU, [randn(3, 2, 3), randn(6, 4), randn(4)], ()),
        ("dropout", layers.Dropout, [x2], ({"mode": "train", "p": 0.4, "seed": 123},)),
        ("batchnorm", layers.BatchNorm, [x2, gamma, beta], ({"mode": "train"},)),
        ("spatial_batchnorm", layers.SpatialBatchNorm, [img, randn(3), randn(3)],
         ({"mode": "train"},)),
        ("conv_pad1_stride2", layers.Conv, [img, randn(4, 3, 3, 2), randn(4)],
         ({"stride": 2, "pad": 1},)),
        ("conv_pad0_stride1", layers.Conv, [img, randn(2, 3, 2, 3), randn(2)],
         ({"stride": 1, "pad": 0},)),
        ("conv_batch_of_one", layers.Conv, [randn(1, 2, 4, 3), randn(3, 2, 3, 3), randn(3)],
         ({"stride": 1, "pad": 2},)),
        ("max_pool_overlapping", layers.MaxPool, [img],
         ({"pool_height": 3, "pool_width": 2, "stride": 1},)),
        ("max_pool_disjoint", layers.MaxPool, [img], (pool,)),
        ("fast_conv", layers.FastConv, [img, randn(4, 3, 3, 2), randn(4)],
         ({"stride": 2, "pad": 1},)),
        ("fast_max_pool_overlapping", layers.FastMaxPool, [img],
         ({"pool_height": 3, "pool_width": 2, "stride": 1},)),
        ("conv_relu", layers.Conv_ReLU, [img, randn(4, 3, 3, 3), randn(4)], (conv,)),
        ("conv_relu_pool", layers.Conv_ReLU_Pool, [img, randn(4, 3, 3, 3), randn(4)],
         (conv, pool)),
        ("conv_batchnorm_relu", layers.Conv_BatchNorm_ReLU,
         [img, randn(4, 3, 3, 3), randn(4), randn(4), randn(4)], (conv, {"mode": "train"})),
        ("conv_batchnorm_relu_pool", layers.Conv_BatchNorm_ReLU_Pool,
         [img, randn(4, 3, 3, 3), randn(4), randn(4), randn(4)],
         (conv, {"mode": "train"}, pool)),
    ]
    return [(name, layer.forward, layer.backward, inputs, extra) for name, layer, inputs, extra in cases]


CASE_NAMES = [
    "linear", "relu", "linear_relu", "dropout", "batchnorm", "spatial_batchnorm",
    "conv_pad1_stride2", "conv_pad0_stride1", "conv_batch_of_one", "max_pool_overlapping",
    "max_pool_disjoint", "fast_conv", "fast_max_pool_overlapping", "conv_relu", "conv_relu_pool",
    "conv_batchnorm_relu", "conv_batchnorm_relu_pool",
]


def case_named(layers, case, dtype=torch.float64, device="cpu"):
    generator = torch.Generator().manual_seed(CASE_NAMES.index(case))
    return next(c for c in layer_cases(layers, generator, dtype, device) if c[0] == case)


def test_case_names_cover_every_case(layers):
    assert [c[0] for c in layer_cases(layers, torch.Generator().manual_seed(0))] == CASE_NAMES


def as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_backward_matches_numeric_gradient(layers, case):
    _, forward, backward, inputs, extra = case_named(layers, case)
    out, cache = forward(*inputs, *extra)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grads = as_tuple(backward(dout, cache))
    assert len(grads) == len(inputs)
    for k, (x, grad) in enumerate(zip(inputs, grads)):
        def f(value, k=k):
            args = list(inputs)
            args[k] = value
            return forward(*args, *extra)[0]

        expected = numeric_gradient(f, x, dout)
        assert grad.shape == x.shape
        assert (grad - expected).abs().max().item() < 1e-6, f"input {k} of {case}"


def test_batchnorm_backward_alt_equals_backward(layers):
    generator = torch.Generator().manual_seed(3)
    x = 5 * torch.randn(50, 40, generator=generator, dtype=torch.float64) + 12
    gamma = torch.randn(40, generator=generator, dtype=torch.float64)
    beta = torch.randn(40, generator=generator, dtype=torch.float64)
    dout = torch.randn(50, 40, generator=generator, dtype=torch.float64)
    _, cache = layers.BatchNorm.forward(x, gamma, beta, {"mode": "train"})
    for graph, closed_form in zip(
        layers.BatchNorm.backward(dout, cache), layers.BatchNorm.backward_alt(dout, cache)
    ):
        torch.testing.assert_close(closed_form, graph, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("loss_name", ["softmax_loss", "svm_loss"])
def test_loss_gradient_matches_numeric_gradient(layers, loss_name):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=generator)
    loss_fn = getattr(layers, loss_name)
    loss, dx = loss_fn(x, y)
    assert loss.dim() == 0 and loss.dtype == torch.float64
    expected = numeric_gradient(lambda v: loss_fn(v, y)[0], x, 1.0)
    assert (dx - expected).abs().max().item() < 1e-7


def test_losses_on_uniform_scores(layers):
    C = 10
    x, y = torch.zeros(5, C, dtype=torch.float64), torch.arange(5)
    assert abs(layers.softmax_loss(x, y)[0].item() - math.log(C)) < 1e-12
    assert abs(layers.svm_loss(x, y)[0].item() - (C - 1)) < 1e-12


def test_batchnorm_running_averages_and_test_mode(layers):
    generator = torch.Generator().manual_seed(4)
    gamma, beta = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    bn_param = {"mode": "train"}
    x = torch.randn(10, 3, generator=generator, dtype=torch.float64) * 2 + 1
    out, _ = layers.BatchNorm.forward(x, gamma, beta, bn_param)
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(3, dtype=torch.float64))
    # Biased variance, as the forward pass uses.
    torch.testing.assert_close(out.var(dim=0, unbiased=False), torch.ones(3, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(bn_param["running_mean"], 0.1 * x.mean(dim=0))
    torch.testing.assert_close(bn_param["running_var"], 0.1 * x.var(dim=0, unbiased=False))
    assert bn_param["running_mean"].dtype == torch.float64
    bn_param["mode"] = "test"
    out, _ = layers.BatchNorm.forward(x, gamma, beta, bn_param)
    expected = (x - bn_param["running_mean"]) / torch.sqrt(bn_param["running_var"] + 1e-5)
    torch.testing.assert_close(out, expected)


def test_spatial_batchnorm_normalizes_each_channel_over_batch_and_space(layers):
    generator = torch.Generator().manual_seed(5)
    x = 4 * torch.randn(6, 3, 4, 5, generator=generator, dtype=torch.float64) + 10
    gamma = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    beta = torch.tensor([0.0, -1.0, 5.0], dtype=torch.float64)
    bn_param = {"mode": "train"}
    out, _ = layers.SpatialBatchNorm.forward(x, gamma, beta, bn_param)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), beta)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), gamma, rtol=1e-4, atol=0)
    assert bn_param["running_mean"].shape == (3,)


def test_dropout_drops_a_fraction_p_and_preserves_the_mean(layers):
    x = torch.randn(500, 500, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 10
    for p in (0.25, 0.6):
        out, _ = layers.Dropout.forward(x, {"mode": "train", "p": p, "seed": 1})
        assert abs((out == 0).double().mean().item() - p) < 0.01
        assert abs(out.mean().item() - x.mean().item()) < 0.1
        again, _ = layers.Dropout.forward(x, {"mode": "train", "p": p, "seed": 1})
        assert torch.equal(out, again)
        out, _ = layers.Dropout.forward(x, {"mode": "test", "p": p})
        assert torch.equal(out, x)


@pytest.mark.parametrize("pool_name", ["MaxPool", "FastMaxPool"])
def test_max_pool_backward_routes_to_the_first_maximum_and_adds_overlaps(layers, pool_name):
    pool = getattr(layers, pool_name)
    x = torch.zeros(1, 1, 2, 3, dtype=torch.float64)  # every window is all ties
    out, cache = pool.forward(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    dx = pool.backward(torch.tensor([[[[1.0, 10.0]]]], dtype=torch.float64), cache)
    assert dx.tolist() == [[[[1.0, 10.0, 0.0], [0.0, 0.0, 0.0]]]]
    # A tie between the second and third element of a window's rows: the row-major first wins.
    x = torch.tensor([[[[0.0, 5.0], [5.0, 1.0]]]], dtype=torch.float64)
    _, cache = pool.forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = pool.backward(torch.ones(1, 1, 1, 1, dtype=torch.float64), cache)
    assert dx.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


def test_fast_layers_agree_with_the_naive_ones(layers):
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(3, 2, 9, 6, generator=generator, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 2, generator=generator, dtype=torch.float64)
    b = torch.randn(4, generator=generator, dtype=torch.float64)
    for conv_param in ({"stride": 1, "pad": 0}, {"stride": 2, "pad": 1}, {"stride": 3, "pad": 2}):
        out, cache = layers.Conv.forward(x, w, b, conv_param)
        fast_out, fast_cache = layers.FastConv.forward(x, w, b, conv_param)
        torch.testing.assert_close(fast_out, out)
        dout = torch.randn(out.shape, generator=generator, dtype=torch.float64)
        for grad, fast_grad in zip(layers.Conv.backward(dout, cache),
                                   layers.FastConv.backward(dout, fast_cache)):
            torch.testing.assert_close(fast_grad, grad)
    for pool_param in ({"pool_height": 2, "pool_width": 3, "stride": 1},
                       {"pool_height": 3, "pool_width": 3, "stride": 3}):
        out, cache = layers.MaxPool.forward(x, pool_param)
        fast_out, fast_cache = layers.FastMaxPool.forward(x, pool_param)
        torch.testing.assert_close(fast_out, out)
        dout = torch.randn(out.shape, generator=generator, dtype=torch.float64)
        torch.testing.assert_close(layers.FastMaxPool.backward(dout, fast_cache),
                                   layers.MaxPool.backward(dout, cache))


def test_fast_conv_backward_can_be_called_twice_and_under_no_grad(layers):
    x, w, b = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(4)
    with torch.no_grad():
        out, cache = layers.FastConv.forward(x, w, b, {"stride": 1, "pad": 1})
    assert not out.requires_grad
    dout = torch.randn(out.shape)
    first = layers.FastConv.backward(dout, cache)
    second = layers.FastConv.backward(dout, cache)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_fast_conv_leaves_the_random_generator_alone(layers):
    x, w, b = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(4)
    torch.manual_seed(0)
    layers.FastConv.forward(x, w, b, {"stride": 1, "pad": 1})
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layers_keep_dtype_and_device(layers, dtype, device):
    for name in CASE_NAMES:
        _, forward, backward, inputs, extra = case_named(layers, name, dtype, device)
        out, cache = forward(*inputs, *extra)
        assert (out.dtype, out.device.type) == (dtype, device), name
        grads = as_tuple(backward(torch.ones_like(out), cache))
        for grad in grads:
            assert (grad.dtype, grad.device.type) == (dtype, device), name
    for loss_fn in (layers.softmax_loss, layers.svm_loss):
        x = torch.randn(4, 3, dtype=dtype, device=device)
        loss, dx = loss_fn(x, torch.tensor([0, 1, 2, 0], device=device))
        assert (loss.dtype, loss.device.type, dx.dtype) == (dtype, device, dtype)
    bn_param = {"mode": "train"}
    layers.BatchNorm.forward(torch.randn(4, 3, dtype=dtype, device=device),
                             torch.ones(3, dtype=dtype, device=device),
                             torch.zeros(3, dtype=dtype, device=device), bn_param)
    assert bn_param["running_var"].dtype == dtype
    assert bn_param["running_var"].device.type == device


def test_layers_do_not_modify_their_inputs(layers):
    for name in CASE_NAMES:
        _, forward, backward, inputs, extra = case_named(layers, name)
        extra = tuple(
            {**e, "running_mean": torch.ones(inputs[1].shape[0], dtype=torch.float64),
             "running_var": torch.ones(inputs[1].shape[0], dtype=torch.float64)}
            if isinstance(e, dict) and e.get("mode") == "train" and "p" not in e else e
            for e in extra
        )
        running = [e[k] for e in extra if isinstance(e, dict) for k in ("running_mean", "running_var") if k in e]
        copies = [x.clone() for x in inputs + running]
        out, cache = forward(*inputs, *extra)
        dout = torch.randn(out.shape, dtype=out.dtype)
        dout_copy = dout.clone()
        backward(dout, cache)
        for x, copy in zip(inputs + running, copies):
            assert torch.equal(x, copy), name
        assert torch.equal(dout, dout_copy), name


def test_layers_accept_non_contiguous_inputs(layers):
    for name in CASE_NAMES:
        _, forward, backward, inputs, extra = case_named(layers, name)
        strided = [x.transpose(-1, -2).contiguous().transpose(-1, -2) if x.dim() > 1 else x
                   for x in inputs]
        assert any(not x.is_contiguous() for x in strided)
        out, cache = forward(*inputs, *extra)
        strided_out, strided_cache = forward(*strided, *extra)
        torch.testing.assert_close(strided_out, out, msg=name)
        dout = torch.randn(out.shape, dtype=out.dtype)
        for grad, strided_grad in zip(as_tuple(backward(dout, cache)),
                                      as_tuple(backward(dout, strided_cache))):
            torch.testing.assert_close(strided_grad, grad, msg=name)


# ---------------------------------------------------------------------------------------------
# Optimizers.

OPTIMIZERS = ["sgd", "sgd_momentum", "rmsprop", "adam"]


def test_sgd_is_a_plain_gradient_step(optim):
    w, dw = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0])
    next_w, _ = optim.sgd(w, dw, {"learning_rate": 0.1})
    torch.testing.assert_close(next_w, torch.tensor([0.95, -2.4]))


def test_stateful_rules_over_two_steps_by_hand(optim):
    w, dw = torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)
    config = {"learning_rate": 0.1, "momentum": 0.5}
    w1, config = optim.sgd_momentum(w, dw, config)  # v = -0.2
    w2, config = optim.sgd_momentum(w1, dw, config)  # v = -0.1 - 0.2
    assert abs(w2.item() - 0.5) < 1e-12 and abs(config["velocity"].item() + 0.3) < 1e-12
    config = {"learning_rate": 0.1, "decay_rate": 0.5, "epsilon": 0.0}
    w1, config = optim.rmsprop(w, dw, config)  # cache = 2, step = 0.1 * 2 / sqrt(2)
    assert abs(w1.item() - (1 - 0.1 * math.sqrt(2))) < 1e-12
    assert abs(config["cache"].item() - 2.0) < 1e-12
    config = {"learning_rate": 0.1, "beta1": 0.5, "beta2": 0.5, "epsilon": 0.0}
    w1, config = optim.adam(w, dw, config)
    w2, config = optim.adam(w1, -dw, config)
    # Step 2: m = 0.5 * 1 - 1 = -0.5, m_hat = -0.5 / 0.75; v = 0.5 * 2 + 2 = 3, v_hat = 4.
    assert abs(w2.item() - (0.9 + 0.1 * (0.5 / 0.75) / 2)) < 1e-12
    assert config["t"] == 2


@pytest.mark.parametrize("rule", OPTIMIZERS)
def test_optimizer_keeps_state_in_the_given_config_and_leaves_tensors_alone(optim, rule):
    generator = torch.Generator().manual_seed(8)
    w = torch.randn(3, 4, generator=generator, dtype=torch.float32)
    dw = torch.randn(3, 4, generator=generator, dtype=torch.float32)
    w_copy, dw_copy = w.clone(), dw.clone()
    config = {}
    next_w, returned = getattr(optim, rule)(w, dw, config)
    assert returned is config
    assert "learning_rate" in config
    state = {k: v.clone() for k, v in config.items() if torch.is_tensor(v)}
    getattr(optim, rule)(next_w, dw, config)
    assert all(torch.equal(state[k], v) for k, v in state.items())  # old state not overwritten
    assert torch.equal(w, w_copy) and torch.equal(dw, dw_copy)
    assert next_w.shape == w.shape and next_w.dtype == torch.float32
    # A step against the gradient of 0.5 * ||w||^2 (dw = w) shrinks w.
    next_w, _ = getattr(optim, rule)(w, w, {})
    assert (next_w**2).sum() < (w**2).sum()
    assert getattr(optim, rule)(w, dw)[1]["learning_rate"] > 0  # config=None works


@pytest.mark.parametrize(
    "rule, defaults",
    [
        ("sgd", {"learning_rate": 1e-2}),
        ("sgd_momentum", {"learning_rate": 1e-2, "momentum": 0.9}),
        ("rmsprop", {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
        ("adam", {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}),
    ],
)
def test_optimizer_defaults(optim, rule, defaults):
    _, config = getattr(optim, rule)(torch.ones(3), torch.ones(3), {})
    for key, value in defaults.items():
        assert config[key] == value


class OperationNames(TorchDispatchMode):
    """The names of the torch operations run inside it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("rule", ["sgd_momentum", "rmsprop", "adam"])
def test_provided_defaults_make_no_state_that_is_already_there(optim, rule):
    # Every training step runs the provided lines of each rule for each parameter: on a GPU a zero
    # tensor made and thrown away there is a launch per parameter per step.
    w = torch.ones(3)
    _, config = getattr(optim, rule)(w, w, {})
    with OperationNames() as later_step:
        getattr(optim, rule)(w, w, config)
    assert not {"zeros", "zeros_like"} & set(later_step.names)


def test_provided_batchnorm_defaults_make_no_running_averages_that_are_there(layers):
    x, gamma, beta = torch.randn(6, 3), torch.ones(3), torch.zeros(3)
    bn_param = {"mode": "train"}
    layers.BatchNorm.forward(x, gamma, beta, bn_param)
    with OperationNames() as later_step:
        layers.BatchNorm.forward(x, gamma, beta, bn_param)
    assert not {"zeros", "zeros_like"} & set(later_step.names)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rule", OPTIMIZERS)
def test_optimizer_state_keeps_dtype_and_device(optim, rule, device):
    w = torch.ones(3, dtype=torch.float64, device=device)
    next_w, config = getattr(optim, rule)(w, w, {})
    assert (next_w.dtype, next_w.device.type) == (torch.float64, device)
    for value in config.values():
        if torch.is_tensor(value):
            assert (value.dtype, value.device.type) == (torch.float64, device)


def test_adam_first_step_moves_every_weight_by_the_learning_rate(optim):
    # With bias correction m_hat / sqrt(v_hat) = sign(dw) on the first step.
    w = torch.zeros(4, dtype=torch.float64)
    dw = torch.tensor([3.0, -0.01, 200.0, -5.0], dtype=torch.float64)
    next_w, _ = optim.adam(w, dw, {"learning_rate": 0.1})
    torch.testing.assert_close(next_w, -0.1 * torch.sign(dw), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------------
# Models.


@pytest.mark.parametrize(
    "args, shape, std",
    [
        ((1000, 300), (1000, 300), math.sqrt(2 / 1000)),
        ((1000, 300, None, False), (1000, 300), math.sqrt(1 / 1000)),
        ((64, 200, 3), (200, 64, 3, 3), math.sqrt(2 / 576)),
        ((64, 200, 5, False), (200, 64, 5, 5), math.sqrt(1 / 1600)),
    ],
)
def test_kaiming_initializer(models, args, shape, std):
    torch.manual_seed(0)
    weight = models.kaiming_initializer(*args, dtype=torch.float64)
    assert weight.shape == shape and weight.dtype == torch.float64
    assert abs(weight.std().item() / std - 1) < 0.03
    assert abs(weight.mean().item()) < 0.05 * std


def model_gradient_errors(model, X, y):
    loss, grads = model.loss(X, y)
    assert loss.dim() == 0
    assert set(grads) == set(model.params)
    errors = {}
    for name, param in model.params.items():
        expected = numeric_gradient(lambda _: model.loss(X, y)[0], param, 1.0, h=1e-5)
        assert grads[name].shape == param.shape
        errors[name] = (grads[name] - expected).abs().max().item()
    return errors


def images(generator, *shape):
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients(models, reg):
    torch.manual_seed(0)
    model = models.TwoLayerNet(input_dim=12, hidden_dim=8, num_classes=5, weight_scale=0.5,
                               reg=reg, dtype=torch.float64)
    generator = torch.Generator().manual_seed(9)
    X, y = images(generator, 4, 3, 2, 2), torch.randint(0, 5, (4,), generator=generator)
    errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("reg, dropout", [(0.0, 0.0), (3.14, 0.0), (0.5, 0.3)])
def test_fully_connected_net_gradients(models, reg, dropout):
    torch.manual_seed(1)
    # Wide enough that no example loses every unit of a layer to ReLU or dropout: a row of
    # zeros puts the next layer's pre-activations (biases 0) exactly on the ReLU's kink.
    model = models.FullyConnectedNet([12, 10], input_dim=10, num_classes=4, dropout=dropout,
                                     reg=reg, weight_scale=0.5, seed=123, dtype=torch.float64)
    generator = torch.Generator().manual_seed(10)
    X, y = images(generator, 5, 10), torch.randint(0, 4, (5,), generator=generator)
    errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-6, errors


def test_fully_connected_net_parameters_and_dropout_modes(models):
    model = models.FullyConnectedNet([6, 5], input_dim=8, num_classes=3, dropout=0.5, seed=4)
    expected_shapes = {"W1": (8, 6), "b1": (6,), "W2": (6, 5), "b2": (5,), "W3": (5, 3), "b3": (3,)}
    assert {name: tuple(p.shape) for name, p in model.params.items()} == expected_shapes
    assert all(p.dtype == torch.float32 for p in model.params.values())
    assert model.dropout_param == {"mode": "train", "p": 0.5, "seed": 4}
    X = torch.randn(4, 8)
    scores = model.loss(X)
    assert scores.shape == (4, 3) and model.dropout_param["mode"] == "test"
    assert torch.equal(model.loss(X), scores)  # test mode is deterministic


# An even filter size shrinks the convolution's output by one pixel, so the pooled size is
# not simply H // 2 x W // 2.
@pytest.mark.slow  # every element of every parameter, through the loops of the naive layers
@pytest.mark.parametrize("input_dims, filter_size", [((3, 8, 6), 3), ((2, 8, 5), 4)])
def test_three_layer_conv_net_gradients(models, input_dims, filter_size):
    torch.manual_seed(2)
    model = models.ThreeLayerConvNet(input_dims=input_dims, num_filters=3, filter_size=filter_size,
                                     hidden_dim=5, weight_scale=0.3, reg=0.2, dtype=torch.float64)
    C, H, W = input_dims
    conv_h = H + 2 * ((filter_size - 1) // 2) - filter_size + 1
    conv_w = W + 2 * ((filter_size - 1) // 2) - filter_size + 1
    assert model.params["W2"].shape == (3 * (conv_h // 2) * (conv_w // 2), 5)
    generator = torch.Generator().manual_seed(11)
    X, y = images(generator, 2, *input_dims), torch.randint(0, 10, (2,), generator=generator)
    errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.slow  # every element of every parameter, through the loops of the naive layers
@pytest.mark.parametrize(
    "num_filters, max_pools, batchnorm, reg",
    [([3, 4], [0, 1], False, 0.0), ([2, 3, 3], [1], True, 0.3), ([3], [], True, 0.0)],
)
def test_deep_conv_net_gradients(models, num_filters, max_pools, batchnorm, reg):
    torch.manual_seed(3)
    model = models.DeepConvNet(input_dims=(2, 6, 4), num_filters=num_filters, max_pools=max_pools,
                               batchnorm=batchnorm, num_classes=3, weight_scale=0.5, reg=reg,
                               dtype=torch.float64)
    generator = torch.Generator().manual_seed(12)
    X, y = images(generator, 3, 2, 6, 4), torch.randint(0, 3, (3,), generator=generator)
    errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize(
    "num_filters, max_pools, batchnorm",
    [([8, 8, 8, 8, 8], [0, 1, 2, 3, 4], False), ([4, 6, 5], [0, 2], True), ([5], [], False)],
)
def test_deep_conv_net_parameters(models, num_filters, max_pools, batchnorm):
    model = models.DeepConvNet(input_dims=(3, 32, 32), num_filters=num_filters, max_pools=max_pools,
                               batchnorm=batchnorm, weight_scale="kaiming")
    channels, size = 3, 32
    for i, filters in enumerate(num_filters, start=1):
        assert model.params[f"W{i}"].shape == (filters, channels, 3, 3)
        assert not model.params[f"b{i}"].any()
        if batchnorm:
            assert torch.equal(model.params[f"gamma{i}"], torch.ones(filters))
            assert not model.params[f"beta{i}"].any()
        if i - 1 in max_pools:
            size //= 2
        channels = filters
    L = len(num_filters) + 1
    assert model.params[f"W{L}"].shape == (channels * size * size, 10)
    assert len(model.params) == (4 if batchnorm else 2) * len(num_filters) + 2
    assert len(model.bn_params) == (len(num_filters) if batchnorm else 0)
    scores = model.loss(torch.randn(2, 3, 32, 32))
    assert scores.shape == (2, 10)
    assert all(bn_param["mode"] == "test" for bn_param in model.bn_params)


def test_deep_conv_net_kaiming_scale(models):
    torch.manual_seed(4)
    model = models.DeepConvNet(num_filters=[64, 64], max_pools=[0, 1], weight_scale="kaiming",
                               dtype=torch.float64)
    assert abs(model.params["W2"].std().item() / math.sqrt(2 / (64 * 9)) - 1) < 0.05
    assert abs(model.params["W3"].std().item() / math.sqrt(1 / (64 * 8 * 8)) - 1) < 0.05


def test_deep_conv_net_batchnorm_running_averages_are_used_in_test_mode(models):
    torch.manual_seed(5)
    model = models.DeepConvNet(input_dims=(3, 8, 8), num_filters=[4], max_pools=[0],
                               batchnorm=True, weight_scale="kaiming")
    X, y = 3 * torch.randn(8, 3, 8, 8) + 1, torch.randint(0, 10, (8,))
    before = model.loss(X)
    model.loss(X, y)
    assert model.bn_params[0]["running_mean"].shape == (4,)
    assert not torch.allclose(model.loss(X), before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_models_keep_dtype_and_device(models, dtype, device):
    X, y = torch.randn(2, 3, 8, 8, device=device), torch.tensor([1, 2], device=device)
    for model in (
        models.TwoLayerNet(input_dim=3 * 8 * 8, hidden_dim=5, dtype=dtype, device=device),
        models.FullyConnectedNet([5, 4], input_dim=3 * 8 * 8, dropout=0.5, dtype=dtype,
                                 device=device),
        models.ThreeLayerConvNet(input_dims=(3, 8, 8), num_filters=2, filter_size=3,
                                 hidden_dim=4, dtype=dtype, device=device),
        models.DeepConvNet(input_dims=(3, 8, 8), num_filters=[2, 3], max_pools=[1],
                           batchnorm=True, weight_scale="kaiming", dtype=dtype, device=device),
    ):
        for name, param in model.params.items():
            assert (param.dtype, param.device.type) == (dtype, device), (type(model), name)
        loss, grads = model.loss(X, y)
        assert (loss.dtype, loss.device.type) == (dtype, device)
        assert all((g.dtype, g.device.type) == (dtype, device) for g in grads.values())
        assert model.loss(X).dtype == dtype


MODEL_BUILDS = {
    "two_layer": lambda models, **kw: models.TwoLayerNet(input_dim=3 * 8 * 8, **kw),
    "fc": lambda models, **kw: models.FullyConnectedNet([20, 20], input_dim=3 * 8 * 8, **kw),
    "three_layer_conv": lambda models, **kw: models.ThreeLayerConvNet(input_dims=(3, 8, 8), **kw),
    "deep_conv": lambda models, **kw: models.DeepConvNet(input_dims=(3, 8, 8), num_filters=[4, 4],
                                                         max_pools=[0, 1], batchnorm=True, **kw),
}


@pytest.mark.parametrize("build", MODEL_BUILDS)
def test_initial_loss_of_small_weights_is_log_of_the_class_count(models, build):
    torch.manual_seed(6)
    model = MODEL_BUILDS[build](models, weight_scale=1e-3)
    X, y = torch.randn(20, 3, 8, 8), torch.randint(0, 10, (20,))
    loss, _ = model.loss(X, y)
    assert abs(loss.item() - math.log(10)) < 0.01


@pytest.mark.parametrize("build", MODEL_BUILDS)
def test_initial_parameters(models, build):
    torch.manual_seed(7)
    model = MODEL_BUILDS[build](models, weight_scale=0.05)
    for name, param in model.params.items():
        if name.startswith("W"):
            assert abs(param.std().item() / 0.05 - 1) < 0.2, name
        elif name.startswith("gamma"):
            assert torch.equal(param, torch.ones_like(param)), name
        else:
            assert not param.any(), name


@pytest.mark.parametrize("build", MODEL_BUILDS)
def test_regularization_is_reg_times_the_squares_of_every_weight(models, build):
    torch.manual_seed(8)
    model = MODEL_BUILDS[build](models, weight_scale=0.1, dtype=torch.float64)
    X = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    loss, grads = model.loss(X, y)
    model.reg = 0.3
    reg_loss, reg_grads = model.loss(X, y)
    weights = {name: w for name, w in model.params.items() if name.startswith("W")}
    expected = 0.3 * sum((w * w).sum() for w in weights.values())
    assert abs((reg_loss - loss).item() - expected.item()) < 1e-10
    for name, param in model.params.items():
        extra = 2 * 0.3 * param if name in weights else torch.zeros_like(param)
        torch.testing.assert_close(reg_grads[name] - grads[name], extra, msg=name)


# ---------------------------------------------------------------------------------------------
# Solver and training entries, on random stand-ins shaped like mean-subtracted CIFAR-10 pixels.


def cifar_like(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (60 * torch.randn(n, 3, 32, 32, generator=generator),
            torch.randint(0, 10, (n,), generator=generator))


@pytest.mark.parametrize("entry", ["three_layer_overfit_solver", "five_layer_overfit_solver"])
@pytest.mark.parametrize("seed", [0, 1])
def test_overfit_entries_reach_full_training_accuracy(ref, entry, seed):
    X, y = cifar_like(50, seed)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    torch.manual_seed(seed)
    solver = getattr(ref["training"], entry)(data, torch.float32, "cpu")
    solver.train()
    assert max(solver.train_acc_history) == 1.0
    assert solver.check_accuracy(X, y) == 1.0


def test_solver_entries_build_untrained_solvers(ref, models):
    X, y = cifar_like(40)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    for entry, model_class in [("create_solver_instance", models.TwoLayerNet),
                               ("create_convolutional_solver_instance", models.DeepConvNet)]:
        solver = getattr(models, entry)(data, torch.float32, "cpu")
        assert isinstance(solver, ref["solver"].Solver)
        assert isinstance(solver.model, model_class)
        assert solver.loss_history == [] and not solver.verbose
        assert solver.model.loss(X[:2]).shape == (2, 10)


def test_solver_stops_before_crossing_its_time_limit(ref, models):
    X, y = cifar_like(40)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    model = models.TwoLayerNet(hidden_dim=10)
    solver = ref["solver"].Solver(model, data, num_epochs=1000, batch_size=10, verbose=False,
                                  update_rule="sgd_momentum")
    solver.train(time_limit=0.3)
    assert solver.stopped_early
    assert 0 < len(solver.loss_history) < 3000
    assert all(isinstance(loss, float) for loss in solver.loss_history)
    assert model.params is solver.best_params
    with pytest.raises(ValueError, match="bogus"):
        ref["solver"].Solver(model, data, bogus=1)


# ---------------------------------------------------------------------------------------------
# Stubs and reference are the same files outside the student's fences.

FENCE = re.compile(r"(# BEGIN YOUR CODE\n).*?(\s*# END YOUR CODE)", re.DOTALL)


@pytest.mark.parametrize("name", STUDENT_FILES)
def test_stub_and_reference_differ_only_inside_the_fences(name):
    stub = (ASSIGNMENT_DIR / name).read_text()
    reference = (REFERENCE_DIR / name).read_text()
    assert FENCE.sub(r"\1\2", stub) == FENCE.sub(r"\1\2", reference)
    bodies = [m.group(0) for m in FENCE.finditer(stub)]
    assert bodies and all("raise NotImplementedError" in body for body in bodies)


# ---------------------------------------------------------------------------------------------
# The mutant catalogue applies cleanly to the reference.


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_applies_to_the_reference_and_compiles(mutant):
    source = (REFERENCE_DIR / mutant.file).read_text()
    assert source.count(mutant.old) == 1
    mutated = apply(mutant, source)
    assert mutated != source
    compile(mutated, f"{mutant.file} ({mutant.name})", "exec")


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
