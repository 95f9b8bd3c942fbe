"""Checks of the torch.nn modules: each module's state_dict has the documented names and shapes, and
with the same weights as the reference (loaded by those names) its output equals the reference's,
in training and in evaluation mode, for every shortcut case; Kaiming statistics of the convnets;
output shapes and parameter counts of the named residual networks; gradients that reach every
parameter; and no parameter created in forward."""

import math
import re

import numpy as np
import pytest
import torch

from grader.checking import assert_close, assert_true, CheckFailed, fetch, StudentException

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
F64 = torch.float64
SMALL_NETWORKS = ["plain8", "resnet8", "resnet11"]
# Channels of the last stage of each named network; every one downsamples twice.
LAST_CHANNELS = {"plain8": 32, "resnet8": 32, "resnet11": 32, "plain32": 32, "resnet32": 32, "resnet47": 128}
BLOCKS = ("PlainBlock", "ResidualBlock", "ResidualBottleneckBlock")


def t(array, dtype=F64, device="cpu"):
    """A tensor built by the grader from a NumPy array the check drew."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype=dtype, device=device)


def call_text(factory, args, kwargs):
    parts = [repr(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
    return f"{factory}({', '.join(parts)})"


def with_blocks(source, kwargs):
    """`block="PlainBlock"` stands for the class of that name on each side."""
    if "block" not in kwargs:
        return kwargs
    return dict(kwargs, block=fetch(getattr(source.models, kwargs["block"])))


def random_state(rng, shapes):
    """Values for every entry of a state_dict: weights scaled to keep activations near one, batch
    normalization's scales near one and shifts, biases and running averages away from zero."""
    state = {}
    for name, shape in shapes.items():
        kind = name.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            state[name] = torch.tensor(0)
        elif kind == "running_mean":
            state[name] = t(0.3 * rng.standard_normal(shape))
        elif kind == "running_var":
            state[name] = t(0.5 + rng.random(shape))
        elif len(shape) >= 2:
            state[name] = t(rng.standard_normal(shape) * math.sqrt(2.0 / math.prod(shape[1:])))
        elif kind == "weight":
            state[name] = t(1 + 0.2 * rng.standard_normal(shape))
        else:
            state[name] = t(0.2 * rng.standard_normal(shape))
    return state


def listed(names, most=6):
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def expect_state_shapes(actual, expected, label, *, block_case=None, may_wrap=()):
    """The student's state_dict has exactly the reference's names, with the same shapes, or differs
    only by the layers of `may_wrap` sitting in an nn.Sequential (`fc.1.weight` for `fc.weight`).
    Returns {reference name: the student's name} for every entry."""
    if not isinstance(actual, dict):
        raise CheckFailed(f"{label}: its state_dict could not be read")
    missing = [name for name in expected if name not in actual]
    unexpected = [name for name in actual if name not in expected]
    for name in expected:
        if name in actual and tuple(actual[name]) != tuple(expected[name]):
            raise CheckFailed(f"{label}.state_dict() " + (layer_order_difference(actual, expected) or
                              f"[{name!r}] has shape {tuple(actual[name])}, expected {tuple(expected[name])}"))
    names = {name: name for name in expected if name in actual}
    allowed = {ours: theirs for ours, theirs in sequential_wrappings(missing, unexpected, actual, expected).items()
               if layer_of(ours) in may_wrap}
    names.update(allowed)
    missing = [name for name in missing if name not in allowed]
    unexpected = [name for name in unexpected if name not in allowed.values()]
    if missing or unexpected:
        raise CheckFailed(f"{label}.state_dict() " + explain_state_difference(missing, unexpected, actual, expected,
                                                                              block_case))
    return names


def layer_of(name):
    """The submodule an entry belongs to: "fc" for "fc.weight", "block.net.2" for "block.net.2.bias"."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def sequential_wrappings(missing, unexpected, actual, expected):
    """{reference name: the student's name} for entries of a layer the student put inside an
    nn.Sequential: the reference's "fc.weight" is the student's "fc.1.weight", with the same shape."""
    renamed = {}
    for name in missing:
        layer, leaf = layer_of(name), name.rsplit(".", 1)[-1]
        inside = re.compile(re.escape(layer) + r"\.\d+\." + re.escape(leaf))
        candidates = [u for u in unexpected if inside.fullmatch(u) and tuple(actual[u]) == tuple(expected[name])]
        if len(candidates) == 1:
            renamed[name] = candidates[0]
    return renamed


def moved_layers(missing, unexpected, actual, expected):
    """{reference layer: the student's layer} where every missing entry is explained by a layer of the same
    nn.Sequential at another position with the same entries and shapes ("net.1" for "net.0"); else {}."""
    def entries(names, shapes):
        layers = {}
        for name in names:
            layers.setdefault(layer_of(name), {})[name.rsplit(".", 1)[-1]] = tuple(shapes[name])
        return layers

    wanted, found = entries(missing, expected), entries(unexpected, actual)
    moved, taken = {}, set()
    for layer, content in wanted.items():
        parent, _, position = layer.rpartition(".")
        if not position.isdigit():
            return {}
        match = next((other for other, its in found.items() if other not in taken and its == content
                      and other.rpartition(".")[0] == parent and other.rpartition(".")[2].isdigit()), None)
        if match is None:
            return {}
        moved[layer] = match
        taken.add(match)
    return moved


def layer_kinds(shapes):
    """{nn.Sequential: [the kind of each of its layers with entries, in order]} ("batch norm" for a layer
    with running statistics, "conv" for a 4-d weight, "linear" for a 2-d one)."""
    entries = {}
    for name, shape in shapes.items():
        layer = layer_of(name)
        parent, _, position = layer.rpartition(".")
        if position.isdigit():
            entries.setdefault(parent, {}).setdefault(int(position), {})[name.rsplit(".", 1)[-1]] = tuple(shape)
    kinds = {}
    for parent, layers in entries.items():
        kinds[parent] = ["batch norm" if "running_mean" in leaves else
                         {4: "conv", 2: "linear"}.get(len(leaves.get("weight", ())), "layer")
                         for _, leaves in sorted(layers.items())]
    return kinds


def layer_order_difference(actual, expected):
    """Where an nn.Sequential holds the docstring's kinds of layer in another order (conv - BN - ReLU,
    the original ResNet's, for the docstring's pre-activation BN - ReLU - conv), those orders; else ""."""
    ours, theirs = layer_kinds(actual), layer_kinds(expected)
    for parent, wanted in theirs.items():
        found = ours.get(parent)
        if found and found != wanted and sorted(found) == sorted(wanted):
            pre = " (the blocks are pre-activation: each convolution comes after its batch norm and ReLU)" \
                if wanted[0] == "batch norm" and found[0] == "conv" else ""
            return (f"holds in {parent}, in order, {', '.join(found)}; the docstring's {parent} holds "
                    f"{', '.join(wanted)}{pre}. In an nn.Sequential a layer's position is its name: build it in "
                    "the docstring's order")
    return ""


SHORTCUT_ENTRIES = ("shortcut.weight", "shortcut.bias")


def explain_state_difference(missing, unexpected, actual, expected, block_case):
    """Why the names differ, in the words of the docstrings where the difference is a known one;
    else the names themselves."""
    wrapped_layers = sorted({layer_of(name) for name in sequential_wrappings(missing, unexpected, actual, expected)})
    if wrapped_layers:
        layer = wrapped_layers[0]
        theirs = [name for name in unexpected if name.startswith(layer + ".")]
        ours = [name for name in missing if layer_of(name) == layer]
        return (f"has {listed(theirs)} where the docstring's {layer} has {', '.join(ours)}: your {layer} is "
                f"wrapped in an nn.Sequential; keep {layer} the single layer the docstring gives, not inside an "
                f"nn.Sequential, so that its keys stay {', '.join(ours)}")
    moved = moved_layers(missing, unexpected, actual, expected)
    if moved:
        pairs = ", ".join(f"{theirs} where the docstring has {ours}" for ours, theirs in list(moved.items())[:3])
        return (f"has the entries of {pairs}: the layers of your nn.Sequential are not in the docstring's order "
                "(or one is missing or added), and in an nn.Sequential a layer's position is its name")
    if missing and not unexpected and all(name.endswith(SHORTCUT_ENTRIES) for name in missing):
        if block_case is not None:
            Cin, Cout, downsample = block_case
            if downsample and Cin == Cout:
                return ("has no shortcut.weight, shortcut.bias: downsampling (stride 2) needs a 1x1 shortcut with "
                        "stride 2 even when the channels stay the same; your block has none (an identity shortcut "
                        "adds x at its full height and width to the halved block(x))")
            return (f"has no shortcut.weight, shortcut.bias: the channels change ({Cin} to {Cout}), so the "
                    f"shortcut is a 1x1 convolution{' with stride 2' if downsample else ''}; your block has none")
        return (f"has no {listed(missing)}: a block that downsamples (stride 2) needs a 1x1 shortcut with stride 2 "
                "even when its channels stay the same, and a block that changes its channels a 1x1 shortcut; "
                "the identity fits only a block that does neither")
    if unexpected and not missing and all(name.endswith(SHORTCUT_ENTRIES) for name in unexpected):
        return (f"has unexpected entries {listed(unexpected)}: a block that keeps its channels and does not "
                "downsample has the identity (nn.Identity(), no parameters) as its shortcut")
    if missing and not unexpected and all(name.endswith(".bias") and len(expected[layer_of(name) + ".weight"]) == 4
                                          for name in missing):
        return (f"has no {listed(missing)}: your convolutions have no bias (bias=False); the docstring's "
                "convolutions keep theirs (nn.Conv2d's default bias=True), and the grader loads a value into each")
    parts = []
    if missing:
        parts.append(f"has no {listed(missing)}")
    if unexpected:
        parts.append(f"has unexpected entries {listed(unexpected)}")
    return (f"{' and '.join(parts)}; the grader loads weights by the names the docstring gives to the submodules "
            f"(expected: {listed(list(expected), 8)})")


# The ResNet's classifier may sit in an nn.Sequential with layers that hold no parameters (its
# docstring says so): the arithmetic, not the wrapping, is graded.
MAY_WRAP = {"ResNet": ("fc",), "get_resnet": ("fc",)}


def block_case(factory, args, kwargs):
    """(Cin, Cout, downsample) of a residual block, which decides its shortcut; None for other modules."""
    if factory not in ("ResidualBlock", "ResidualBottleneckBlock"):
        return None
    return args[0], args[1], kwargs.get("downsample", args[2] if len(args) > 2 else False)


def paired(student, reference, rng, factory, *args, **kwargs):
    """The student's and the reference's module, built with the same arguments, in float64 and
    holding the same random weights (loaded by name into both). Returns them with a label and the
    names of the student's state_dict entries, {reference name: student name}."""
    label = call_text(factory, args, kwargs)
    ours = getattr(student.models, factory)(*args, **with_blocks(student, kwargs))
    theirs = getattr(reference.models, factory)(*args, **with_blocks(reference, kwargs))
    expected = reference.utils.state_shapes(theirs)
    names = expect_state_shapes(student.utils.state_shapes(ours), expected, label,
                                block_case=block_case(factory, args, kwargs), may_wrap=MAY_WRAP.get(factory, ()))
    weights = random_state(rng, expected)
    theirs.double()
    theirs.load_state_dict(weights)
    ours.double()
    ours.load_state_dict({names[name]: value for name, value in weights.items()})
    return ours, theirs, label, names


def outputs_match(student, reference, ours, theirs, x, label, names, *, check_running_averages=True):
    """Training mode, then evaluation mode (with the running averages the training-mode pass left):
    the same outputs as the reference; the same running averages; no new parameters."""
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        assert_close(ours(x), theirs(x), name=f"output of {label} in {mode} mode for x of shape {tuple(x.shape)}")
        if mode == "train" and check_running_averages:
            state, wanted = student.utils.buffer_tensors(ours), reference.utils.buffer_tensors(theirs)
            for name in wanted:
                if name.endswith(("running_mean", "running_var")):
                    assert_close(state[names[name]], wanted[name],
                                 name=f"{label}.state_dict()[{name!r}] after a forward pass in training mode")
    expect_the_same_state_entries(student, ours, names, label)


def expect_the_same_state_entries(student, ours, names, label):
    """After forward the module has the state_dict entries it had before, in any order (the order of
    its layers' creation in __init__, which nothing prescribes)."""
    after = student.utils.state_shapes(ours)
    created = [name for name in after if name not in names.values()]
    assert_true(not created, f"{label} has new state_dict entries after forward ({', '.join(created[:6])}); create "
                             "every layer in __init__, so that the optimizer and state_dict see it from the start")
    gone = [name for name in names.values() if name not in after]
    assert_true(not gone, f"{label} has lost state_dict entries in forward ({', '.join(gone[:6])}); keep every "
                          "layer that __init__ created")


def near(value, target):
    return abs(value / target - 1) < 0.1


def kaiming_statistics(state, label):
    """Weights with mean 0 and std sqrt(2 / fan_in), biases zero; where they are not, what they look
    like instead (PyTorch's default initialization, Kaiming with fan_out)."""
    for name, value in state.items():
        values = value.double()
        if name.endswith("bias"):
            if bool((values == 0).all()):
                continue
            weight = state.get(layer_of(name) + ".weight")
            bound = 1 / math.sqrt(math.prod(weight.shape[1:])) if weight is not None else 0.0
            looks_default = bool((values.abs() <= bound).all())
            raise CheckFailed(f"{label}.state_dict()[{name!r}] should start at zero (nn.init.zeros_)"
                              + ("; yours look like PyTorch's default init, a uniform draw in "
                                 f"[-1/sqrt(fan_in), 1/sqrt(fan_in)] = [-{bound:.3g}, {bound:.3g}]" if looks_default else ""))
        fan_in = math.prod(values.shape[1:])
        fan_out = values.shape[0] * math.prod(values.shape[2:])
        expected_std, std, mean = math.sqrt(2.0 / fan_in), float(values.std()), float(values.mean())
        if near(std, expected_std) and abs(mean) < 0.1 * expected_std:
            continue
        statistics = f"{label}.state_dict()[{name!r}] has mean {mean:.3g} and std {std:.4g}"
        kaiming = (f"Kaiming normal initialization (nn.init.kaiming_normal_): mean 0 and std sqrt(2 / fan_in) = "
                   f"{expected_std:.4g} with fan_in = {fan_in}")
        if near(std, 1 / math.sqrt(3 * fan_in)):
            raise CheckFailed(f"{statistics}: your weights look like PyTorch's default init (uniform, std "
                              f"1/sqrt(3 * fan_in)), which nn.Conv2d and nn.Linear start with; this task asks for "
                              f"{kaiming}: call nn.init.kaiming_normal_ on every weight and nn.init.zeros_ on every bias")
        if fan_out != fan_in and near(std, math.sqrt(2.0 / fan_out)):
            raise CheckFailed(f"{statistics}, Kaiming initialization with mode='fan_out' (fan_out = {fan_out}); this "
                              f"task asks for {kaiming}, nn.init.kaiming_normal_'s default mode='fan_in'")
        raise CheckFailed(f"{statistics}; this task asks for {kaiming}")


# -- the three-layer convnet as an nn.Module and as an nn.Sequential --------------------------------

CONVNETS = [pytest.param("ThreeLayerConvNet", marks=pytest.mark.task("module_convnet.init"), id="module"),
            pytest.param("three_layer_convnet_sequential", marks=pytest.mark.task("sequential_convnet.init"),
                         id="sequential")]
CONVNET_FORWARDS = [
    pytest.param("ThreeLayerConvNet", marks=pytest.mark.task("module_convnet.forward"), id="module"),
    pytest.param("three_layer_convnet_sequential", marks=pytest.mark.task("sequential_convnet.forward"),
                 id="sequential"),
]


@pytest.mark.parametrize("factory", CONVNETS)
def test_convnet_layers_and_kaiming_initialization(student, reference, factory):
    args, kwargs = (3, 32, 16, 10), {"image_size": (6, 10)}
    label = call_text(factory, args, kwargs)
    ours = getattr(student.models, factory)(*args, **kwargs)
    theirs = getattr(reference.models, factory)(*args, **kwargs)
    # One reading of the state for both checks, each of the reference's entries looked up in it: a model
    # cannot show its names and shapes to one reading and hide its values from another.
    state = student.utils.state_tensors(ours)
    shapes = {name: tuple(value.shape) for name, value in state.items()} if isinstance(state, dict) else state
    names = expect_state_shapes(shapes, reference.utils.state_shapes(theirs), label)
    kaiming_statistics({theirs_name: state[ours_name] for theirs_name, ours_name in names.items()}, label)


@pytest.mark.parametrize("factory", CONVNET_FORWARDS)
@pytest.mark.parametrize("N,C,H,W", [(2, 3, 6, 10), (1, 2, 5, 5)])
def test_convnet_output_matches_the_reference(student, reference, rng, factory, N, C, H, W):
    ours, theirs, label, names = paired(student, reference, rng, factory, C, 4, 3, 7, image_size=(H, W))
    outputs_match(student, reference, ours, theirs, t(rng.standard_normal((N, C, H, W))), label, names,
                  check_running_averages=False)


# -- blocks ----------------------------------------------------------------------------------------

SHORTCUTS = {  # (Cin, Cout, downsample): what the shortcut should be
    (4, 4, False): "the identity",
    (4, 8, False): "a 1x1 convolution with stride 1",
    (4, 8, True): "a 1x1 convolution with stride 2",
    (4, 4, True): "a 1x1 convolution with stride 2 (downsampling needs one even when the channels stay)",
}


@pytest.mark.task("plain_block.forward")
@pytest.mark.parametrize("Cin,Cout,downsample,x_shape", [
    (4, 4, False, (2, 4, 6, 7)), (3, 5, False, (1, 3, 5, 6)), (4, 8, True, (2, 4, 7, 6)), (3, 3, True, (3, 3, 4, 5))])
def test_plain_block_matches_the_reference(student, reference, rng, Cin, Cout, downsample, x_shape):
    ours, theirs, label, names = paired(student, reference, rng, "PlainBlock", Cin, Cout, downsample=downsample)
    outputs_match(student, reference, ours, theirs, t(rng.standard_normal(x_shape)), label, names)


def residual_cases(task_of_block):
    """One case per block class and shortcut case, linked to the block's task; the bottleneck's
    channels are four times as many, so that its middle (Cout // 4) has some."""
    cases = []
    for block, task, channels in task_of_block:
        for case in SHORTCUTS:
            Cin, Cout, downsample = case[0] * channels, case[1] * channels, case[2]
            cases.append(pytest.param(block, Cin, Cout, downsample, SHORTCUTS[case], marks=pytest.mark.task(task),
                                      id=f"{block}-{Cin}-{Cout}-{'down' if downsample else 'same'}"))
    return cases


@pytest.mark.parametrize("block,Cin,Cout,downsample,shortcut", residual_cases(
    [("ResidualBlock", "residual_block.shortcut", 1), ("ResidualBottleneckBlock", "bottleneck_block.forward", 4)]))
def test_shortcut_in_each_case(student, reference, rng, block, Cin, Cout, downsample, shortcut):
    ours, theirs, label, _ = paired(student, reference, rng, block, Cin, Cout, downsample=downsample)
    x = t(rng.standard_normal((2, Cin, 5, 4)))
    if not has_a_callable_shortcut(ours):
        raise CheckFailed(f"{label}.shortcut is None, which should be {shortcut}: the docstring asks for a module "
                          "in every case (nn.Identity() for the identity), so that out = block(x) + shortcut(x); "
                          "a forward pass that adds x where the shortcut is None is graded by its output alone")
    assert_close(ours.shortcut(x), theirs.shortcut(x), name=f"{label}.shortcut(x), which should be {shortcut}")


def has_a_callable_shortcut(block) -> bool:
    """Whether the block's `shortcut` is something to call: some students keep None for the identity
    and test for it in forward, which the forward task grades by its output alone."""
    return fetch(block.shortcut) is not None


@pytest.mark.parametrize("block,Cin,Cout,downsample,shortcut", residual_cases(
    [("ResidualBlock", "residual_block.forward", 1), ("ResidualBottleneckBlock", "bottleneck_block.forward", 4)]))
def test_residual_block_matches_the_reference(student, reference, rng, block, Cin, Cout, downsample, shortcut):
    ours, theirs, label, names = paired(student, reference, rng, block, Cin, Cout, downsample=downsample)
    x = t(rng.standard_normal((2, Cin, 5, 4)))
    terms_can_be_added(ours, x, label, Cout, downsample, shortcut)
    outputs_match(student, reference, ours, theirs, x, label, names)


def terms_can_be_added(ours, x, label, Cout, downsample, shortcut):
    """block(x) and shortcut(x) have the shape of the output, so that their sum is defined: where they
    do not, the message says which term is off, before the sum fails in forward."""
    N, _, H, W = x.shape
    expected = (N, Cout, (H + 1) // 2, (W + 1) // 2) if downsample else (N, Cout, H, W)
    ours.eval()  # evaluation mode: looking must not move batch normalization's running averages
    for term, why in (("block", "check the padding and strides of its convolutions"),
                      ("shortcut", f"the shortcut should be {shortcut}")):
        if term == "shortcut" and not has_a_callable_shortcut(ours):
            continue
        try:
            shape = tuple(getattr(ours, term)(x).shape)
        except StudentException as error:
            if term != "block" or "size" not in error.message:
                raise
            # A convolution without its padding shrinks the input below the next one's kernel.
            raise CheckFailed(f"{label}.block(x) fails for x of shape {tuple(x.shape)} ({error.type_name}: "
                              f"{error.message[:300]}): {why}") from None
        if shape != expected:
            raise CheckFailed(f"{label}.{term}(x) has shape {shape} for x of shape {tuple(x.shape)}, expected "
                              f"{expected}, so out = block(x) + shortcut(x) cannot be formed: {why}")


# -- stem, stages and whole networks ---------------------------------------------------------------

@pytest.mark.task("resnet.stem_and_stage")
@pytest.mark.parametrize("factory,args,kwargs,x_shape", [
    ("ResNetStem", (3, 8), {}, (2, 3, 6, 5)),
    ("ResNetStem", (1, 4), {}, (1, 1, 4, 7)),
    ("ResNetStage", (4, 8, 2), {"downsample": True}, (2, 4, 7, 6)),
    ("ResNetStage", (4, 4, 3), {"downsample": False, "block": "PlainBlock"}, (2, 4, 5, 5)),
    ("ResNetStage", (8, 16, 2), {"downsample": True, "block": "ResidualBottleneckBlock"}, (2, 8, 6, 6)),
], ids=["stem", "stem_gray", "stage", "plain_stage", "bottleneck_stage"])
def test_stem_and_stage_match_the_reference(student, reference, rng, factory, args, kwargs, x_shape):
    ours, theirs, label, names = paired(student, reference, rng, factory, *args, **kwargs)
    outputs_match(student, reference, ours, theirs, t(rng.standard_normal(x_shape)), label, names)


def downsampled(size, times):
    for _ in range(times):
        size = (size - 1) // 2 + 1  # a 3x3 convolution with padding 1 and stride 2
    return size


@pytest.mark.task("resnet.shapes")
@pytest.mark.parametrize("name", list(LAST_CHANNELS))
def test_named_network_output_shapes(student, name):
    model = student.models.get_resnet(name)
    for shape in [(2, 3, 32, 32), (1, 3, 15, 22)]:
        x = torch.zeros(shape)
        features = model.cnn(x)
        N, _, H, W = shape
        expected = (N, LAST_CHANNELS[name], downsampled(H, 2), downsampled(W, 2))
        assert_true(tuple(features.shape) == expected,
                    f"get_resnet({name!r}).cnn(x) for x of shape {shape} has shape {tuple(features.shape)}, "
                    f"expected {expected}")
        scores = model(x)
        assert_true(tuple(scores.shape) == (N, 10), f"get_resnet({name!r})(x) for x of shape {shape} has shape "
                                                    f"{tuple(scores.shape)}, expected {(N, 10)}")


@pytest.mark.task("resnet.shapes")
@pytest.mark.parametrize("block", BLOCKS)
def test_custom_network_output_shapes(student, block):
    stage_args = [(8, 12, 1, True), (12, 8, 2, False), (8, 16, 1, True)]
    label = call_text("ResNet", (stage_args,), {"Cin": 2, "block": block, "num_classes": 7})
    model = student.models.ResNet(stage_args, Cin=2, block=fetch(getattr(student.models, block)), num_classes=7)
    x = torch.zeros((3, 2, 13, 16))
    features, scores = model.cnn(x), model(x)
    expected = (3, 16, downsampled(13, 2), downsampled(16, 2))
    assert_true(tuple(features.shape) == expected, f"{label}.cnn(x) for x of shape {tuple(x.shape)} has shape "
                                                   f"{tuple(features.shape)}, expected {expected}")
    assert_true(tuple(scores.shape) == (3, 7), f"{label}(x) for x of shape {tuple(x.shape)} has shape "
                                               f"{tuple(scores.shape)}, expected (3, 7)")


@pytest.mark.task("resnet.parameters")
@pytest.mark.parametrize("name", list(LAST_CHANNELS))
def test_named_network_parameters(student, reference, name):
    label = f"get_resnet({name!r})"
    actual = student.utils.parameter_shapes(student.models.get_resnet(name))
    expected = reference.utils.parameter_shapes(reference.models.get_resnet(name))
    count = sum(math.prod(shape) for shape in actual.values()) if isinstance(actual, dict) else None
    wanted = sum(math.prod(shape) for shape in expected.values())
    if count != wanted:
        first = None
        if isinstance(actual, dict):
            renamed = sequential_wrappings([n for n in expected if n not in actual],
                                           [n for n in actual if n not in expected], actual, expected)
            first = next((n for n in expected if renamed.get(n, n) not in actual
                          or tuple(actual[renamed.get(n, n)]) != tuple(expected[n])), None)
        where = f"; the first difference is {first!r}" if first else ""
        raise CheckFailed(f"{label} has {count} learnable parameters, expected {wanted:,}{where}")
    expect_state_shapes(actual, expected, f"{label} (parameters)", may_wrap=MAY_WRAP["ResNet"])


@pytest.mark.task("resnet.forward")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SMALL_NETWORKS)
def test_small_network_matches_the_reference(student, reference, rng, name, device):
    ours, theirs, label, names = paired(student, reference, rng, "get_resnet", name)
    x = t(rng.standard_normal((2, 3, 10, 9)))
    if device == "cuda":
        ours.to(device)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        assert_close(ours(x.to(device)), theirs(x), name=f"scores of {label} on {device} in {mode} mode")
    expect_the_same_state_entries(student, ours, names, label)


GRADIENT_NETWORKS = {  # small enough that every gradient can be compared with the reference's
    "PlainBlock": [(4, 4, 1, False), (4, 8, 1, True)],
    "ResidualBlock": [(4, 4, 1, False), (4, 8, 2, True)],
    "ResidualBottleneckBlock": [(8, 8, 1, False), (8, 16, 1, True)],
}


@pytest.mark.task("resnet.gradients")
@pytest.mark.parametrize("block", BLOCKS)
def test_gradients_reach_every_parameter(student, reference, rng, block):
    ours, theirs, label, names = paired(student, reference, rng, "ResNet", GRADIENT_NETWORKS[block], block=block,
                                        num_classes=5)
    x, dout = t(rng.standard_normal((2, 3, 7, 6))), t(rng.standard_normal((2, 5)))
    grads = student.utils.parameter_gradients(ours, x, dout)
    expected = reference.utils.parameter_gradients(theirs, x, dout)
    for parameter, wanted in expected.items():
        grad = grads.get(names[parameter])
        if grad is None:
            raise CheckFailed(f"no gradient reaches {parameter} of {label}: forward does not use it (or detaches it)")
        assert_close(grad, wanted, name=f"gradient of sum(scores * dout) for {parameter} of {label}", rtol=1e-5,
                     atol=1e-8)
