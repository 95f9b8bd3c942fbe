"""The a1_fc_numpy reference: published notebook values, numeric gradients, optimizers, models.

The reference is loaded the way the harness overlays it: one package whose path lists
reference/a1_fc_numpy first and assignments/a1_fc_numpy second, so the reference's student
files sit next to the assignment's provided files (solver, layer_utils, ...).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mutants_a1 import MUTANTS, apply

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "reference" / "a1_fc_numpy"
ASSIGNMENT_DIR = ROOT / "assignments" / "a1_fc_numpy"
PACKAGE = "a1_fc_numpy_reference_under_test"


def load_reference(package: str = PACKAGE):
    """Import the reference overlaid on the assignment as the package `package`."""
    spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(REFERENCE_DIR), str(ASSIGNMENT_DIR)]
    sys.modules[package] = module
    return module


@pytest.fixture(scope="module")
def ref():
    load_reference()
    yield {
        name: importlib.import_module(f"{PACKAGE}.{name}")
        for name in ("layers", "optim", "models", "solver")
    }
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def layers(ref):
    return ref["layers"]


@pytest.fixture(scope="module")
def optim(ref):
    return ref["optim"]


@pytest.fixture(scope="module")
def models(ref):
    return ref["models"]


def rel_error(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def numeric_gradient(f, x, dout, h=1e-6):
    """Central-difference gradient of sum(f(x) * dout) with respect to x, element by element."""
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        plus = np.sum(f(x) * dout)
        x[ix] = old - h
        minus = np.sum(f(x) * dout)
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def linspace(start, stop, shape):
    return np.linspace(start, stop, num=int(np.prod(shape))).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Values the courses' notebooks publish for their deterministic tests.
# CS231n assignment 2 (FullyConnectedNets, ConvolutionalNetworks) unless said otherwise. The
# notebooks print 8 decimals, so a correct result is within half a unit of the last digit.
PUBLISHED_ATOL = 1e-8


def max_abs_diff(actual, published):
    return np.max(np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(published)))


def test_affine_forward_reproduces_the_published_output(layers):
    x = linspace(-0.1, 0.5, (2, 4, 5, 6))
    w = linspace(-0.2, 0.3, (120, 3))
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = layers.affine_forward(x, w, b)
    cs231n = [[1.49834967, 1.70660132, 1.91485297], [3.25553199, 3.5141327, 3.77273342]]
    assert max_abs_diff(out, cs231n) < PUBLISHED_ATOL
    # The EECS 498 notebook prints the same test computed on a GPU (seed write-up 003).
    eecs498 = [[1.49834984, 1.70660150, 1.91485316], [3.25553226, 3.51413301, 3.77273372]]
    assert max_abs_diff(out, eecs498) < 5e-7


def test_relu_forward_reproduces_the_published_output(layers):
    out, _ = layers.relu_forward(linspace(-0.5, 0.5, (3, 4)))
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


def two_layer_net_with_linspace_params(models):
    N, D, H, C = 3, 5, 50, 7
    model = models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=1e-3)
    model.params["W1"] = linspace(-0.7, 0.3, (D, H))
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = linspace(-0.3, 0.4, (H, C))
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = linspace(-5.5, 4.5, (D, N)).T
    return model, X


def test_two_layer_net_reproduces_the_published_scores_and_losses(models):
    model, X = two_layer_net_with_linspace_params(models)
    expected_scores = [
        [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319],
    ]
    assert max_abs_diff(model.loss(X), expected_scores) < PUBLISHED_ATOL
    y = np.array([0, 5, 1])
    assert abs(model.loss(X, y)[0] - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(model.loss(X, y)[0] - 26.5948426952) < 1e-10


def test_conv_forward_naive_reproduces_the_published_output(layers):
    x = linspace(-0.1, 0.5, (2, 3, 4, 4))
    w = linspace(-0.2, 0.3, (3, 3, 4, 4))
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
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
    assert max_abs_diff(out, expected) < PUBLISHED_ATOL


def test_max_pool_forward_naive_reproduces_the_published_output(layers):
    x = linspace(-0.3, 0.4, (2, 3, 4, 4))
    out, _ = layers.max_pool_forward_naive(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
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
    assert max_abs_diff(out, expected) < PUBLISHED_ATOL


# ---------------------------------------------------------------------------------------------
# Numeric gradients of every backward pass, in float64.


def layer_cases(rng):
    """(name, forward(*inputs) -> out, backward(dout, cache) -> grads, inputs) for every layer."""
    x2 = rng.standard_normal((4, 5))
    img = rng.standard_normal((2, 3, 5, 7))  # non-square on purpose
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    dropout_param = {"mode": "train", "p": 0.6, "seed": 123}
    return [
        ("affine", "affine_forward", "affine_backward",
         [rng.standard_normal((3, 2, 3)), rng.standard_normal((6, 4)), rng.standard_normal(4)], ()),
        ("relu", "relu_forward", "relu_backward", [x2], ()),
        ("sigmoid", "sigmoid_forward", "sigmoid_backward", [x2], ()),
        ("dropout", "dropout_forward", "dropout_backward", [x2], (dropout_param,)),
        ("batchnorm", "batchnorm_forward", "batchnorm_backward", [x2, gamma, beta],
         ({"mode": "train"},)),
        ("batchnorm_alt", "batchnorm_forward", "batchnorm_backward_alt", [x2, gamma, beta],
         ({"mode": "train"},)),
        ("layernorm", "layernorm_forward", "layernorm_backward", [x2, gamma, beta], ({},)),
        ("conv_pad1_stride2", "conv_forward_naive", "conv_backward_naive",
         [img, rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)],
         ({"stride": 2, "pad": 1},)),
        ("conv_pad0_stride1", "conv_forward_naive", "conv_backward_naive",
         [img, rng.standard_normal((2, 3, 2, 3)), rng.standard_normal(2)],
         ({"stride": 1, "pad": 0},)),
        ("max_pool_overlapping", "max_pool_forward_naive", "max_pool_backward_naive", [img],
         ({"pool_height": 3, "pool_width": 2, "stride": 1},)),
        ("max_pool_disjoint", "max_pool_forward_naive", "max_pool_backward_naive", [img],
         ({"pool_height": 2, "pool_width": 2, "stride": 2},)),
        ("spatial_batchnorm", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
         [img, rng.standard_normal(3), rng.standard_normal(3)], ({"mode": "train"},)),
        ("spatial_groupnorm", "spatial_groupnorm_forward", "spatial_groupnorm_backward",
         [rng.standard_normal((2, 6, 3, 4)), rng.standard_normal((1, 6, 1, 1)),
          rng.standard_normal((1, 6, 1, 1))], (2, {})),
    ]


CASE_NAMES = [case[0] for case in layer_cases(np.random.default_rng(0))]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_backward_matches_numeric_gradient(layers, case):
    rng = np.random.default_rng(CASE_NAMES.index(case))
    _, forward_name, backward_name, inputs, extra = next(
        c for c in layer_cases(rng) if c[0] == case
    )
    forward, backward = getattr(layers, forward_name), getattr(layers, backward_name)
    out, cache = forward(*inputs, *extra)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(inputs)
    for k, (x, grad) in enumerate(zip(inputs, grads)):
        def f(value, k=k):
            args = list(inputs)
            args[k] = value
            return forward(*args, *extra)[0]

        expected = numeric_gradient(f, x, dout)
        assert grad.shape == x.shape
        assert np.max(np.abs(grad - expected)) < 1e-6, f"input {k} of {case}"


@pytest.mark.parametrize("loss_name", ["softmax_loss", "svm_loss"])
def test_loss_gradient_matches_numeric_gradient(layers, loss_name):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, size=6)
    loss_fn = getattr(layers, loss_name)
    loss, dx = loss_fn(x, y)
    expected = numeric_gradient(lambda v: loss_fn(v, y)[0], x, 1.0)
    assert np.max(np.abs(dx - expected)) < 1e-7


def test_losses_on_uniform_scores(layers):
    C = 10
    x, y = np.zeros((5, C)), np.arange(5)
    assert abs(layers.softmax_loss(x, y)[0] - np.log(C)) < 1e-12
    assert abs(layers.svm_loss(x, y)[0] - (C - 1)) < 1e-12


def test_batchnorm_backward_alt_equals_batchnorm_backward(layers):
    rng = np.random.default_rng(3)
    x = 5 * rng.standard_normal((50, 40)) + 12
    gamma, beta = rng.standard_normal(40), rng.standard_normal(40)
    dout = rng.standard_normal((50, 40))
    _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for graph, closed_form in zip(
        layers.batchnorm_backward(dout, cache), layers.batchnorm_backward_alt(dout, cache)
    ):
        assert rel_error(graph, closed_form) < 1e-9


def test_batchnorm_running_averages_and_test_mode(layers):
    rng = np.random.default_rng(4)
    gamma, beta = np.ones(3), np.zeros(3)
    bn_param = {"mode": "train"}
    x = rng.standard_normal((10, 3)) * 2 + 1
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    assert np.allclose(out.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(out.std(axis=0), 1, atol=1e-5)  # biased std, as the forward pass uses
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(axis=0))
    bn_param["mode"] = "test"
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    expected = (x - bn_param["running_mean"]) / np.sqrt(bn_param["running_var"] + 1e-5)
    np.testing.assert_allclose(out, expected)


def test_dropout_keeps_a_fraction_p_and_preserves_the_mean(layers):
    x = np.random.default_rng(5).standard_normal((500, 500)) + 10
    for p in (0.25, 0.6):
        out, _ = layers.dropout_forward(x, {"mode": "train", "p": p, "seed": 1})
        assert abs(np.mean(out != 0) - p) < 0.01
        assert abs(out.mean() - x.mean()) < 0.1
        out, _ = layers.dropout_forward(x, {"mode": "test", "p": p})
        np.testing.assert_array_equal(out, x)
    out, _ = layers.dropout_forward(x.astype(np.float32), {"mode": "train", "p": 0.5, "seed": 1})
    assert out.dtype == np.float32


def test_max_pool_backward_routes_to_the_first_maximum_and_adds_overlaps(layers):
    x = np.zeros((1, 1, 2, 3))  # every window is all ties
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 1}
    out, cache = layers.max_pool_forward_naive(x, pool_param)
    dx = layers.max_pool_backward_naive(np.array([[[[1.0, 10.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[1.0, 10.0, 0.0], [0.0, 0.0, 0.0]]]])


def test_layers_do_not_modify_their_inputs(layers):
    rng = np.random.default_rng(6)
    for _, forward_name, backward_name, inputs, extra in layer_cases(rng):
        forward, backward = getattr(layers, forward_name), getattr(layers, backward_name)
        copies = [x.copy() for x in inputs]
        out, cache = forward(*inputs, *extra)
        dout = rng.standard_normal(out.shape)
        dout_copy = dout.copy()
        backward(dout, cache)
        for x, copy in zip(inputs, copies):
            np.testing.assert_array_equal(x, copy, err_msg=forward_name)
        np.testing.assert_array_equal(dout, dout_copy, err_msg=backward_name)


# ---------------------------------------------------------------------------------------------
# Optimizers.

OPTIMIZERS = ["sgd", "sgd_momentum", "rmsprop", "adam"]


@pytest.mark.parametrize("rule", OPTIMIZERS)
def test_optimizer_keeps_state_in_the_given_config_and_leaves_w_alone(optim, rule):
    rng = np.random.default_rng(8)
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w_copy, dw_copy = w.copy(), dw.copy()
    config = {}
    next_w, returned = getattr(optim, rule)(w, dw, config)
    assert returned is config
    assert "learning_rate" in config
    np.testing.assert_array_equal(w, w_copy)
    np.testing.assert_array_equal(dw, dw_copy)
    assert next_w.shape == w.shape
    # A step against the gradient of 0.5 * ||w||^2 (dw = w) shrinks w.
    next_w, _ = getattr(optim, rule)(w, w, {})
    assert np.sum(next_w**2) < np.sum(w**2)
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
    _, config = getattr(optim, rule)(np.ones(3), np.ones(3), {})
    for key, value in defaults.items():
        assert config[key] == value


def test_adam_first_step_moves_every_weight_by_the_learning_rate(optim):
    # With bias correction m_hat / sqrt(v_hat) = sign(dw) on the first step.
    w, dw = np.zeros(4), np.array([3.0, -0.01, 200.0, -5.0])
    next_w, _ = optim.adam(w, dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, -0.1 * np.sign(dw), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Models: gradients of the whole loss.


def model_gradient_errors(model, X, y):
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    errors = {}
    for name, param in model.params.items():
        expected = numeric_gradient(lambda _: model.loss(X, y)[0], param, 1.0, h=1e-5)
        errors[name] = np.max(np.abs(grads[name] - expected))
    return loss, errors


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients(models, reg):
    np.random.seed(0)
    model = models.TwoLayerNet(input_dim=12, hidden_dim=8, num_classes=5, weight_scale=0.5, reg=reg)
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((4, 3, 2, 2)), rng.integers(0, 5, size=4)
    _, errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
@pytest.mark.parametrize("reg, keep", [(0.0, 1), (3.14, 1), (0.5, 0.7)])
def test_fully_connected_net_gradients(models, normalization, reg, keep):
    np.random.seed(1)
    model = models.FullyConnectedNet(
        [7, 6], input_dim=10, num_classes=4, dropout_keep_ratio=keep, normalization=normalization,
        reg=reg, weight_scale=0.5, dtype=np.float64, seed=123,
    )
    rng = np.random.default_rng(10)
    X, y = rng.standard_normal((5, 10)), rng.integers(0, 4, size=5)
    _, errors = model_gradient_errors(model, X, y)
    assert max(errors.values()) < 1e-6, errors


def test_fully_connected_net_parameters_and_modes(models):
    np.random.seed(2)
    model = models.FullyConnectedNet(
        [6, 5], input_dim=8, num_classes=3, dropout_keep_ratio=0.5, normalization="batchnorm",
        seed=4,
    )
    expected_shapes = {
        "W1": (8, 6), "b1": (6,), "gamma1": (6,), "beta1": (6,),
        "W2": (6, 5), "b2": (5,), "gamma2": (5,), "beta2": (5,),
        "W3": (5, 3), "b3": (3,),
    }
    assert {name: p.shape for name, p in model.params.items()} == expected_shapes
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.dropout_param == {"mode": "train", "p": 0.5, "seed": 4}
    X = np.random.randn(4, 8)
    assert model.loss(X).shape == (4, 3)
    assert model.dropout_param["mode"] == "test"
    assert all(bn_param["mode"] == "test" for bn_param in model.bn_params)
    model.loss(X, np.array([0, 1, 2, 0]))
    assert all(bn_param["mode"] == "train" for bn_param in model.bn_params)


def test_two_layer_net_initialization(models):
    np.random.seed(3)
    model = models.TwoLayerNet(input_dim=300, hidden_dim=200, num_classes=10, weight_scale=0.02)
    assert model.params["W1"].shape == (300, 200) and model.params["W2"].shape == (200, 10)
    assert abs(model.params["W1"].std() - 0.02) < 0.001
    assert not model.params["b1"].any() and not model.params["b2"].any()


# ---------------------------------------------------------------------------------------------
# Training entries, on random stand-ins shaped like mean-subtracted CIFAR-10 pixels.


def cifar_like(rng, n):
    return rng.normal(0, 60, size=(n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("seed", [0, 1])
def test_overfit_entry_reaches_full_training_accuracy(models, seed):
    rng = np.random.default_rng(seed)
    X, y = cifar_like(rng, 60)
    data = {"X_train": X[:50], "y_train": y[:50], "X_val": X[50:], "y_val": y[50:]}
    np.random.seed(seed)
    solver = models.create_overfit_solver_instance(data)
    solver.train()
    assert max(solver.train_acc_history) == 1.0


def test_solver_entry_builds_an_untrained_two_layer_net_solver(ref, models):
    rng = np.random.default_rng(11)
    X, y = cifar_like(rng, 40)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    solver = models.create_solver_instance(data)
    assert isinstance(solver, ref["solver"].Solver)
    assert isinstance(solver.model, models.TwoLayerNet)
    assert solver.loss_history == []


def test_solver_stops_before_crossing_its_time_limit(ref, models):
    rng = np.random.default_rng(12)
    X, y = cifar_like(rng, 40)
    data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    model = models.TwoLayerNet(hidden_dim=10)
    solver = ref["solver"].Solver(model, data, num_epochs=1000, batch_size=10, verbose=False)
    solver.train(time_limit=0.3)
    assert solver.stopped_early
    assert 0 < len(solver.loss_history) < 3000
    assert model.params is solver.best_params
    with pytest.raises(ValueError, match="bogus"):
        ref["solver"].Solver(model, data, bogus=1)


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
