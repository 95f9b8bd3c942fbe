"""Checks of optim.py: next_w and every piece of optimizer state, against the reference, over
several steps, with the state kept in the config dict the optimizer was given."""

import numpy as np
import pytest

from grader.checking import assert_close, compare_optimizer_steps, expect_tuple

STATE = {
    "sgd": [],
    "sgd_momentum": ["velocity"],
    "rmsprop": ["cache"],
    "adam": ["m", "v", "t"],
}


def course_inputs(rule):
    """The linspace inputs the course notebooks use, with state where the rule keeps some."""
    N, D = 4, 5
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    state = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-2}
    if rule == "sgd_momentum":
        config["velocity"] = state
    elif rule == "rmsprop":
        config["cache"] = state
    elif rule == "adam":
        config.update(m=np.linspace(0.6, 0.9, num=N * D).reshape(N, D),
                      v=np.linspace(0.7, 0.5, num=N * D).reshape(N, D), t=5)
    return w, dw, config


def random_inputs(rng, rule, small=False):
    """Random inputs; `small`: gradients of 1e-7 to 1e-3, where epsilon is not negligible beside the
    square root, so that where a rule adds it is seen at every draw, not only at a draw that happens to
    hold a small gradient."""
    w, dw = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    if small:
        dw = dw * 10.0 ** rng.uniform(-7, -3, size=dw.shape)
    config = {"learning_rate": 0.05}
    if rule == "sgd_momentum":
        config["momentum"] = 0.8
    if rule == "rmsprop":
        config["decay_rate"] = 0.9
    if rule == "adam":
        config.update(beta1=0.8, beta2=0.95)
    return w, dw, config


def each_rule():
    """One parameter per update rule, each linked to that rule's task."""
    return [pytest.param(rule, marks=pytest.mark.task(f"optim.{rule}")) for rule in STATE]


@pytest.mark.parametrize("rule", each_rule())
@pytest.mark.parametrize("inputs", ["course", "random", "small"])
def test_update_and_state(student, reference, rng, rule, inputs):
    w, dw, config = course_inputs(rule) if inputs == "course" else random_inputs(rng, rule, small=inputs == "small")
    compare_optimizer_steps(getattr(student.optim, rule), getattr(reference.optim, rule), rng, w, dw, config,
                            STATE[rule], rule)


@pytest.mark.parametrize("rule", each_rule())
def test_default_config(student, reference, rng, rule):
    """Called with config=None the optimizer uses its documented defaults."""
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    next_w, _ = expect_tuple(getattr(student.optim, rule)(w, dw, None), 2, rule)
    expected, _ = getattr(reference.optim, rule)(w, dw, None)
    assert_close(next_w, expected, name=f"next_w of {rule} with the default config (config=None)")
