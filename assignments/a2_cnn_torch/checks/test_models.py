"""Checks of models.py on tensors: kaiming_initializer's statistics, parameter shapes and initial
values, scores and losses against the reference with the same parameters, and for every model's
documented parameters gradients equal to the numeric gradients of the submission's own loss and to
the reference's, DeepConvNet with several filter and pooling layouts.

Where a model's parameters carry other names than the documented ones, every check of it says so,
listing both, before anything else; where its loss follows another course's L2 convention (0.5 *
reg * sum(W**2)), the loss and gradient checks name that convention."""

import math

import numpy as np
import pytest
import torch

from grader.checking import (answers_live, as_array, assert_close, assert_true, check_dropout_network_gradients,
                            check_model_cost, check_model_gradients, CheckFailed, expect_tuple, fetch, set_params, type_name)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
F64 = torch.float64


def t(array, dtype=F64):
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def fetch_params(model, model_name):
    params = fetch(model.params)
    if not isinstance(params, dict):
        raise CheckFailed(f"{model_name}.params: expected a dict, got {type_name(params)}")
    return params


def expect_names(params, expected, model_name, *, others_allowed=False):
    """The documented parameter names (and, unless `others_allowed`, no others): a model whose names
    differ (W_1, Conv1.w, a 0-based W0) is told both lists, so that no comparison later blames its
    scores or its layout."""
    names = sorted(map(str, params), key=_layer_order)
    documented = sorted(expected, key=_layer_order)
    missing = [n for n in documented if n not in params]
    extra = [n for n in names if n not in expected]
    if missing or (extra and not others_allowed):
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"not documented {', '.join(extra)}"] if extra else [])
        raise CheckFailed(f"{model_name}.params: expected the parameter names {', '.join(documented)}; the model has "
                          f"{', '.join(names) or 'none'} ({'; '.join(problems)}); the grader sets and compares "
                          "parameters by these names")


KINDS = ["W", "b", "gamma", "beta"]


def _layer_order(name):
    """W1, b1, gamma1, beta1, W2, ...: by layer number, then by kind as the stubs list them."""
    kind = name.rstrip("0123456789")
    number = name[len(kind):]
    return int(number) if number else -1, KINDS.index(kind) if kind in KINDS else len(KINDS), name


def expect_documented_names(model, expected, model_name):
    expect_names(fetch_params(model, model_name), expected, model_name, others_allowed=True)


def expect_shapes(params, expected, model_name):
    expect_names(params, expected, model_name)
    for name, shape in expected.items():
        actual = tuple(params[name].shape) if hasattr(params[name], "shape") else None
        if actual != shape:
            raise CheckFailed(f"{model_name}.params[{name!r}]: expected shape {shape}, got {actual}")


def expect_initial_values(params, weight_scale, model_name):
    """Weights a zero-mean Gaussian with std weight_scale, biases zero."""
    for name, value in sorted(params.items()):
        values = value.double().cpu()
        if name.startswith("W"):
            std, mean = float(values.std()), float(values.mean())
            # Within 20 %, or 5 standard errors of a sample this size where that is wider: a correct
            # initialization never fails by chance, a wrong scale still does.
            size = values.numel()
            mean_bound, std_bound = max(0.2, 5 / math.sqrt(size)), max(0.2, 5 / math.sqrt(2 * size))
            assert_true(abs(std / weight_scale - 1) < std_bound and abs(mean) < mean_bound * weight_scale,
                        f"{model_name}.params[{name!r}] has mean {mean:.2e} and std {std:.2e}; expected a zero-mean "
                        f"Gaussian with std weight_scale={weight_scale:g}")
        elif name.startswith("b"):
            assert_true(bool((values == 0).all()), f"{model_name}.params[{name!r}] should start at zero")


def random_params(rng, shapes):
    """Parameters without exact zeros (zero biases put ReLUs at their kink), scaled to keep
    activations near one."""
    params = {}
    for name, shape in shapes.items():
        if name.startswith("W"):
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            params[name] = t(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))
        elif name.startswith("gamma"):
            params[name] = t(1 + 0.1 * rng.standard_normal(shape))
        else:
            params[name] = t(0.1 * rng.standard_normal(shape))
    return params


def half_l2_loss(reference_loss, params, reg):
    """The loss of the same model under CS231n's convention, 0.5 * reg * sum(W**2), from the
    reference's loss under this assignment's, reg * sum(W**2): computed by the grader."""
    squares = sum(float((value.double() ** 2).sum()) for name, value in params.items() if name.startswith("W"))
    return float(as_array(reference_loss, "loss")) - 0.5 * reg * squares


def fail_if_half_l2(loss, reference_loss, params, reg, model_name):
    """Fails naming the convention where the loss is this model's under 0.5 * reg * sum(W**2)."""
    if reg == 0:
        return
    loss, expected = float(as_array(loss, "loss")), float(as_array(reference_loss, "loss"))
    alternative = half_l2_loss(reference_loss, params, reg)
    if np.isclose(loss, alternative, rtol=1e-6, atol=1e-8):
        raise CheckFailed(f"loss of {model_name}.loss(X, y) with reg={reg}: your loss uses 0.5 * reg * sum(W**2); "
                          "this assignment uses reg * sum(W**2) (no 1/2, so the gradient is 2 * reg * W)",
                          f"your loss {loss:.8g}, expected {expected:.8g}, with 0.5 * reg * sum(W**2) "
                          f"{alternative:.8g}")


def losses_match(models, params, X, y, reg, model_name):
    """Scores and loss of the student's model (models[0]) equal to the reference's (models[1]) with
    the same parameters, after the names: the L2 convention named where it is the difference."""
    expect_documented_names(models[0], params, model_name)
    for model in models:
        set_params(model, params)
    assert_close(models[0].loss(X), models[1].loss(X), name=f"scores of {model_name}.loss(X)")
    loss = expect_tuple(models[0].loss(X, y), 2, f"{model_name}.loss(X, y)")[0]
    expected = models[1].loss(X, y)[0]
    fail_if_half_l2(loss, expected, params, reg, model_name)
    assert_close(loss, expected, name=f"loss of {model_name}.loss(X, y) with reg={reg} (L2 term: reg * sum(W**2))")


def labels(rng, n, classes=10):
    return torch.from_numpy(rng.integers(classes, size=n))


def reference_loss(reference_model, params, X, y):
    set_params(reference_model, params)
    return reference_model.loss(X, y)[0]


def explaining_half_l2(check, model, X, y, params, reg, expected_loss, name):
    """Runs `check`; where it fails and the model's loss is its loss under 0.5 * reg * sum(W**2), the
    failure names that convention instead (the gradients are not graded where the loss differs)."""
    try:
        check()
    except CheckFailed:
        if reg:
            set_params(model, params)
            loss = expect_tuple(model.loss(X, y), 2, f"{name}.loss(X, y)")[0]
            fail_if_half_l2(loss, expected_loss, params, reg, name)
        raise


def gradients_match(student, reference, rng, build, shapes, X_shape, name, classes=10, reg=0.0):
    """`build(source)` makes the model on each side; its documented parameters (`shapes`) get random
    values, and its gradients on a random batch must match the numeric and the reference's ones."""
    model, reference_model = build(student), build(reference)
    params = random_params(rng, shapes)
    X, y = t(rng.standard_normal(X_shape)), labels(rng, X_shape[0], classes)
    expect_documented_names(model, shapes, name)
    expected_loss = reference_loss(build(reference), params, X, y)
    explaining_half_l2(
        lambda: check_model_gradients(model, X, y, params=params, reference_model=reference_model, model_name=name,
                                      rng=rng),
        model, X, y, params, reg, expected_loss, name)


# -- kaiming_initializer ---------------------------------------------------------------------------

@pytest.mark.task("kaiming.initializer")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("K", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_kaiming_initializer(student, K, relu, device, dtype):
    Din, Dout = (500, 400) if K is None else (32, 600)
    weight = student.models.kaiming_initializer(Din, Dout, K=K, relu=relu, device=device, dtype=dtype)
    name = f"kaiming_initializer({Din}, {Dout}, K={K}, relu={relu})"
    shape = (Din, Dout) if K is None else (Dout, Din, K, K)
    if not isinstance(weight, torch.Tensor):
        raise CheckFailed(f"{name}: expected a tensor, got {type_name(weight)}")
    assert_true(tuple(weight.shape) == shape, f"{name}: expected shape {shape}, got {tuple(weight.shape)}")
    assert_true(weight.dtype == dtype, f"{name}: expected dtype {dtype}, got {weight.dtype}")
    assert_true(str(weight.device).split(":")[0] == device, f"{name}: expected a tensor on {device}, got {weight.device}")
    fan_in = Din if K is None else Din * K * K
    expected_std = math.sqrt((2.0 if relu else 1.0) / fan_in)
    values = weight.double().cpu()
    measured = float(values.std())
    # With 200,000 samples the sample std is within 1 % of the truth far beyond any reasonable doubt.
    assert_true(abs(measured / expected_std - 1) < 0.02 and abs(float(values.mean())) < 0.02 * expected_std,
                f"{name}: weights have std {measured:.4g} and mean {float(values.mean()):.2g}; expected mean 0 and "
                f"std sqrt({'2' if relu else '1'} / fan_in) = {expected_std:.4g} with fan_in = {fan_in}")


# -- TwoLayerNet and FullyConnectedNet --------------------------------------------------------------

D, H, C = 5, 20, 7
TWO_LAYER_SHAPES = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}


def fc_shapes(hidden, input_dim, num_classes):
    dims = [input_dim, *hidden, num_classes]
    shapes = {}
    for i in range(1, len(dims)):
        shapes[f"W{i}"], shapes[f"b{i}"] = (dims[i - 1], dims[i]), (dims[i],)
    return shapes


@pytest.mark.task("two_layer_net.init")
def test_two_layer_net_init(student):
    model = student.models.TwoLayerNet(input_dim=D * 20, hidden_dim=H * 3, num_classes=10, weight_scale=1e-4,
                                       dtype=F64)
    params = fetch_params(model, "TwoLayerNet")
    expect_shapes(params, {"W1": (D * 20, H * 3), "b1": (H * 3,), "W2": (H * 3, 10), "b2": (10,)}, "TwoLayerNet")
    expect_initial_values(params, 1e-4, "TwoLayerNet")


@pytest.mark.task("two_layer_net.loss")
@pytest.mark.parametrize("reg", [0.0, 1.0])
def test_two_layer_net_scores_and_loss(student, reference, rng, reg):
    params = {name: t(rng.standard_normal(shape)) for name, shape in TWO_LAYER_SHAPES.items()}
    X, y = t(rng.standard_normal((3, D))), labels(rng, 3, C)
    models = [source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, reg=reg, dtype=F64)
              for source in (student, reference)]
    losses_match(models, params, X, y, reg, "TwoLayerNet")


@pytest.mark.task("two_layer_net.gradients")
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients(student, reference, rng, reg):
    gradients_match(student, reference, rng,
                    lambda source: source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, reg=reg,
                                                             dtype=F64),
                    TWO_LAYER_SHAPES, (3, D), f"TwoLayerNet(reg={reg})", classes=C, reg=reg)


FC_HIDDEN = [20, 30]


@pytest.mark.task("fc_net.init")
def test_fc_net_init(student):
    hidden = [60, 50]
    model = student.models.FullyConnectedNet(hidden, input_dim=40, num_classes=10, weight_scale=1e-3, dtype=F64)
    params = fetch_params(model, "FullyConnectedNet")
    expect_shapes(params, fc_shapes(hidden, 40, 10), "FullyConnectedNet")
    expect_initial_values(params, 1e-3, "FullyConnectedNet")


@pytest.mark.task("fc_net.loss")
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fc_net_scores_and_loss(student, reference, rng, reg):
    params = random_params(rng, fc_shapes(FC_HIDDEN, 15, 10))
    X, y = t(rng.standard_normal((4, 15))), labels(rng, 4)
    models = [source.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, reg=reg, dtype=F64)
              for source in (student, reference)]
    losses_match(models, params, X, y, reg, "FullyConnectedNet")


def _fc_network(source, hidden, **kwargs):
    return source.models.FullyConnectedNet(list(hidden), input_dim=15, num_classes=10, dtype=F64, **kwargs)


def _fc_gradient_check(student, reference, rng, *, name, hidden=(20, 30), **kwargs):
    gradients_match(student, reference, rng, lambda source: _fc_network(source, hidden, **kwargs),
                    fc_shapes(list(hidden), 15, 10), (4, 15), name, reg=kwargs.get("reg", 0.0))


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
            return source.models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=5e-2, reg=0.1,
                                             dtype=F64)
        return source.models.FullyConnectedNet([H, H], input_dim=D, num_classes=C, weight_scale=5e-2, reg=0.1,
                                               dtype=F64)

    parameters = D * H + H + H * C + C + (H * H + H if model_name == "FullyConnectedNet" else 0)
    X = torch.from_numpy(rng.standard_normal((N, D)))
    check_model_cost(build(student), X, torch.from_numpy(rng.integers(C, size=N)), name=model_name,
                     parameters=parameters, rng=rng,
                     reference_model=build(reference) if answers_live(reference.models) else None)


@pytest.mark.task("fc_net.gradients")
def test_fc_net_gradients_deeper(student, reference, rng):
    _fc_gradient_check(student, reference, rng, hidden=(10, 12, 8, 9), reg=0.5,
                       name="FullyConnectedNet([10, 12, 8, 9], reg=0.5)")


@pytest.mark.task("fc_net.dropout")
@pytest.mark.parametrize("dropout", [0.25, 0.5])
def test_fc_net_dropout_gradients(student, reference, rng, dropout):
    hidden, seed = (20, 30), 123

    def network(source, with_dropout, reg=None):
        return _fc_network(source, hidden, reg=0.1 if reg is None else reg,
                           **({"dropout": dropout, "seed": seed} if with_dropout else {}))

    shapes = fc_shapes(list(hidden), 15, 10)
    params = random_params(rng, shapes)
    X, y = t(rng.standard_normal((4, 15))), labels(rng, 4)
    name = f"FullyConnectedNet(dropout={dropout})"
    without_dropout = network(student, False)
    expect_documented_names(without_dropout, shapes, name)
    explaining_half_l2(
        lambda: check_dropout_network_gradients(
            network, student, reference, params, X, y,
            dropout=(student.layers.Dropout.forward, reference.layers.Dropout.forward),
            dropout_param={"mode": "train", "p": dropout, "seed": seed}, keep=1 - dropout,
            hidden_shapes=[(4, h) for h in hidden], name=name, name_without_dropout="FullyConnectedNet(dropout=0)",
            rng=rng),
        without_dropout, X, y, params, 0.1, reference_loss(network(reference, False), params, X, y),
        "FullyConnectedNet(dropout=0)")


@pytest.mark.task("fc_net.dropout")
def test_fc_net_dropout_param_names_the_drop_probability(student):
    model = student.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, dropout=0.3, seed=5, dtype=F64)
    dropout_param = fetch(model.dropout_param)
    assert_true(isinstance(dropout_param, dict) and dropout_param.get("p") == 0.3 and dropout_param.get("seed") == 5,
                f"FullyConnectedNet(dropout=0.3, seed=5).dropout_param is {dropout_param!r}; the dropout layers need "
                "{'mode': ..., 'p': 0.3, 'seed': 5} (p is the probability of dropping a unit)")


@pytest.mark.task("fc_net.dropout")
def test_fc_net_dropout_is_identity_at_test_time(student, rng):
    params = random_params(rng, fc_shapes(FC_HIDDEN, 15, 10))
    X = t(rng.standard_normal((5, 15)))
    with_dropout = student.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, dropout=0.7, seed=1,
                                                    dtype=F64)
    without = student.models.FullyConnectedNet(FC_HIDDEN, input_dim=15, num_classes=10, dtype=F64)
    expect_documented_names(with_dropout, params, "FullyConnectedNet(dropout=0.7)")
    set_params(with_dropout, params)
    set_params(without, params)
    assert_close(with_dropout.loss(X), without.loss(X),
                 name="scores of FullyConnectedNet with dropout at test time (should equal those without dropout)")


# -- ThreeLayerConvNet -----------------------------------------------------------------------------

CONV_INPUT = (3, 8, 8)


def three_layer_shapes(num_filters=3, filter_size=3, hidden=7, classes=10, input_dims=CONV_INPUT):
    C_in, H_in, W_in = input_dims
    pad = (filter_size - 1) // 2
    conv_h, conv_w = H_in + 2 * pad - filter_size + 1, W_in + 2 * pad - filter_size + 1
    return {"W1": (num_filters, C_in, filter_size, filter_size), "b1": (num_filters,),
            "W2": (num_filters * (conv_h // 2) * (conv_w // 2), hidden), "b2": (hidden,),
            "W3": (hidden, classes), "b3": (classes,)}


def three_layer(source, **kwargs):
    return source.models.ThreeLayerConvNet(input_dims=CONV_INPUT, num_filters=3, filter_size=3, hidden_dim=7,
                                           dtype=F64, **kwargs)


@pytest.mark.task("three_layer_convnet.init")
def test_three_layer_convnet_init(student):
    model = three_layer(student, weight_scale=1e-3)
    expect_shapes(fetch_params(model, "ThreeLayerConvNet"), three_layer_shapes(), "ThreeLayerConvNet")


@pytest.mark.task("three_layer_convnet.init")
@pytest.mark.parametrize("filter_size", [5, 7])
def test_three_layer_convnet_parameters(student, filter_size):
    model = student.models.ThreeLayerConvNet(input_dims=(3, 10, 12), num_filters=20, filter_size=filter_size,
                                             hidden_dim=30, weight_scale=2e-2, dtype=F64)
    params = fetch_params(model, "ThreeLayerConvNet")
    expect_shapes(params, three_layer_shapes(20, filter_size, 30, 10, (3, 10, 12)),
                  f"ThreeLayerConvNet(filter_size={filter_size})")
    expect_initial_values(params, 2e-2, "ThreeLayerConvNet")


@pytest.mark.task("three_layer_convnet.loss")
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_three_layer_convnet_scores_and_loss(student, reference, rng, reg):
    params = random_params(rng, three_layer_shapes())
    X, y = t(rng.standard_normal((2, *CONV_INPUT))), labels(rng, 2)
    models = [three_layer(source, reg=reg) for source in (student, reference)]
    losses_match(models, params, X, y, reg, "ThreeLayerConvNet")


@pytest.mark.task("three_layer_convnet.gradients")
@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_three_layer_convnet_gradients(student, reference, rng, reg):
    gradients_match(student, reference, rng, lambda source: three_layer(source, reg=reg), three_layer_shapes(),
                    (2, *CONV_INPUT), f"ThreeLayerConvNet(reg={reg})", reg=reg)


# -- DeepConvNet -----------------------------------------------------------------------------------

LAYOUTS = [([3, 4], [0]), ([2, 3, 4], [0, 2]), ([4], []), ([3, 3, 2], [0, 1, 2])]


def deep_shapes(num_filters, max_pools, batchnorm, input_dims=CONV_INPUT, classes=10):
    C_in, H_in, W_in = input_dims
    shapes, previous = {}, C_in
    for i, filters in enumerate(num_filters, start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (filters, previous, 3, 3), (filters,)
        if batchnorm:
            shapes[f"gamma{i}"], shapes[f"beta{i}"] = (filters,), (filters,)
        previous = filters
        if i - 1 in max_pools:
            H_in, W_in = H_in // 2, W_in // 2
    last = len(num_filters) + 1
    shapes[f"W{last}"], shapes[f"b{last}"] = (previous * H_in * W_in, classes), (classes,)
    return shapes


def deep(source, num_filters, max_pools, **kwargs):
    return source.models.DeepConvNet(input_dims=CONV_INPUT, num_filters=num_filters, max_pools=max_pools, dtype=F64,
                                     **kwargs)


@pytest.mark.task("deep_convnet.init")
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("num_filters,max_pools", LAYOUTS)
def test_deep_convnet_parameters(student, num_filters, max_pools, batchnorm):
    model = deep(student, num_filters, max_pools, batchnorm=batchnorm, weight_scale="kaiming")
    params = fetch_params(model, "DeepConvNet")
    expect_shapes(params, deep_shapes(num_filters, max_pools, batchnorm),
                  f"DeepConvNet(num_filters={num_filters}, max_pools={max_pools}, batchnorm={batchnorm})")


@pytest.mark.task("deep_convnet.init")
def test_deep_convnet_kaiming_weights(student):
    model = deep(student, [64, 64], [], weight_scale="kaiming")
    params = fetch_params(model, "DeepConvNet")
    expect_names(params, deep_shapes([64, 64], [], False), "DeepConvNet")
    # A convolution followed by a ReLU has gain 2; the output layer, followed by none, gain 1.
    for name, fan_in, gain in (("W2", 64 * 9, 2.0), ("W3", 64 * 8 * 8, 1.0)):
        measured, expected = float(params[name].double().std()), math.sqrt(gain / fan_in)
        assert_true(abs(measured / expected - 1) < 0.05,
                    f"DeepConvNet(weight_scale='kaiming').params[{name!r}] has std {measured:.4g}; Kaiming "
                    f"initialization gives sqrt({gain:g} / {fan_in}) = {expected:.4g}")


@pytest.mark.task("deep_convnet.loss")
@pytest.mark.parametrize("num_filters,max_pools", LAYOUTS[:2])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_deep_convnet_scores_and_loss(student, reference, rng, num_filters, max_pools, reg):
    params = random_params(rng, deep_shapes(num_filters, max_pools, False))
    X, y = t(rng.standard_normal((2, *CONV_INPUT))), labels(rng, 2)
    models = [deep(source, num_filters, max_pools, reg=reg) for source in (student, reference)]
    losses_match(models, params, X, y, reg, f"DeepConvNet(num_filters={num_filters}, max_pools={max_pools})")


@pytest.mark.task("deep_convnet.gradients")
@pytest.mark.parametrize("num_filters,max_pools", LAYOUTS)
def test_deep_convnet_gradients(student, reference, rng, num_filters, max_pools):
    reg = 0.0 if len(num_filters) % 2 else 0.4
    gradients_match(student, reference, rng, lambda source: deep(source, num_filters, max_pools, reg=reg),
                    deep_shapes(num_filters, max_pools, False), (2, *CONV_INPUT),
                    f"DeepConvNet(num_filters={num_filters}, max_pools={max_pools}, reg={reg})", reg=reg)


@pytest.mark.task("deep_convnet.batchnorm")
@pytest.mark.parametrize("num_filters,max_pools", LAYOUTS[:2])
def test_deep_convnet_batchnorm_gradients(student, reference, rng, num_filters, max_pools):
    gradients_match(student, reference, rng,
                    lambda source: deep(source, num_filters, max_pools, batchnorm=True, reg=0.1),
                    deep_shapes(num_filters, max_pools, True), (3, *CONV_INPUT),
                    f"DeepConvNet(num_filters={num_filters}, batchnorm=True)", reg=0.1)
