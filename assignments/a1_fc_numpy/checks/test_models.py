"""Checks of models.py: parameter shapes and initial values, scores and loss against the reference
with the same parameters, and for the documented parameters gradients equal to the numeric gradients
of the submission's own loss and to the reference's."""

import re

import numpy as np
import pytest

from grader.checking import (answers_live, assert_close, assert_close_naming_conventions, assert_true,
                            check_dropout_network_gradients, check_model_cost, check_model_gradients, CheckFailed, expect_tuple,
                            fetch, OtherConvention, parameter_names_differ, set_params, StudentException,
                            type_name)

N, D, H, C = 3, 5, 50, 7
FC_HIDDEN = [20, 30]


def fetch_params(model, model_name):
    params = fetch(model.params)
    if not isinstance(params, dict):
        raise CheckFailed(f"{model_name}.params: expected a dict, got {type_name(params)}")
    return params


def compare_outputs(student, reference, build, params, X, y, reg, model_name):
    """Scores and loss of the submission's model and the reference's, `params` set on both by their
    documented names. Where they differ and the model kept its own parameters under other names, the
    message names both; where the loss follows the other L2 convention, it names both conventions."""
    student_model, reference_model = build(student, reg), build(reference, reg)
    own = fetch(student_model.params)  # the names the model gave its parameters itself
    set_params(student_model, params)
    set_params(reference_model, params)
    try:
        assert_close(student_model.loss(X), reference_model.loss(X), name=f"scores of {model_name}.loss(X)")
        loss, _ = expect_tuple(student_model.loss(X, y), 2, f"{model_name}.loss(X, y)")
        expected, _ = reference_model.loss(X, y)
        assert_close_naming_conventions(loss, expected, name=f"loss of {model_name}.loss(X, y) with reg={reg}",
                                        others=l2_conventions(reference, build, params, X, y, reg, model_name))
    except (CheckFailed, StudentException) as failure:
        # Setting a documented name the model does not use changes nothing, or, where the model uses that
        # name for another layer (numbered from 0), makes it raise: either way the names are the cause.
        if isinstance(own, dict) and not set(params) <= set(own):
            raise CheckFailed(parameter_names_differ(sorted(params, key=documented_order), list(own), model_name),
                              str(failure)) from None
        raise


def expect_names(params, expected, model_name):
    """The documented parameter names are the keys of params: the checks set parameters by them."""
    if not set(expected) <= set(params):
        raise CheckFailed(parameter_names_differ(sorted(expected, key=documented_order), list(params), model_name))


def documented_order(name):
    """W1, b1, gamma1, beta1, W2, ...: the order the docstrings list parameters in."""
    kind, layer = re.fullmatch(r"(\D+)(\d+)", name).groups()
    return int(layer), ["W", "b", "gamma", "beta"].index(kind)


def expect_shapes(params, expected, model_name):
    expect_names(params, expected, model_name)
    extra = sorted(set(params) - set(expected), key=str)
    if extra:
        raise CheckFailed(f"{model_name}.params has unexpected entries {', '.join(map(str, extra))}: the docstring "
                          "lists every parameter, and the Solver updates each entry of params with its gradient")
    for name, shape in expected.items():
        actual = np.shape(params[name])
        if actual != shape:
            raise CheckFailed(f"{model_name}.params[{name!r}]: expected shape {shape}, got {actual}")


def expect_gaussian_weights(params, std, model_name):
    """Every weight matrix W<i> looks like a zero-mean Gaussian with standard deviation `std`."""
    for name, weights in sorted(params.items()):
        if str(name).startswith("W"):
            measured, mean = float(np.std(weights)), float(np.mean(weights))
            # Within 20 %, or 5 standard errors of a sample this size where that is wider: a correct
            # initialization never fails by chance, a wrong scale still does.
            size = int(np.size(weights))
            mean_bound, std_bound = max(0.2, 5 / np.sqrt(size)), max(0.2, 5 / np.sqrt(2 * size))
            assert_true(abs(measured / std - 1) < std_bound and abs(mean) < mean_bound * std,
                        f"{model_name}.params[{name!r}] has mean {mean:.2e} and std {measured:.2e}; expected a "
                        f"zero-mean Gaussian with std weight_scale={std:g}")


def l2_conventions(source, build, params, X, y, reg, model_name):
    """The other L2 convention of the course materials, reg * sum(W**2) where this assignment has 0.5 *
    reg * sum(W**2): the reference's loss with reg doubled is the loss under it."""
    if reg == 0:
        return []
    other = build(source, 2 * reg)
    set_params(other, params)
    loss, _ = other.loss(X, y)
    return [OtherConvention(loss, f"your loss uses reg * sum(W**2) for the L2 term; this assignment uses 0.5 * reg * "
                                  f"sum(W**2) (the {model_name} docstring states it), whose gradient is reg * W")]


def linspace_params(shapes):
    """Deterministic, distinct parameter values, as the course notebooks set them."""
    return {name: np.linspace(-0.7 + 0.1 * i, 0.3 + 0.05 * i, num=int(np.prod(shape))).reshape(shape)
            for i, (name, shape) in enumerate(sorted(shapes.items()))}


def fc_shapes(hidden, input_dim, num_classes, normalization=None):
    dims = [input_dim, *hidden, num_classes]
    shapes = {}
    for i in range(1, len(dims)):
        shapes[f"W{i}"], shapes[f"b{i}"] = (dims[i - 1], dims[i]), (dims[i],)
        if normalization and i < len(dims) - 1:
            shapes[f"gamma{i}"], shapes[f"beta{i}"] = (dims[i],), (dims[i],)
    return shapes


TWO_LAYER_SHAPES = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}


# -- TwoLayerNet -----------------------------------------------------------------------------------

@pytest.mark.task("two_layer_net.init")
def test_two_layer_net_parameters(student):
    std = 1e-3
    model = student.models.TwoLayerNet(input_dim=D * 40, hidden_dim=H, num_classes=C, weight_scale=std)
    params = fetch_params(model, "TwoLayerNet")
    expect_shapes(params, {"W1": (D * 40, H), "b1": (H,), "W2": (H, C), "b2": (C,)}, "TwoLayerNet")
    for bias in ("b1", "b2"):
        assert_true(np.all(params[bias] == 0), f"TwoLayerNet.params[{bias!r}] should start at zero")
    expect_gaussian_weights(params, std, "TwoLayerNet")


@pytest.mark.task("two_layer_net.loss")
@pytest.mark.parametrize("inputs", ["course", "random"])
@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_two_layer_net_scores_and_loss(student, reference, rng, reg, inputs):
    if inputs == "course":  # the notebook's values: every hidden unit happens to be active
        params = linspace_params(TWO_LAYER_SHAPES)
        X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
        y = np.array([0, 5, 1])
    else:  # half the hidden units inactive: the ReLU matters
        params = {name: rng.standard_normal(shape) for name, shape in TWO_LAYER_SHAPES.items()}
        X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)

    def build(source, reg):
        return source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, reg=reg)

    compare_outputs(student, reference, build, params, X, y, reg, "TwoLayerNet")


@pytest.mark.task("two_layer_net.gradients")
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients(student, reference, rng, reg):
    def build(source, reg):
        return source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=5e-2, reg=reg)

    model, reference_model = build(student, reg), build(reference, reg)
    params = random_params(rng, TWO_LAYER_SHAPES)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    check_model_gradients(model, X, y, params=params, reference_model=reference_model,
                          model_name=f"TwoLayerNet(reg={reg})", rng=rng,
                          other_conventions=l2_conventions(reference, build, params, X, y, reg, "TwoLayerNet"))


# -- FullyConnectedNet -----------------------------------------------------------------------------

@pytest.mark.task("fc_net.init")
@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_parameters(student, normalization):
    model = student.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, weight_scale=5e-2,
                                             normalization=normalization, dtype=np.float64)
    params = fetch_params(model, "FullyConnectedNet")
    expect_shapes(params, fc_shapes(FC_HIDDEN, 15, 10, normalization), f"FullyConnectedNet({normalization})")
    for name, value in params.items():
        assert_true(np.asarray(value).dtype == np.float64,
                    f"FullyConnectedNet.params[{name!r}] has dtype {np.asarray(value).dtype}, not the model's float64")
        if name.startswith(("b", "beta")):
            assert_true(np.all(value == 0), f"FullyConnectedNet.params[{name!r}] should start at zero")
        if name.startswith("gamma"):
            assert_true(np.all(value == 1), f"FullyConnectedNet.params[{name!r}] should start at one")


@pytest.mark.task("fc_net.init")
def test_fc_net_weights_follow_weight_scale(student):
    std = 3e-2
    model = student.models.FullyConnectedNet([100, 80], input_dim=60, num_classes=10, weight_scale=std,
                                             dtype=np.float64)
    expect_gaussian_weights(fetch_params(model, "FullyConnectedNet"), std, "FullyConnectedNet")


@pytest.mark.task("fc_net.loss")
@pytest.mark.parametrize("inputs", ["course", "random"])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fc_net_scores_and_loss(student, reference, rng, reg, inputs):
    # The notebook's values, and values drawn for each grading: a network that only looks up the
    # notebook's answers cannot pass.
    if inputs == "course":
        params = linspace_params(fc_shapes(FC_HIDDEN, 15, 10))
        X = np.linspace(-3, 3, num=4 * 15).reshape(4, 15)
        y = np.array([1, 9, 0, 4])
    else:
        params = random_params(rng, fc_shapes(FC_HIDDEN, 15, 10))
        X, y = rng.standard_normal((4, 15)), rng.integers(10, size=4)

    def build(source, reg):
        return source.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, reg=reg, dtype=np.float64)

    compare_outputs(student, reference, build, params, X, y, reg, "FullyConnectedNet")


def random_params(rng, shapes):
    """Parameters with no exact zeros (zero biases put ReLUs at their kink when a whole layer's input
    is dropped), so the numeric gradient is smooth around them."""
    params = {}
    for name, shape in shapes.items():
        if name.startswith("W"):
            params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / shape[0])
        elif name.startswith("gamma"):
            params[name] = 1 + 0.1 * rng.standard_normal(shape)
        else:
            params[name] = 0.1 * rng.standard_normal(shape)
    return params


def _fc_network(source, hidden, reg, **kwargs):
    return source.models.FullyConnectedNet(list(hidden), input_dim=15, num_classes=10, reg=reg, weight_scale=5e-2,
                                           dtype=np.float64, **kwargs)


def _fc_gradient_check(student, reference, rng, *, reg=0.0, hidden=(20, 30), name="FullyConnectedNet", **kwargs):
    def build(source, reg):
        return _fc_network(source, hidden, reg, **kwargs)

    model, reference_model = build(student, reg), build(reference, reg)
    params = random_params(rng, fc_shapes(list(hidden), 15, 10, kwargs.get("normalization")))
    X, y = rng.standard_normal((4, 15)), rng.integers(10, size=4)
    check_model_gradients(model, X, y, params=params, reference_model=reference_model, model_name=name, rng=rng,
                          other_conventions=l2_conventions(reference, build, params, X, y, reg, "FullyConnectedNet"))


@pytest.mark.task("fc_net.gradients")
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fc_net_gradients(student, reference, rng, reg):
    _fc_gradient_check(student, reference, rng, reg=reg, name=f"FullyConnectedNet(reg={reg})")


@pytest.mark.parametrize("model_name", [pytest.param("TwoLayerNet", marks=pytest.mark.task("two_layer_net.gradients")),
                                        pytest.param("FullyConnectedNet", marks=pytest.mark.task("fc_net.gradients"))])
def test_gradients_cost_about_what_the_scores_cost(student, reference, rng, model_name):
    """Gradients by backpropagation, not by finite differences of the loss (see check_backward_cost):
    with 10^5 parameters and more, those take minutes."""
    D, H, C, N = 1000, 200, 10, 2

    def build(source):
        if model_name == "TwoLayerNet":
            return source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=5e-2, reg=0.1)
        return source.models.FullyConnectedNet([H, H], input_dim=D, num_classes=C, weight_scale=5e-2, reg=0.1,
                                               dtype=np.float64)

    parameters = D * H + H + H * C + C + (H * H + H if model_name == "FullyConnectedNet" else 0)
    check_model_cost(build(student), rng.standard_normal((N, D)), rng.integers(0, C, N), name=model_name,
                     parameters=parameters, rng=rng,
                     reference_model=build(reference) if answers_live(reference.models) else None)


@pytest.mark.task("fc_net.gradients")
def test_fc_net_gradients_deeper(student, reference, rng):
    _fc_gradient_check(student, reference, rng, hidden=(10, 12, 8, 9), reg=0.5,
                       name="FullyConnectedNet([10, 12, 8, 9], reg=0.5)")


@pytest.mark.task("fc_net.dropout")
@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_fc_net_dropout_gradients(student, reference, rng, keep):
    hidden, seed = (20, 30), 123

    def network(source, with_dropout, reg=None):
        return _fc_network(source, hidden, 0.1 if reg is None else reg,
                           **({"dropout_keep_ratio": keep, "seed": seed} if with_dropout else {}))

    params = random_params(rng, fc_shapes(list(hidden), 15, 10))
    X, y = rng.standard_normal((4, 15)), rng.integers(10, size=4)
    check_dropout_network_gradients(network, student, reference, params, X, y,
                                    dropout=(student.layers.dropout_forward, reference.layers.dropout_forward),
                                    dropout_param={"mode": "train", "p": keep, "seed": seed}, keep=keep,
                                    hidden_shapes=[(4, h) for h in hidden],
                                    name=f"FullyConnectedNet(dropout_keep_ratio={keep})",
                                    name_without_dropout="FullyConnectedNet(dropout_keep_ratio=1)", rng=rng)


@pytest.mark.task("fc_net.dropout")
def test_fc_net_dropout_is_identity_at_test_time(student, rng):
    params = linspace_params(fc_shapes(FC_HIDDEN, 15, 10))
    X = rng.standard_normal((5, 15))
    kwargs = dict(input_dim=15, num_classes=10, dtype=np.float64)
    with_dropout = student.models.FullyConnectedNet(FC_HIDDEN, dropout_keep_ratio=0.3, seed=1, **kwargs)
    without = student.models.FullyConnectedNet(FC_HIDDEN, **kwargs)
    set_params(with_dropout, params)
    set_params(without, params)
    assert_close(with_dropout.loss(X), without.loss(X),
                 name="scores of FullyConnectedNet with dropout at test time (should equal those without dropout)")


@pytest.mark.task("fc_net.batchnorm")
@pytest.mark.parametrize("reg", [0.0, 0.9])
def test_fc_net_batchnorm_gradients(student, reference, rng, reg):
    _fc_gradient_check(student, reference, rng, reg=reg, normalization="batchnorm",
                       name=f"FullyConnectedNet(normalization='batchnorm', reg={reg})")


@pytest.mark.task("fc_net.layernorm")
@pytest.mark.parametrize("reg", [0.0, 0.9])
def test_fc_net_layernorm_gradients(student, reference, rng, reg):
    _fc_gradient_check(student, reference, rng, reg=reg, normalization="layernorm",
                       name=f"FullyConnectedNet(normalization='layernorm', reg={reg})")
