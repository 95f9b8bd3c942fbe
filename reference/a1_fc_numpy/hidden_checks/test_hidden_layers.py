"""Hidden checks, run only in official grading: more shapes and settings than the public checks
show, so a submission tuned to the public inputs earns nothing extra."""

import pytest

from grader.checking import assert_close, check_layer_backward, expect_tuple, inspect_call, ReferenceLayer


@pytest.mark.task("conv.forward")
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", [((3, 2, 9, 4), (5, 2, 2, 3), 2, 1), ((2, 1, 6, 6), (1, 1, 6, 6), 1, 0)])
def test_conv_forward_more_shapes(student, reference, rng, x_shape, w_shape, stride, pad):
    args = (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]),
            {"stride": stride, "pad": pad})
    out, _ = expect_tuple(student.layers.conv_forward_naive(*args), 2, "conv_forward_naive")
    expected, _ = reference.layers.conv_forward_naive(*args)
    assert_close(out, expected, name="out of conv_forward_naive")


@pytest.mark.task("spatial_groupnorm.backward")
def test_spatial_groupnorm_backward_one_channel_per_group(student, reference, rng):
    shape = (2, 3, 3, 2)
    args = [rng.standard_normal(shape) * 3 + 1, rng.standard_normal((1, 3, 1, 1)), rng.standard_normal((1, 3, 1, 1)),
            3, {}]
    check_layer_backward(student.layers.spatial_groupnorm_forward, student.layers.spatial_groupnorm_backward, args,
                         gradients=[("dx", 0), ("dgamma", 1), ("dbeta", 2)], rng=rng,
                         reference=ReferenceLayer(reference.layers.spatial_groupnorm_forward,
                                                  reference.layers.spatial_groupnorm_backward))


@pytest.mark.task("batchnorm.forward")
def test_batchnorm_forward_custom_momentum_and_eps(student, reference, rng):
    N, D = 8, 6
    x = rng.standard_normal((N, D)) * 2 + 3
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    bn_param = {"mode": "train", "momentum": 0.5, "eps": 1e-3}
    record = inspect_call(student.layers.batchnorm_forward, x, gamma, beta, bn_param)
    expected = inspect_call(reference.layers.batchnorm_forward, x, gamma, beta, bn_param)
    assert_close(expect_tuple(record.result, 2, "batchnorm_forward")[0], expected.result[0],
                 name="out of batchnorm_forward with eps=1e-3")
    assert_close(record.args[3].get("running_var"), expected.args[3]["running_var"],
                 name="bn_param['running_var'] with momentum=0.5")
