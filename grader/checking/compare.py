"""Comparing what a submission returned with what it should have, in words a student can act on."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from grader.sandbox.remote import RemoteObject, type_name as _remote_type_name


class CheckFailed(AssertionError):
    """A comparison that did not hold. `message` is one line; `detail` may add more."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail


def as_array(value: Any, name: str) -> np.ndarray:
    """A NumPy copy of an array or tensor the grader rebuilt; anything else fails the check."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().to("cpu").numpy().copy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (int, float, np.generic)) and not isinstance(value, bool):
        return np.asarray(value)
    raise CheckFailed(f"{name}: expected an array, got {_describe(value)}")


def type_name(value: Any) -> str:
    """The name of the value's type as the student's code knows it: for an object that stayed in the
    worker (one that does not cross as plain data), its type there, not the grader's stand-in."""
    if isinstance(value, RemoteObject):
        return _remote_type_name(value) or "object"
    return type(value).__name__


def _describe(value: Any) -> str:
    if value is None:
        return "None (did the code assign the result before returning it?)"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    return f"a value of type {type_name(value)}"


def _index(flat_index: int, shape: tuple) -> str:
    return str([int(i) for i in np.unravel_index(flat_index, shape)]) if shape else "[]"


def rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest element-wise |a - e| / max(|a| + |e|, 1e-8), as the courses print it."""
    diff = np.abs(actual - expected)
    return float(np.max(diff / np.maximum(1e-8, np.abs(actual) + np.abs(expected)))) if diff.size else 0.0


def assert_close(actual: Any, expected: Any, *, name: str, rtol: float = 1e-6, atol: float = 1e-8,
                 check_dtype: bool = False) -> None:
    """Passes when every element satisfies |a - e| <= atol + rtol * |e|. Tolerances are absolute
    numbers stated by the check, never scaled by the size of the input."""
    expected_array = as_array(expected, f"{name} (reference)")
    actual_array = as_array(actual, name)
    if actual_array.shape != expected_array.shape:
        raise CheckFailed(f"{name}: expected shape {expected_array.shape}, got {actual_array.shape}")
    if check_dtype and actual_array.dtype != expected_array.dtype:
        raise CheckFailed(f"{name}: expected dtype {expected_array.dtype}, got {actual_array.dtype}")
    a = actual_array.astype(np.float64) if actual_array.dtype != np.float64 else actual_array
    e = expected_array.astype(np.float64) if expected_array.dtype != np.float64 else expected_array
    finite = np.isfinite(a)
    if not finite.all() and np.isfinite(e).all():
        bad = int(np.flatnonzero(~finite)[0])
        raise CheckFailed(f"{name}: {int((~finite).sum())} element(s) are NaN or infinite, "
                          f"the first at {_index(bad, a.shape)} ({a.flat[bad]!r})")
    excess = np.abs(a - e) - (atol + rtol * np.abs(e))
    if a.size == 0 or np.all(excess <= 0):
        return
    worst = int(np.argmax(excess))
    wrong = int((excess > 0).sum())
    relative = abs(a.flat[worst] - e.flat[worst]) / max(abs(a.flat[worst]) + abs(e.flat[worst]), 1e-300)
    where = "" if a.ndim == 0 else f" {wrong} of {a.size} elements differ; worst at {_index(worst, a.shape)}:"
    raise CheckFailed(
        f"{name}:{where} got {a.flat[worst]:.6g}, expected {e.flat[worst]:.6g} (relative error {relative:.2e}, "
        f"tolerance rtol={rtol:g}, atol={atol:g})",
        detail="" if a.ndim == 0 else f"rel_error over the whole output: {rel_error(a, e):.3e}",
    )


@dataclass(frozen=True)
class OtherConvention:
    """A reading of a contract that other course materials use (another factor, another meaning of a
    parameter): what the reference computes under it, and the message for a submission that follows
    it, naming both conventions."""

    expected: Any
    message: str  # "your loss uses reg * sum(W**2); this assignment uses 0.5 * reg * sum(W**2)"


def assert_close_naming_conventions(actual: Any, expected: Any, *, name: str, others: Sequence[OtherConvention],
                                    rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """`assert_close`, where a value that equals what another convention gives fails naming that
    convention rather than only the numbers."""
    try:
        assert_close(actual, expected, name=name, rtol=rtol, atol=atol)
    except CheckFailed as failure:
        for other in others:
            try:
                assert_close(actual, other.expected, name=name, rtol=rtol, atol=atol)
            except CheckFailed:
                continue
            raise CheckFailed(f"{name}: {other.message}", failure.message) from None
        raise


def assert_true(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_tuple(value: Any, length: int, name: str) -> tuple:
    """The result must be a tuple/list of `length` items (e.g. `(out, cache)`)."""
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise CheckFailed(f"{name}: expected a tuple of {length} items, got {_describe(value)}")
    return tuple(value)


def assert_unchanged(after: Any, before: Any, *, name: str) -> None:
    """An input the code must not modify in place still holds what the grader sent."""
    if isinstance(before, dict):
        for key in before:
            assert_unchanged(after.get(key) if isinstance(after, dict) else None, before[key], name=f"{name}[{key!r}]")
        return
    if isinstance(before, np.ndarray):
        a = as_array(after, name)
        if a.shape != before.shape or not np.array_equal(a, before, equal_nan=True):
            raise CheckFailed(f"{name} was modified in place; the function must leave its inputs unchanged")
