"""Numeric-gradient checks: a submission's backward pass against central differences of its own
forward pass, computed in float64 by the grader.

Two modes behind one function. Small inputs (at most ELEMENTWISE_MAX_SIZE elements) are checked
element by element: 2 forward evaluations per element. Large inputs are checked along a few random
Gaussian directions u (2 evaluations each, whatever the size): (f(x + h u) - f(x - h u)) / 2h must
match <analytic gradient, u>, where f(x) = <forward(x), dout>. All evaluations of one attempt go to
the worker in one batched request. Tolerances are absolute numbers, never scaled by size:
|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) for every compared number.

A failed directional check is followed by an element-wise check of a slice of the input, so the
message can point at elements; `grader.gradient_diagnosis` names the pattern of the error.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from grader.compare import CheckFailed, as_array, expect_tuple
from grader.gradient_diagnosis import Sizes, constant_factor, describe_factor, patterns, worst_elements
from grader.notes import note
from grader.remote import RemoteObject, run_batch

ELEMENTWISE_MAX_SIZE = 64
DIRECTIONAL_PROBES = 4
SLICE_MAX_SIZE = 64
# A forced element-wise mode still checks inputs larger than this along directions: a DeepConvNet
# weight would otherwise cost tens of thousands of forward passes.
FORCED_ELEMENTWISE_MAX_SIZE = 4096


class Mode(str, enum.Enum):
    AUTO = "auto"                # element-wise for small inputs, directional for large ones
    ELEMENTWISE = "elementwise"
    DIRECTIONAL = "directional"


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-5
    atol: float = 1e-7
    step: float = 1e-6

    def describe(self) -> str:
        return f"tolerance per number: rtol {self.rtol:g}, atol {self.atol:g}"


DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class Measurement:
    """One gradient comparison, for the benchmark: how many forward evaluations it cost."""

    name: str
    mode: Mode
    size: int
    evaluations: int
    round_trips: int
    seconds: float
    passed: bool


_forced_mode = Mode.AUTO
_measurements: Optional[list[Measurement]] = None


@contextlib.contextmanager
def forced_mode(mode: Mode) -> Iterator[None]:
    """Every comparison in this block uses `mode` whatever the input's size (for the benchmark)."""
    global _forced_mode
    previous, _forced_mode = _forced_mode, Mode(mode)
    try:
        yield
    finally:
        _forced_mode = previous


@contextlib.contextmanager
def measuring() -> Iterator[list[Measurement]]:
    """Collects a `Measurement` of every comparison made in this block."""
    global _measurements
    previous, _measurements = _measurements, []
    try:
        yield _measurements
    finally:
        _measurements = previous


def choose_mode(size: int) -> Mode:
    if _forced_mode is Mode.DIRECTIONAL or (_forced_mode is Mode.ELEMENTWISE and size > FORCED_ELEMENTWISE_MAX_SIZE):
        return Mode.DIRECTIONAL
    if _forced_mode is Mode.ELEMENTWISE:
        return Mode.ELEMENTWISE
    return Mode.ELEMENTWISE if size <= ELEMENTWISE_MAX_SIZE else Mode.DIRECTIONAL


# f(list of perturbed copies of one input) -> one scalar per copy, in one round trip.
BatchedScalar = Callable[[list[np.ndarray]], list[float]]


def _unit(shape: tuple[int, ...], flat_index: int) -> np.ndarray:
    u = np.zeros(shape)
    u.flat[flat_index] = 1.0
    return u


def slice_indices(shape: tuple[int, ...], limit: int = SLICE_MAX_SIZE) -> tuple[tuple[slice, ...], np.ndarray]:
    """A block of at most `limit` elements: whole trailing axes while they fit, a prefix of the next,
    index 0 of the leading ones (so the block keeps the edges of an image or a row). Returns the
    block as slices and the flat indices of its elements."""
    block: list[slice] = []
    room = limit
    for size in reversed(shape):
        take = min(size, max(room, 1))
        block.insert(0, slice(0, take))
        room //= max(size, 1)
    flat = np.arange(int(np.prod(shape))).reshape(shape)[tuple(block)]
    return tuple(block), flat


@dataclass
class _Comparison:
    """Analytic and numeric values of one attempt, with where they came from."""

    analytic: np.ndarray
    numeric: np.ndarray
    excess: np.ndarray  # > 0 where the tolerance is exceeded

    @property
    def passed(self) -> bool:
        return bool(np.all(self.excess <= 0))


def _compare(analytic: np.ndarray, numeric: np.ndarray, tolerance: Tolerance) -> _Comparison:
    excess = np.abs(analytic - numeric) - (
        tolerance.atol + tolerance.rtol * np.maximum(np.abs(analytic), np.abs(numeric)))
    return _Comparison(analytic, numeric, excess)


class _Counter:
    """Wraps `evaluate` to count evaluations and round trips."""

    def __init__(self, evaluate: BatchedScalar):
        self.evaluate = evaluate
        self.evaluations = 0
        self.round_trips = 0

    def __call__(self, points: list[np.ndarray]) -> np.ndarray:
        self.evaluations += len(points)
        self.round_trips += 1
        return np.asarray(self.evaluate(points), dtype=np.float64)


def _numeric_along(directions: list[np.ndarray], x: np.ndarray, evaluate: _Counter, step: float,
                   with_magnitude: bool = False) -> Any:
    """Central differences along each direction, in one round trip (and the largest |f| seen)."""
    points = []
    for u in directions:
        points.append(x + step * u)
        points.append(x - step * u)
    values = evaluate(points)
    slopes = (values[0::2] - values[1::2]) / (2 * step)
    return (slopes, float(np.max(np.abs(values), initial=0.0))) if with_magnitude else slopes


def _relative_error(a: float, n: float) -> float:
    return abs(a - n) / max(abs(a) + abs(n), 1e-300)


def compare_gradient(analytic: Any, x: np.ndarray, evaluate: BatchedScalar, *, name: str,
                     rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE,
                     sizes: Sizes = Sizes(), findings: Sequence[str] = (), input_name: str = "x") -> None:
    """Fails with the pattern and the worst disagreement between `analytic` and the numeric gradient
    of `evaluate` at `x`. `sizes` names the sizes a wrong constant factor may be made of (the batch
    size N); `findings` are facts the caller observed (an input modified in place) that go into the
    message when the gradient is wrong."""
    g = as_array(analytic, name)
    if g.shape != x.shape:
        transposed = " (it looks transposed)" if x.ndim > 1 and g.shape == x.shape[::-1] else ""
        raise CheckFailed(f"{name}: expected shape {x.shape} (the input's), got {g.shape}{transposed}")
    g = g.astype(np.float64)
    if not np.all(np.isfinite(g)):
        bad = ~np.isfinite(g)
        first = [int(i) for i in np.argwhere(bad)[0]] if g.ndim else []
        raise CheckFailed(f"{name}: {int(bad.sum())} of {g.size} element(s) are NaN or infinite, the first at "
                          f"{first} (an overflow, a division by zero or a log of 0)")
    mode = choose_mode(x.size)
    counter = _Counter(evaluate)
    start = time.perf_counter()
    passed = False
    try:
        first: Optional[_Comparison] = None
        # A finite-difference step that straddles a kink (a ReLU at 0, a max-pool tie) gives a wrong
        # numeric slope for correct code. That needs an input within a step of the kink, so a second
        # attempt with a step ten times smaller (and new directions) almost never meets one, while a
        # wrong analytic gradient disagrees at every step.
        for attempt, step in enumerate((tolerance.step, tolerance.step / 10)):
            if mode is Mode.ELEMENTWISE:
                directions = [_unit(x.shape, i) for i in range(x.size)]
                analytic_values = g.ravel()
            else:
                directions = [rng.standard_normal(x.shape) for _ in range(DIRECTIONAL_PROBES)]
                analytic_values = np.array([np.sum(g * u) for u in directions])
            comparison = _compare(analytic_values, _numeric_along(directions, x, counter, step), tolerance)
            first = first if first is not None else comparison
            if comparison.passed:
                if attempt:
                    note(f"{name}: the finite-difference step {tolerance.step:g} straddled a kink of the function "
                         f"(a ReLU at 0, a tie), so the comparison was repeated with step {step:g}")
                passed = True
                return
        assert first is not None
        raise _failure(name, input_name, g, x, first, mode, counter, tolerance, sizes, findings)
    finally:
        if _measurements is not None:
            _measurements.append(Measurement(name, mode, int(x.size), counter.evaluations, counter.round_trips,
                                             time.perf_counter() - start, passed))


def _failure(name: str, input_name: str, g: np.ndarray, x: np.ndarray, first: _Comparison, mode: Mode, evaluate: _Counter,
             tolerance: Tolerance, sizes: Sizes, findings: Sequence[str]) -> CheckFailed:
    """The message for a gradient that disagrees: the pattern, the worst elements, the tolerance."""
    lines = []
    if mode is Mode.ELEMENTWISE:
        analytic, numeric = first.analytic.reshape(x.shape), first.numeric.reshape(x.shape)
        index_of = list(np.ndindex(*x.shape)) if x.shape else [()]
        wrong = (first.excess > 0).reshape(x.shape)
        lines.append(f"{int(wrong.sum())} of {x.size} elements disagree with the numeric gradient")
    else:
        lines.append(f"it disagrees with the numeric gradient along {int((first.excess > 0).sum())} of "
                     f"{len(first.excess)} random directions")
        # Element-wise on a slice, so that the message can name elements.
        block, flat = slice_indices(x.shape)
        numeric_flat, magnitude = _numeric_along([_unit(x.shape, int(i)) for i in flat.ravel()], x, evaluate,
                                                 tolerance.step, with_magnitude=True)
        analytic, numeric = g.ravel()[flat.ravel()].reshape(flat.shape), numeric_flat.reshape(flat.shape)
        index_of = [tuple(int(v) for v in np.unravel_index(int(i), x.shape)) for i in flat.ravel()]
        # One element of a large input moves f = <forward(x), dout> by little against its size, so
        # rounding limits the central difference to about eps * |f| / step: below that, an element is
        # not called wrong (this only locates elements; the check itself failed along directions).
        rounding = 100 * np.finfo(np.float64).eps * magnitude / tolerance.step
        sliced = _compare(analytic.ravel(), numeric.ravel(), Tolerance(tolerance.rtol, max(tolerance.atol, rounding),
                                                                       tolerance.step))
        wrong = sliced.excess > 0
        where = f"{input_name}[" + ", ".join(_slice_text(s) for s in block) + "]"
        if sliced.passed:
            lines.append(f"the {flat.size} elements of the slice {where} agree, so the error lies elsewhere")
        else:
            lines.append(f"in the slice {where}, {int((sliced.excess > 0).sum())} of {flat.size} elements disagree")
    found = [*findings, *patterns(analytic, numeric, sizes)]
    if mode is Mode.DIRECTIONAL and not any("times the numeric" in f or "wrong sign" in f for f in found):
        factor = constant_factor(first.analytic, first.numeric)
        if factor is not None:
            found.append(f"along every direction it is {describe_factor(factor, sizes) or f'{factor:.4g}'} "
                         "times the numeric gradient")
    worst = worst_elements(analytic, numeric, index_of, wrong=wrong)
    if worst:
        k = int(np.argmax(np.where(np.ravel(wrong), np.abs(analytic - numeric).ravel(), -1.0)))
        a, n = float(analytic.ravel()[k]), float(numeric.ravel()[k])
        headline = f"worst at {worst[0].split(':')[0]}: analytic {a:.6g}, numeric {n:.6g}"
    else:
        k = int(np.argmax(first.excess))
        a, n = float(first.analytic[k]), float(first.numeric[k])
        headline = f"along a random direction: analytic {a:.6g}, numeric {n:.6g}"
    message = (f"{name} is wrong: {found[0] if found else lines[0]}; {headline} "
               f"(relative error {_relative_error(a, n):.2e}; {tolerance.describe()})")
    detail = [*lines, *(f"pattern: {f}" for f in found[1:] if found)]
    if worst:
        detail.append("largest differences: " + "; ".join(worst))
    if analytic.size <= ELEMENTWISE_MAX_SIZE:
        detail += ["numeric gradient:", np.array2string(numeric, precision=5),
                   "analytic gradient:", np.array2string(analytic, precision=5)]
    return CheckFailed(message, "\n".join(detail))


def _slice_text(s: slice) -> str:
    return f"{s.start}:{s.stop}" if s.stop - s.start > 1 else str(s.start)


def like(template: Any, array: np.ndarray) -> Any:
    """`array` in the form of `template`: a tensor of its dtype and device for a torch tensor, else an
    ndarray of its dtype. The numeric work stays in float64 NumPy on the grader's side."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(template, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=template.device, dtype=template.dtype)
    dtype = template.dtype if isinstance(template, np.ndarray) else np.float64
    return np.asarray(array, dtype=dtype)


def _dot(output: Any, dout: np.ndarray, name: str) -> float:
    out = as_array(output, name)
    if out.shape != dout.shape:
        raise CheckFailed(f"{name}: the forward pass returned shape {out.shape} on a perturbed input, "
                          f"{dout.shape} before")
    return float(np.sum(out.astype(np.float64) * dout))


def _batch_size(value: Any) -> Sizes:
    shape = getattr(value, "shape", ())
    return Sizes.of(N=shape[0]) if len(shape) > 1 else Sizes()


def _changed(before: Any, after: Any) -> bool:
    if not hasattr(before, "shape"):
        return False
    a, b = as_array(before, "input"), as_array(after, "input")
    return a.shape != b.shape or not np.array_equal(a, b, equal_nan=True)


def check_layer_backward(forward: RemoteObject, backward: RemoteObject, args: Sequence[Any], *,
                         gradients: Sequence[tuple[str, int]], rng: np.random.Generator,
                         tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`forward(*args) -> (out, cache)`, `backward(dout, cache) -> grads`; `gradients` names each
    returned gradient and the argument it belongs to, in the order backward returns them, e.g.
    [("dx", 0), ("dw", 1), ("db", 2)] (one entry when backward returns a single array)."""
    forward_name, backward_name = forward._display_name(), backward._display_name()
    # The cache stays in the worker: it may hold what cannot cross (an autograd graph, an object).
    kept = forward._call(args, {}, hold_items=[1], return_args=True)
    out, cache = expect_tuple(kept.result, 2, forward_name)
    findings = [f"{forward_name} modified its argument {i} in place, so the cache may hold changed values"
                for i, (before, after) in enumerate(zip(args, kept.args)) if _changed(before, after)]
    dout = rng.standard_normal(as_array(out, f"out of {forward_name}").shape)
    dout_sent = like(out, dout)
    called = backward._call((dout_sent, cache), {}, return_args=True)
    if _changed(dout_sent, called.args[0]):
        text = f"{backward_name} modified dout in place"
        findings.append(text)
        note(f"{text}: harmless here, but wrong for a caller that uses dout again")
    returned = called.result
    if len(gradients) == 1 and not isinstance(returned, (tuple, list)):
        returned = (returned,)
    returned = expect_tuple(returned, len(gradients), backward_name)
    sizes = _batch_size(args[0])
    for (grad_name, arg_index), analytic in zip(gradients, returned):
        def evaluate(points: list[np.ndarray], arg_index: int = arg_index) -> list[float]:
            original = args[arg_index]
            calls = [([*args[:arg_index], like(original, p), *args[arg_index + 1:]], {}) for p in points]
            outs = forward.many(calls, select=[0])
            return [_dot(o, dout, f"out of {forward_name}") for o in outs]

        compare_gradient(analytic, as_array(args[arg_index], "input").astype(np.float64), evaluate,
                         name=f"{grad_name} of {backward_name}", rng=rng, tolerance=tolerance, sizes=sizes,
                         findings=findings, input_name=grad_name.removeprefix("d") or "x")


def check_loss_gradient(loss_function: RemoteObject, x: Any, y: Any, *, name: str,
                        rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`loss_function(x, y) -> (loss, dx)`: dx against the numeric gradient of loss."""
    loss, dx = expect_tuple(loss_function(x, y), 2, name)

    def evaluate(points: list[np.ndarray]) -> list[float]:
        losses = loss_function.many([((like(x, p), y), {}) for p in points], select=[0])
        return [float(as_array(v, f"loss of {name}")) for v in losses]

    compare_gradient(dx, as_array(x, "x").astype(np.float64), evaluate, name=f"dx of {name}", rng=rng,
                     tolerance=tolerance, sizes=_batch_size(x))


def check_model_gradients(model: RemoteObject, X: Any, y: Any, *, model_name: str,
                          rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`model.loss(X, y) -> (loss, grads)` with one gradient per entry of `model.params`, each
    against the numeric gradient of the loss with respect to that parameter."""
    params = model.params.fetch()
    if not isinstance(params, dict):
        raise CheckFailed(f"{model_name}.params: expected a dict of arrays, got {type(params).__name__}")
    loss, grads = expect_tuple(model.loss(X, y), 2, f"{model_name}.loss(X, y)")
    if not isinstance(grads, dict):
        raise CheckFailed(f"{model_name}.loss(X, y): expected grads as a dict, got {type(grads).__name__}")
    missing = sorted(set(params) - set(grads))
    if missing:
        raise CheckFailed(f"{model_name}.loss(X, y): grads has no entry for {', '.join(map(str, missing))}")
    session = model._session
    for name in sorted(params, key=str):
        original = params[name]

        def evaluate(points: list[np.ndarray], name: Any = name, original: Any = original) -> list[float]:
            steps: list[tuple[str, RemoteObject, tuple]] = []
            for p in points:
                steps.append(("setitem", model.params, (name, like(original, p))))
                steps.append(("call", model.loss, ((X, y), {}, [0])))
            steps.append(("setitem", model.params, (name, original)))
            results = run_batch(session, steps)
            return [float(as_array(v, f"loss of {model_name}")) for v in results[1:-1:2]]

        compare_gradient(grads[name], as_array(original, f"{model_name}.params[{name!r}]").astype(np.float64), evaluate,
                         name=f"grads[{name!r}] of {model_name}.loss", rng=rng, tolerance=tolerance,
                         sizes=_batch_size(X), input_name=f"params[{name!r}]")
