"""Checks of the barebones network: three_layer_convnet against the reference with the same
parameters, the Kaiming statistics of initialize_three_layer_convnet, and training steps written
with autograd against the reference's, two in a row on the same parameters."""

import math

import numpy as np
import pytest
import torch

from grader.checking import (as_array, assert_close, assert_true, assert_unchanged, call_keeping, CheckFailed,
                            fetch, inspect_call, type_name)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
F64 = torch.float64
PARAM_NAMES = ["conv_w1", "conv_b1", "conv_w2", "conv_b2", "fc_w", "fc_b"]


def t(array, dtype=F64):
    """A tensor built by the grader from a NumPy array the check drew."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def param_shapes(C, channel_1, channel_2, num_classes, H, W):
    return [(channel_1, C, 5, 5), (channel_1,), (channel_2, channel_1, 3, 3), (channel_2,),
            (channel_2 * H * W, num_classes), (num_classes,)]


def random_params(rng, shapes):
    """Weights scaled to keep activations near one; biases small but not zero (zero biases would
    hide a missing bias)."""
    params = []
    for shape in shapes:
        if len(shape) > 1:
            fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
            params.append(t(rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)))
        else:
            params.append(t(0.1 * rng.standard_normal(shape)))
    return params


def labels(rng, n, classes=10):
    return torch.from_numpy(rng.integers(classes, size=n))


def expect_the_same_list(after, call, what):
    """The caller's list of the six parameters, as the call left it: still the six of them (each one is
    then compared), not emptied or cut short."""
    if not isinstance(after, list) or len(after) != len(PARAM_NAMES):
        got = type_name(after) + (f" of {len(after)} items" if isinstance(after, (list, tuple)) else "")
        raise CheckFailed(f"{call} left {what} as a {got}; it belongs to the caller, who keeps using the "
                          f"{len(PARAM_NAMES)} tensors [{', '.join(PARAM_NAMES)}] in it")


@pytest.mark.task("barebones.forward")
@pytest.mark.parametrize("N,C,H,W,channel_1,channel_2", [(2, 3, 8, 8, 4, 3), (1, 2, 5, 7, 3, 5)])
def test_three_layer_convnet_matches_the_reference(student, reference, rng, N, C, H, W, channel_1, channel_2):
    params = random_params(rng, param_shapes(C, channel_1, channel_2, 10, H, W))
    x = t(rng.standard_normal((N, C, H, W)))
    record = inspect_call(student.models.three_layer_convnet, x, params)
    expected = reference.models.three_layer_convnet(x, params)
    assert_close(record.result, expected, name=f"scores of three_layer_convnet for images of shape {(N, C, H, W)}")
    # The parameters are the network's weights: changing one in place changes the network the caller
    # holds. The images are the caller's to reuse or not, so they are not checked.
    expect_the_same_list(record.args[1], "three_layer_convnet", "the list of weights given to it")
    for name, before, after in zip(PARAM_NAMES, params, record.args[1]):
        try:
            assert_unchanged(as_array(after, name), as_array(before, name), name=f"{name} given to three_layer_convnet")
        except CheckFailed as failure:
            raise CheckFailed(f"{failure.message}: it is one of the network's weights, so the network the caller "
                              "holds now computes other scores") from None


@pytest.mark.task("barebones.init")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_initialize_three_layer_convnet(student, device, dtype):
    C, channel_1, channel_2, num_classes, H, W = 3, 32, 16, 10, 6, 10
    params = student.models.initialize_three_layer_convnet(C, channel_1, channel_2, num_classes, image_size=(H, W),
                                                           dtype=dtype, device=device)
    call = f"initialize_three_layer_convnet({C}, {channel_1}, {channel_2}, {num_classes}, image_size={(H, W)})"
    if not isinstance(params, (list, tuple)) or len(params) != 6:
        got = type_name(params) + (f" of {len(params)} items" if isinstance(params, (list, tuple)) else "")
        raise CheckFailed(f"{call}: expected a list of 6 tensors [{', '.join(PARAM_NAMES)}], got {got}")
    for name, value, shape in zip(PARAM_NAMES, params, param_shapes(C, channel_1, channel_2, num_classes, H, W)):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{call}: {name} should be a tensor, got {type_name(value)}")
        assert_true(tuple(value.shape) == shape, f"{call}: {name} has shape {tuple(value.shape)}, expected {shape}")
        assert_true(value.dtype == dtype, f"{call}: {name} has dtype {value.dtype}, expected {dtype}")
        assert_true(str(value.device).split(":")[0] == device,
                    f"{call}: {name} is on {value.device}, expected {device}")
        assert_true(value.requires_grad, f"{call}: {name} does not require grad; autograd will not compute its "
                                         "gradient (create it with requires_grad=True or call .requires_grad_())")
        values = value.detach().double().cpu()
        if len(shape) == 1:
            assert_true(bool((values == 0).all()), f"{call}: {name} should start at zero")
            continue
        fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
        expected_std, std, mean = math.sqrt(2.0 / fan_in), float(values.std()), float(values.mean())
        # Thousands of samples: the sample std is within a few percent of the truth.
        assert_true(abs(std / expected_std - 1) < 0.1 and abs(mean) < 0.1 * expected_std,
                    f"{call}: {name} has mean {mean:.3g} and std {std:.4g}; Kaiming initialization draws mean 0 and "
                    f"std sqrt(2 / fan_in) = {expected_std:.4g} with fan_in = {fan_in}{wrong_fan(std, shape)}")


def wrong_fan(std, shape):
    """What a std of sqrt(2 / n) with the wrong n says about how the fan was counted; "" otherwise."""
    if len(shape) == 4:
        candidates = [(shape[1], f"the input channels alone ({shape[1]}); each output of a {shape[2]}x{shape[3]} "
                                 f"filter sums over channels * {shape[2]} * {shape[3]} inputs"),
                      (shape[0] * shape[2] * shape[3], "fan_out (output channels times the filter's size); "
                                                       "fan_in counts the inputs each output sums over")]
    else:
        candidates = [(shape[1], f"fc_w.shape[1] = {shape[1]}, the number of classes; fc_w has shape "
                                 "(features, classes), so each score sums over fc_w.shape[0] inputs (nn.Linear "
                                 "stores its weight the other way round, (out, in))")]
    for fan, why in candidates:
        if abs(std / math.sqrt(2.0 / fan) - 1) < 0.1:
            return f". Your std is sqrt(2 / {fan}): your fan_in is {why}"
    return ""


@pytest.mark.task("barebones.train_step")
@pytest.mark.parametrize("learning_rate", [0.05, 0.3])
def test_train_steps_match_the_reference(student, reference, rng, learning_rate):
    N, C, H, W, channel_1, channel_2 = 4, 3, 6, 5, 4, 3
    params = random_params(rng, param_shapes(C, channel_1, channel_2, 10, H, W))
    # The student's parameters stay in the worker between the two steps, as leaves with their .grad.
    handles = call_keeping(student.utils.as_leaf_parameters, *params, items=list(range(len(params))))
    expected_params = [p.clone().requires_grad_(True) for p in params]
    holding: set[str] = set()   # parameters whose .grad held a gradient when the step returned
    for step in (1, 2):
        x, y = t(rng.standard_normal((N, C, H, W))), labels(rng, N)
        record = inspect_call(student.models.three_layer_convnet_train_step, x, y, list(handles), learning_rate)
        expected = inspect_call(reference.models.three_layer_convnet_train_step, x, y, expected_params, learning_rate)
        where = f"three_layer_convnet_train_step (learning_rate={learning_rate}), step {step}"
        if not isinstance(record.result, float):
            raise CheckFailed(f"{where}: expected the loss as a Python float (loss.item()), got "
                              f"{type_name(record.result)}")
        assert_close(record.result, expected.result, name=f"loss returned by {where}")
        expect_the_same_list(record.args[2], where, "the list of parameters given to it")
        for index, (name, after, wanted) in enumerate(zip(PARAM_NAMES, record.args[2], expected.args[2])):
            try:
                assert_close(after, wanted, name=f"{name} after {where} (updated in place: w -= learning_rate * w.grad)")
            except CheckFailed as failure:
                if name not in holding:
                    raise
                # Zeroing before loss.backward() is as right as zeroing after the update: only a
                # gradient that reaches the next update is wrong, and this one did.
                raise CheckFailed(f"{failure.message}; {name}.grad still held the previous step's gradient when "
                                  "this step began, and autograd adds to .grad, so this step used the sum of both: "
                                  "zero it after the update (or before loss.backward())", failure.detail) from None
            assert_true(isinstance(after, torch.Tensor) and after.requires_grad,
                        f"{name} no longer requires grad after {where}; update it in place under torch.no_grad()")
            held = fetch(handles[index])   # the caller's tensor, which the next step is given again
            if not (isinstance(held, torch.Tensor) and torch.equal(held.detach(), after.detach())):
                raise CheckFailed(f"{name} after {where}: the list given to it holds the updated values, but the "
                                  "caller's tensor is as it was: the list's item was replaced (params[i] = ...) rather "
                                  "than the tensor updated in place (w -= learning_rate * w.grad under "
                                  "torch.no_grad()), so the caller, who keeps its own tensors, trains nothing")
            grad = fetch(handles[index].grad)
            if grad is not None and bool((as_array(grad, f"{name}.grad") != 0).any()):
                holding.add(name)
            else:
                holding.discard(name)
        expected_params = list(expected.args[2])
