"""Checks of optim.py: next_w and every piece of optimizer state, against the reference, over
several steps, with the state kept in the config dict the optimizer was given."""

import numpy as np
import pytest

from grader.compare import CheckFailed, assert_close, assert_unchanged, expect_tuple

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


def random_inputs(rng, rule):
    w, dw = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    config = {"learning_rate": 0.05}
    if rule == "sgd_momentum":
        config["momentum"] = 0.8
    if rule == "rmsprop":
        config["decay_rate"] = 0.9
    if rule == "adam":
        config.update(beta1=0.8, beta2=0.95)
    return w, dw, config


def compare_steps(student, reference, rng, rule, w, dw, config, steps=3):
    """Several updates in a row, each fed the config the previous one returned."""
    student_config, reference_config = dict(config), dict(config)
    student_w, reference_w = w, w
    for step in range(1, steps + 1):
        record = getattr(student.optim, rule).inspect(student_w, dw, student_config)
        next_w, returned_config = expect_tuple(record.result, 2, rule)
        expected_w, expected_config = getattr(reference.optim, rule)(reference_w, dw, reference_config)
        assert_close(next_w, expected_w, name=f"next_w of {rule} at step {step}")
        if not isinstance(returned_config, dict):
            raise CheckFailed(f"{rule}: the second value returned must be the config dict, got "
                              f"{type(returned_config).__name__}")
        for key in STATE[rule]:
            if key not in returned_config:
                raise CheckFailed(f"{rule}: config[{key!r}] is missing after step {step}; keep the optimizer's "
                                  f"state in config")
            assert_close(returned_config[key], expected_config[key], name=f"config[{key!r}] of {rule} at step {step}")
            in_place = record.args[2].get(key) if isinstance(record.args[2], dict) else None
            if in_place is None:
                raise CheckFailed(f"{rule}: config[{key!r}] was not stored in the config dict that was passed in; "
                                  "update that dict in place")
        assert_unchanged(record.args[0], student_w, name=f"w given to {rule}")
        assert_unchanged(record.args[1], dw, name=f"dw given to {rule}")
        student_w, student_config = next_w, returned_config
        reference_w, reference_config = expected_w, expected_config
        dw = rng.standard_normal(dw.shape)


def each_rule():
    """One parameter per update rule, each linked to that rule's task."""
    return [pytest.param(rule, marks=pytest.mark.task(f"optim.{rule}")) for rule in STATE]


@pytest.mark.parametrize("rule", each_rule())
@pytest.mark.parametrize("inputs", ["course", "random"])
def test_update_and_state(student, reference, rng, rule, inputs):
    w, dw, config = course_inputs(rule) if inputs == "course" else random_inputs(rng, rule)
    compare_steps(student, reference, rng, rule, w, dw, config)


@pytest.mark.parametrize("rule", each_rule())
def test_default_config(student, reference, rng, rule):
    """Called with config=None the optimizer uses its documented defaults."""
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    next_w, _ = expect_tuple(getattr(student.optim, rule)(w, dw, None), 2, rule)
    expected, _ = getattr(reference.optim, rule)(w, dw, None)
    assert_close(next_w, expected, name=f"next_w of {rule} with the default config (config=None)")
