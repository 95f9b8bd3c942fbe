"""Checks of optim.py on tensors: next_w and every piece of optimizer state against the reference,
over several steps, with the state kept in the config dict the optimizer was given."""

import numpy as np
import pytest
import torch

from grader.checking import assert_close, compare_optimizer_steps, expect_tuple

STATE = {"sgd": [], "sgd_momentum": ["velocity"], "rmsprop": ["cache"], "adam": ["m", "v", "t"]}


def t(array):
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def course_inputs(rule):
    """The linspace inputs the course notebooks use, with state where the rule keeps some."""
    N, D = 4, 5
    w = t(np.linspace(-0.4, 0.6, num=N * D).reshape(N, D))
    dw = t(np.linspace(-0.6, 0.4, num=N * D).reshape(N, D))
    config = {"learning_rate": 1e-2}
    if rule == "sgd_momentum":
        config["velocity"] = t(np.linspace(0.6, 0.9, num=N * D).reshape(N, D))
    elif rule == "rmsprop":
        config["cache"] = t(np.linspace(0.6, 0.9, num=N * D).reshape(N, D))
    elif rule == "adam":
        config.update(m=t(np.linspace(0.6, 0.9, num=N * D).reshape(N, D)),
                      v=t(np.linspace(0.7, 0.5, num=N * D).reshape(N, D)), t=5)
    return w, dw, config


def random_inputs(rng, rule, small=False):
    """Random inputs; `small`: gradients of 1e-7 to 1e-3, where epsilon is not negligible beside the
    square root, so that where a rule adds it is seen at every draw."""
    config = {"learning_rate": 0.05, **{"sgd_momentum": {"momentum": 0.8}, "rmsprop": {"decay_rate": 0.9},
                                         "adam": {"beta1": 0.8, "beta2": 0.95}}.get(rule, {})}
    w, dw = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    if small:
        dw = dw * 10.0 ** rng.uniform(-7, -3, size=dw.shape)
    return t(w), t(dw), config


def each_rule():
    return [pytest.param(rule, marks=pytest.mark.task(f"optim.{rule}")) for rule in STATE]


@pytest.mark.parametrize("rule", each_rule())
@pytest.mark.parametrize("inputs", ["course", "random", "small"])
def test_update_and_state(student, reference, rng, rule, inputs):
    w, dw, config = course_inputs(rule) if inputs == "course" else random_inputs(rng, rule, small=inputs == "small")
    compare_optimizer_steps(getattr(student.optim, rule), getattr(reference.optim, rule), rng, w, dw, config,
                            STATE[rule], rule)


@pytest.mark.parametrize("rule", each_rule())
def test_default_config(student, reference, rng, rule):
    w, dw = t(rng.standard_normal((3, 4))), t(rng.standard_normal((3, 4)))
    next_w, _ = expect_tuple(getattr(student.optim, rule)(w, dw, None), 2, rule)
    expected, _ = getattr(reference.optim, rule)(w, dw, None)
    assert_close(next_w, expected, name=f"next_w of {rule} with the default config (config=None)")
