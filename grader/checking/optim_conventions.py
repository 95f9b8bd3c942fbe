"""Update rules that other course materials write another way. An optimizer that follows one of them
is wrong by the docstring, and its failure names the convention it follows rather than leaving the
student to find which of the formulas they know the grader wanted. Computed here in NumPy from the
check's own inputs (arrays or tensors), never from what the submission returned beyond its next_w."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from grader.checking.compare import CheckFailed, as_array, assert_close, expect_tuple


def _plain(config: dict) -> dict:
    return {key: as_array(value, key) if hasattr(value, "shape") else value for key, value in config.items()}


def torch_momentum(w: np.ndarray, dw: np.ndarray, config: dict) -> np.ndarray:
    """SGD with momentum as torch.optim.SGD writes it, the learning rate outside the velocity."""
    velocity = config.get("momentum", 0.9) * config.get("velocity", np.zeros_like(w)) + dw
    return w - config.get("learning_rate", 1e-2) * velocity


def rmsprop_epsilon_inside(w: np.ndarray, dw: np.ndarray, config: dict) -> np.ndarray:
    """RMSProp with epsilon under the square root, as some course materials write it."""
    cache = config.get("decay_rate", 0.99) * config.get("cache", np.zeros_like(w)) \
        + (1 - config.get("decay_rate", 0.99)) * dw ** 2
    return w - config.get("learning_rate", 1e-2) * dw / np.sqrt(cache + config.get("epsilon", 1e-8))


def _adam_moments(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    beta1, beta2, t = config.get("beta1", 0.9), config.get("beta2", 0.999), config.get("t", 0) + 1
    m = beta1 * config.get("m", np.zeros_like(w)) + (1 - beta1) * dw
    v = beta2 * config.get("v", np.zeros_like(w)) + (1 - beta2) * dw ** 2
    return m, v, beta1, beta2, t


def adam_epsilon_inside(w: np.ndarray, dw: np.ndarray, config: dict) -> np.ndarray:
    """Adam with epsilon under the square root: sqrt(v_hat + epsilon)."""
    m, v, beta1, beta2, t = _adam_moments(w, dw, config)
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return w - config.get("learning_rate", 1e-3) * m_hat / np.sqrt(v_hat + config.get("epsilon", 1e-8))


def adam_efficient_form(w: np.ndarray, dw: np.ndarray, config: dict) -> np.ndarray:
    """Adam in the "efficient" form of Kingma & Ba (section 2): the bias corrections folded into the
    step size, so that epsilon is added to sqrt(v) rather than to sqrt(v_hat)."""
    m, v, beta1, beta2, t = _adam_moments(w, dw, config)
    step = config.get("learning_rate", 1e-3) * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - step * m / (np.sqrt(v) + config.get("epsilon", 1e-8))


Convention = tuple[Callable[[np.ndarray, np.ndarray, dict], np.ndarray], str]

# The update under each other reading, and what the failure says of it.
OTHER_CONVENTIONS: dict[str, list[Convention]] = {
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


def name_other_convention(failure: CheckFailed, student_rule: Any, rule: str, w: Any, dw: Any, config: dict) -> None:
    """Where the student's first step from (w, dw, config) equals another convention's, raises its
    failure naming that convention (the comparison's message kept as the detail); else returns, and the
    caller raises `failure` as it was."""
    conventions = OTHER_CONVENTIONS.get(rule, [])
    if not conventions:
        return
    next_w, _ = expect_tuple(student_rule(w, dw, dict(config)), 2, rule)
    plain_w, plain_dw, plain_config = as_array(w, "w"), as_array(dw, "dw"), _plain(config)
    for other_update, convention in conventions:
        try:
            assert_close(next_w, other_update(plain_w, plain_dw, dict(plain_config)), name=f"next_w of {rule}")
        except CheckFailed:
            continue
        raise CheckFailed(f"{rule}: {convention}", failure.message) from None
