"""Checks of optim.py: next_w and every piece of optimizer state, against the reference, over
several steps, with the state kept in the config dict the optimizer was given."""

import numpy as np
import pytest

from grader.checking import assert_close, CheckFailed, compare_optimizer_steps, expect_tuple

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


def torch_momentum(w, dw, config):
    """SGD with momentum as torch.optim.SGD writes it, the learning rate outside the velocity."""
    velocity = config.get("momentum", 0.9) * config.get("velocity", np.zeros_like(w)) + dw
    return w - config.get("learning_rate", 1e-2) * velocity


def rmsprop_epsilon_inside(w, dw, config):
    """RMSProp with epsilon under the square root, as some course materials write it."""
    cache = config.get("decay_rate", 0.99) * config.get("cache", np.zeros_like(w)) \
        + (1 - config.get("decay_rate", 0.99)) * dw ** 2
    return w - config.get("learning_rate", 1e-2) * dw / np.sqrt(cache + config.get("epsilon", 1e-8))


def adam_epsilon_inside(w, dw, config):
    """Adam with epsilon under the square root: sqrt(v_hat + epsilon)."""
    beta1, beta2, t = config.get("beta1", 0.9), config.get("beta2", 0.999), config.get("t", 0) + 1
    m = beta1 * config.get("m", np.zeros_like(w)) + (1 - beta1) * dw
    v = beta2 * config.get("v", np.zeros_like(w)) + (1 - beta2) * dw ** 2
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return w - config.get("learning_rate", 1e-3) * m_hat / np.sqrt(v_hat + config.get("epsilon", 1e-8))


def adam_efficient_form(w, dw, config):
    """Adam in the "efficient" form of Kingma & Ba (section 2): the bias corrections folded into the
    step size, so that epsilon is added to sqrt(v) rather than to sqrt(v_hat)."""
    beta1, beta2, t = config.get("beta1", 0.9), config.get("beta2", 0.999), config.get("t", 0) + 1
    m = beta1 * config.get("m", np.zeros_like(w)) + (1 - beta1) * dw
    v = beta2 * config.get("v", np.zeros_like(w)) + (1 - beta2) * dw ** 2
    step = config.get("learning_rate", 1e-3) * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - step * m / (np.sqrt(v) + config.get("epsilon", 1e-8))


# Rules that other course materials write another way: the update under that reading, and its name.
OTHER_CONVENTIONS = {
    "rmsprop": [(rmsprop_epsilon_inside, "your RMSProp adds epsilon under the square root (dw / sqrt(cache + "
                                         "epsilon)); the docstring adds it after: dw / (sqrt(cache) + epsilon)")],
    "adam": [(adam_efficient_form, "your Adam is the \"efficient\" form of Kingma & Ba (the bias corrections in the "
                                   "step size, epsilon added to sqrt(v)); the docstring adds epsilon to sqrt(v_hat): "
                                   "next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)"),
             (adam_epsilon_inside, "your Adam adds epsilon under the square root (sqrt(v_hat + epsilon)); the "
                                   "docstring adds it after: m_hat / (sqrt(v_hat) + epsilon)")],
    "sgd_momentum": [(torch_momentum, "your momentum follows torch.optim.SGD's convention (v = momentum * v + dw, "
                                      "next_w = w - learning_rate * v); this assignment keeps the learning rate in "
                                      "the velocity: v = momentum * v - learning_rate * dw, next_w = w + v")],
}


@pytest.mark.parametrize("rule", each_rule())
@pytest.mark.parametrize("inputs", ["course", "random", "small"])
def test_update_and_state(student, reference, rng, rule, inputs):
    w, dw, config = course_inputs(rule) if inputs == "course" else random_inputs(rng, rule, small=inputs == "small")
    try:
        compare_optimizer_steps(getattr(student.optim, rule), getattr(reference.optim, rule), rng, w, dw,
                                dict(config), STATE[rule], rule)
    except CheckFailed as failure:
        if rule not in OTHER_CONVENTIONS:
            raise
        next_w, _ = expect_tuple(getattr(student.optim, rule)(w, dw, dict(config)), 2, rule)
        for other_update, convention in OTHER_CONVENTIONS[rule]:
            try:
                assert_close(next_w, other_update(w, dw, dict(config)), name=f"next_w of {rule}")
            except CheckFailed:
                continue
            raise CheckFailed(f"{rule}: {convention}", failure.message) from None
        raise failure from None


@pytest.mark.parametrize("rule", each_rule())
def test_default_config(student, reference, rng, rule):
    """Called with config=None the optimizer uses its documented defaults."""
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    next_w, _ = expect_tuple(getattr(student.optim, rule)(w, dw, None), 2, rule)
    expected, _ = getattr(reference.optim, rule)(w, dw, None)
    assert_close(next_w, expected, name=f"next_w of {rule} with the default config (config=None)")
