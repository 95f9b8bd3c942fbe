"""Checks that several assignments share: a forward pass against the reference, and optimizer
updates over several steps. The assignments' check files call these with their own functions."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from grader.compare import CheckFailed, as_array, assert_close, assert_unchanged, expect_tuple
from grader.gradcheck import like


def is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__name__ == "Tensor"


def forward_matches(student_fn: Any, reference_fn: Any, args: Sequence[Any], name: str, *, rtol: float = 1e-6,
                    atol: float = 1e-8, check_dtype: bool = False) -> Any:
    """`fn(*args) -> (out, cache)`: out equal to the reference's, and the inputs left as they were."""
    record = student_fn.inspect(*args)
    out, _ = expect_tuple(record.result, 2, name)
    expected, _ = reference_fn(*args)
    assert_close(out, expected, name=f"out of {name}", rtol=rtol, atol=atol, check_dtype=check_dtype)
    for index, (before, after) in enumerate(zip(args, record.args)):
        if is_array(before):
            assert_unchanged(as_array(after, name) if is_array(after) else after, as_array(before, name),
                             name=f"argument {index + 1} of {name}")
    return out


def compare_optimizer_steps(student_rule: Any, reference_rule: Any, rng: np.random.Generator, w: Any, dw: Any,
                            config: dict, state_keys: Sequence[str], name: str, steps: int = 3) -> None:
    """Several updates in a row, each fed the config the previous one returned: next_w and every piece
    of state against the reference, the state kept in the dict passed in, w and dw left unchanged."""
    student_config, reference_config = dict(config), dict(config)
    student_w, reference_w = w, w
    for step in range(1, steps + 1):
        record = student_rule.inspect(student_w, dw, student_config)
        next_w, returned_config = expect_tuple(record.result, 2, name)
        expected_w, expected_config = reference_rule(reference_w, dw, reference_config)
        assert_close(next_w, expected_w, name=f"next_w of {name} at step {step}")
        if not isinstance(returned_config, dict):
            raise CheckFailed(f"{name}: the second value returned must be the config dict, got "
                              f"{type(returned_config).__name__}")
        for key in state_keys:
            if key not in returned_config:
                raise CheckFailed(f"{name}: config[{key!r}] is missing after step {step}; keep the optimizer's "
                                  "state in config")
            assert_close(returned_config[key], expected_config[key], name=f"config[{key!r}] of {name} at step {step}")
            passed_in = record.args[2] if isinstance(record.args[2], dict) else {}
            if key not in passed_in:
                raise CheckFailed(f"{name}: config[{key!r}] was not stored in the config dict that was passed in; "
                                  "update that dict in place")
        assert_unchanged(as_array(record.args[0], "w"), as_array(student_w, "w"), name=f"w given to {name}")
        assert_unchanged(as_array(record.args[1], "dw"), as_array(dw, "dw"), name=f"dw given to {name}")
        student_w, student_config = next_w, returned_config
        reference_w, reference_config = expected_w, expected_config
        dw = like(dw, rng.standard_normal(as_array(dw, "dw").shape))
