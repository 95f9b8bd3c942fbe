"""Hidden checks, run only in official grading: other sizes, channel counts and configurations than
the public checks show, so a submission tuned to the public inputs earns nothing extra."""

import math
import re

import numpy as np
import pytest
import torch

from grader.checking import assert_close, CheckFailed, fetch, StudentException

F64 = torch.float64


def t(array):
    return torch.from_numpy(np.ascontiguousarray(array)).to(F64)


def wrapped_classifier_names(actual, expected):
    """{reference name: student name}: the same names, or a ResNet's classifier inside an nn.Sequential
    ("fc.1.weight" for "fc.weight"), which its docstring allows."""
    names = {name: name for name in expected}
    for name in ("fc.weight", "fc.bias"):
        if name in expected and name not in actual:
            leaf = name.split(".")[1]
            inside = [n for n in actual if re.fullmatch(r"fc\.\d+\." + leaf, n)]
            if len(inside) == 1:
                names[name] = inside[0]
    return names


def same_weights(student, reference, rng, ours, theirs, label, *, may_wrap_classifier=False):
    """Both modules in float64 with the same random weights, loaded by the reference's names (by the
    student's, for a classifier the docstring lets them wrap)."""
    expected = reference.utils.state_shapes(theirs)
    actual = student.utils.state_shapes(ours)
    if not isinstance(actual, dict):
        raise CheckFailed(f"{label}.state_dict() could not be read")
    names = wrapped_classifier_names(actual, expected) if may_wrap_classifier else {n: n for n in expected}
    wanted, found = {names[k]: tuple(v) for k, v in expected.items()}, {k: tuple(v) for k, v in actual.items()}
    if wanted != found:
        differing = [k for k in wanted if found.get(k) != wanted[k]] + [k for k in found if k not in wanted]
        raise CheckFailed(f"{label}.state_dict() does not have the documented names and shapes; the first "
                          f"differences: {', '.join(differing[:4])}")
    weights = {}
    for name, shape in expected.items():
        kind = name.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            weights[name] = torch.tensor(0)
        elif kind == "running_var":
            weights[name] = t(0.5 + rng.random(shape))
        elif len(shape) >= 2:
            weights[name] = t(rng.standard_normal(shape) * math.sqrt(2.0 / math.prod(shape[1:])))
        elif kind == "weight":
            weights[name] = t(1 + 0.2 * rng.standard_normal(shape))
        else:
            weights[name] = t(0.2 * rng.standard_normal(shape))
    theirs.double()
    theirs.load_state_dict(weights)
    ours.double()
    ours.load_state_dict({names[name]: value for name, value in weights.items()})


def terms_can_be_added(ours, x, label, Cout, downsample):
    """block(x) and shortcut(x) have the shape of the output; where one does not, say which."""
    N, _, H, W = x.shape
    expected = (N, Cout, (H + 1) // 2, (W + 1) // 2) if downsample else (N, Cout, H, W)
    ours.eval()  # looking must not move batch normalization's running averages
    for term in ("block", "shortcut"):
        try:
            shape = tuple(getattr(ours, term)(x).shape)
        except StudentException as error:
            if term != "block" or "size" not in error.message:
                raise
            # A convolution without its padding shrinks the input below the next one's kernel.
            raise CheckFailed(f"{label}.block(x) fails for x of shape {tuple(x.shape)} ({error.type_name}: "
                              f"{error.message[:300]}): check the padding and strides of its convolutions") from None
        if shape != expected:
            raise CheckFailed(f"{label}.{term}(x) has shape {shape} for x of shape {tuple(x.shape)}, expected "
                              f"{expected}, so out = block(x) + shortcut(x) cannot be formed")


def outputs_match(ours, theirs, x, label):
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        assert_close(ours(x), theirs(x), name=f"output of {label} in {mode} mode for x of shape {tuple(x.shape)}")


@pytest.mark.task("barebones.forward")
def test_three_layer_convnet_one_input_channel(student, reference, rng):
    shapes = [(2, 1, 5, 5), (2,), (6, 2, 3, 3), (6,), (6 * 4 * 9, 4), (4,)]
    params = [t(rng.standard_normal(s) * (math.sqrt(2.0 / math.prod(s[1:])) if len(s) > 1 else 0.1)) for s in shapes]
    x = t(rng.standard_normal((3, 1, 4, 9)))
    assert_close(student.models.three_layer_convnet(x, params), reference.models.three_layer_convnet(x, params),
                 name="scores of three_layer_convnet for one-channel images of shape (3, 1, 4, 9)")


@pytest.mark.task("module_convnet.forward")
def test_module_convnet_tall_images(student, reference, rng):
    label = "ThreeLayerConvNet(2, 3, 5, 4, image_size=(7, 4))"
    ours = student.models.ThreeLayerConvNet(2, 3, 5, 4, image_size=(7, 4))
    theirs = reference.models.ThreeLayerConvNet(2, 3, 5, 4, image_size=(7, 4))
    same_weights(student, reference, rng, ours, theirs, label)
    outputs_match(ours, theirs, t(rng.standard_normal((2, 2, 7, 4))), label)


@pytest.mark.task("plain_block.forward")
def test_plain_block_tiny_image(student, reference, rng):
    label = "PlainBlock(2, 3, downsample=True)"
    ours, theirs = student.models.PlainBlock(2, 3, downsample=True), reference.models.PlainBlock(2, 3, downsample=True)
    same_weights(student, reference, rng, ours, theirs, label)
    outputs_match(ours, theirs, t(rng.standard_normal((2, 2, 3, 2))), label)


@pytest.mark.task("residual_block.forward")
def test_residual_block_batch_of_one(student, reference, rng):
    label = "ResidualBlock(6, 12, downsample=True)"
    ours = student.models.ResidualBlock(6, 12, downsample=True)
    theirs = reference.models.ResidualBlock(6, 12, downsample=True)
    same_weights(student, reference, rng, ours, theirs, label)
    x = t(rng.standard_normal((1, 6, 9, 5)))
    terms_can_be_added(ours, x, label, 12, True)
    outputs_match(ours, theirs, x, label)


@pytest.mark.task("bottleneck_block.forward")
def test_bottleneck_block_fewer_output_channels(student, reference, rng):
    label = "ResidualBottleneckBlock(12, 8, downsample=True)"
    ours = student.models.ResidualBottleneckBlock(12, 8, downsample=True)
    theirs = reference.models.ResidualBottleneckBlock(12, 8, downsample=True)
    same_weights(student, reference, rng, ours, theirs, label)
    x = t(rng.standard_normal((2, 12, 3, 7)))
    terms_can_be_added(ours, x, label, 8, True)
    outputs_match(ours, theirs, x, label)


@pytest.mark.task("resnet.forward")
def test_custom_bottleneck_network(student, reference, rng):
    stage_args = [(8, 8, 2, True), (8, 16, 1, True)]
    label = f"ResNet({stage_args}, Cin=1, block=ResidualBottleneckBlock, num_classes=3)"
    ours = student.models.ResNet(stage_args, Cin=1, block=fetch(student.models.ResidualBottleneckBlock), num_classes=3)
    theirs = reference.models.ResNet(stage_args, Cin=1, block=fetch(reference.models.ResidualBottleneckBlock),
                                     num_classes=3)
    same_weights(student, reference, rng, ours, theirs, label, may_wrap_classifier=True)
    outputs_match(ours, theirs, t(rng.standard_normal((2, 1, 9, 11))), label)
