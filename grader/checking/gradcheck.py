"""Gradient checks: a submission's backward pass against central differences of its own forward pass,
computed in float64 by the grader, and against the reference's gradient at the same inputs.

Numeric side. Small inputs (at most ELEMENTWISE_MAX_SIZE elements; a model's parameters at most
MODEL_ELEMENTWISE_MAX_SIZE) are checked element by element: 2 forward evaluations per element. Large
inputs are checked along a few random Gaussian directions u (2 evaluations each, whatever the size):
(f(x + h u) - f(x - h u)) / 2h must match <analytic gradient, u>,
where f(x) = <forward(x), dout>. A model's parameters are first moved all at once, as one input
(`_JointProbes`), where the reference's gradients are compared as well; each is probed on its own only
where that disagrees. Tolerances are absolute numbers, never scaled by size:
|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) for every compared number.

Probes a forward pass cannot single out: the step h is drawn per check from a range around the
tolerance's step, and the perturbed evaluations travel in a random order, in batches that also hold
ordinary calls (the call whose cache the backward pass gets, or the unperturbed input again).

Kinks. A step that straddles one (a ReLU at 0, a max-pool tie) gives a wrong numeric slope for correct
code: a failed attempt is repeated with a step ten times smaller and new directions; where that fails
too, a direction whose two one-sided slopes differ (a kink's signature) is accepted when the analytic
value equals one of them, which a wrong gradient in a smooth region never does.

Reference side. Every check also gets the reference's behaviour at the same inputs (`ReferenceLayer`,
or an expectation a check builds from the contract, such as `shared_checks.InvertedDropout`): the
forward pass (or loss) must agree with it before the gradients are compared at all, and the gradients
must equal the reference's as well as the numeric ones. A forward pass that computes nothing, or one
that answers probes differently from ordinary calls, cannot make a wrong backward pass look right.

A failed numeric comparison is followed by an element-wise check of a slice of the input, so the
message can point at elements; `grader.checking.gradient_diagnosis` names the pattern of the error.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

import numpy as np

from grader.checking.compare import (CheckFailed, OtherConvention, as_array, assert_close, assert_close_naming_conventions,
                            expect_tuple, type_name)
from grader.checking.gradient_diagnosis import Sizes, constant_factor, describe_factor, patterns, worst_elements
from grader.checking.notes import note
from grader.checking.proxies import fetch, set_params
from grader.sandbox import remote
from grader.sandbox.errors import StudentException
from grader.sandbox.remote import RemoteObject, WorkerSession

ELEMENTWISE_MAX_SIZE = 64
DIRECTIONAL_PROBES = 4
# A model's probe is a whole forward and backward pass, and its gradients are compared with the
# reference's element by element as well: a parameter is probed element-wise only where that costs no
# more evaluations than the directions (a DeepConvNet's 54-element filter bank: 8 passes, not 108).
MODEL_ELEMENTWISE_MAX_SIZE = DIRECTIONAL_PROBES
SLICE_MAX_SIZE = 64
# A forced element-wise mode still checks inputs larger than this along directions: a DeepConvNet
# weight would otherwise cost tens of thousands of forward passes.
FORCED_ELEMENTWISE_MAX_SIZE = 4096
# A check's step is the tolerance's step times a factor drawn log-uniformly from this range, so that a
# forward pass cannot look for one fixed step; at either end a float64 central difference stays far
# inside the tolerances (rounding about eps * |f| / step, truncation about step**2).
STEP_FACTORS = (0.5, 2.0)


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


@dataclass(frozen=True)
class Instruments:
    """How the comparisons of a block of code are run and watched: a mode forced whatever the input's
    size, and a list that collects a `Measurement` of each comparison (for the benchmark). Grading
    uses the default: the mode by size, nothing collected."""

    forced_mode: Mode = Mode.AUTO
    measurements: Optional[list[Measurement]] = None


_instruments: contextvars.ContextVar[Instruments] = contextvars.ContextVar("gradient_check_instruments",
                                                                            default=Instruments())


@contextlib.contextmanager
def _instrumented(**changes: Any) -> Iterator[Instruments]:
    token = _instruments.set(dataclasses.replace(_instruments.get(), **changes))
    try:
        yield _instruments.get()
    finally:
        _instruments.reset(token)


@contextlib.contextmanager
def forced_mode(mode: Mode) -> Iterator[None]:
    """Every comparison in this block uses `mode` whatever the input's size (for the benchmark)."""
    with _instrumented(forced_mode=Mode(mode)):
        yield


@contextlib.contextmanager
def measuring() -> Iterator[list[Measurement]]:
    """Collects a `Measurement` of every comparison made in this block."""
    with _instrumented(measurements=[]) as instruments:
        assert instruments.measurements is not None
        yield instruments.measurements


def mode_for_size(size: int, elementwise_max_size: int = ELEMENTWISE_MAX_SIZE) -> Mode:
    """Elementwise probes for a small input, directional ones for a large one (unless forced)."""
    forced = _instruments.get().forced_mode
    if forced is Mode.DIRECTIONAL or (forced is Mode.ELEMENTWISE and size > FORCED_ELEMENTWISE_MAX_SIZE):
        return Mode.DIRECTIONAL
    if forced is Mode.ELEMENTWISE:
        return Mode.ELEMENTWISE
    return Mode.ELEMENTWISE if size <= elementwise_max_size else Mode.DIRECTIONAL


# f(list of perturbed copies of one input) -> one scalar per copy, in one round trip.
BatchedScalar = Callable[[list[np.ndarray]], list[float]]


def draw_step(rng: np.random.Generator, tolerance: Tolerance) -> float:
    low, high = STEP_FACTORS
    return tolerance.step * float(np.exp(rng.uniform(np.log(low), np.log(high))))


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


@dataclass(frozen=True)
class Probes:
    """One attempt: central differences at `x` along `directions` with `step`."""

    x: np.ndarray
    mode: Mode
    directions: tuple[np.ndarray, ...]
    step: float

    @classmethod
    def along(cls, x: np.ndarray, mode: Mode, step: float, rng: np.random.Generator) -> "Probes":
        """Every unit vector (element-wise), or DIRECTIONAL_PROBES fresh Gaussian directions."""
        if mode is Mode.ELEMENTWISE:
            directions = tuple(_unit(x.shape, i) for i in range(x.size))
        else:
            directions = tuple(rng.standard_normal(x.shape) for _ in range(DIRECTIONAL_PROBES))
        return cls(x, mode, directions, step)

    def points(self) -> list[np.ndarray]:
        return [p for u in self.directions for p in (self.x + self.step * u, self.x - self.step * u)]

    def slopes(self, values: Sequence[float]) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return (values[0::2] - values[1::2]) / (2 * self.step)

    def project(self, gradient: np.ndarray) -> np.ndarray:
        """<gradient, u> for each direction u: what each slope should be."""
        return np.array([np.sum(gradient * u) for u in self.directions])


@dataclass(frozen=True)
class Measured:
    """A first attempt whose points were evaluated together with other calls: their values, in order."""

    probes: Probes
    values: Sequence[float]


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


def _numeric_along(directions: Sequence[np.ndarray], x: np.ndarray, evaluate: _Counter, step: float,
                   with_magnitude: bool = False) -> Any:
    """Central differences along each direction, in one round trip (and the largest |f| seen)."""
    probes = Probes(x, Mode.DIRECTIONAL, tuple(directions), step)
    values = evaluate(probes.points())
    slopes = probes.slopes(values)
    return (slopes, float(np.max(np.abs(values), initial=0.0))) if with_magnitude else slopes


def _one_sided_slopes(probes: Probes, evaluate: _Counter, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order one-sided differences along each direction of `probes`, from f at x, x + h u,
    x + 2h u (ahead) and x - h u, x - 2h u (behind): each sees only one side of a kink closer than h."""
    x = probes.x
    points = [x]
    for u in probes.directions:
        points += [x + step * u, x + 2 * step * u, x - step * u, x - 2 * step * u]
    values = evaluate(points)
    at, around = values[0], values[1:].reshape(-1, 4)
    ahead = (-3 * at + 4 * around[:, 0] - around[:, 1]) / (2 * step)
    behind = (3 * at - 4 * around[:, 2] + around[:, 3]) / (2 * step)
    return ahead, behind


def _kinks_explain(failed: _Comparison, probes: Probes, evaluate: _Counter, tolerance: Tolerance) -> bool:
    """Whether every disagreeing direction of `failed` crosses a kink (its one-sided slopes differ)
    and the analytic value there equals one of them: the gradient of the piece x lies on. A wrong
    gradient in a smooth region has equal one-sided slopes, so it is never explained away."""
    wrong = np.flatnonzero(failed.excess > 0)
    suspects = Probes(probes.x, probes.mode, tuple(probes.directions[i] for i in wrong), probes.step)
    ahead, behind = _one_sided_slopes(suspects, evaluate, probes.step)
    analytic = failed.analytic[wrong]
    kinked = _compare(ahead, behind, tolerance).excess > 0
    matches = (_compare(analytic, ahead, tolerance).excess <= 0) | (_compare(analytic, behind, tolerance).excess <= 0)
    return bool(np.all(kinked & matches))


def _relative_error(a: float, n: float) -> float:
    return abs(a - n) / max(abs(a) + abs(n), 1e-300)


def _checked_analytic(analytic: Any, x: np.ndarray, name: str, input_name: str = "") -> np.ndarray:
    """The analytic gradient as float64, with the shape of its input (`input_name`: gamma for dgamma)
    and finite, or a failure saying why not."""
    g = as_array(analytic, name)
    if g.shape != x.shape:
        transposed = " (it looks transposed)" if x.ndim > 1 and g.shape == x.shape[::-1] else ""
        whose = f"{input_name}'s" if input_name else "the input's"
        raise CheckFailed(f"{name}: expected shape {x.shape} ({whose}), got {g.shape}{transposed}")
    g = g.astype(np.float64)
    if not np.all(np.isfinite(g)):
        bad = ~np.isfinite(g)
        first = [int(i) for i in np.argwhere(bad)[0]] if g.ndim else []
        raise CheckFailed(f"{name}: {int(bad.sum())} of {g.size} element(s) are NaN or infinite, the first at "
                          f"{first} (an overflow, a division by zero or a log of 0)")
    return g


def compare_gradient(analytic: Any, x: np.ndarray, evaluate: BatchedScalar, *, name: str,
                     rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE,
                     sizes: Sizes = Sizes(), findings: Sequence[str] = (), input_name: str = "x",
                     first: Optional[Measured] = None) -> None:
    """Fails with the pattern and the worst disagreement between `analytic` and the numeric gradient
    of `evaluate` at `x`. `first`, where given, is the first attempt already evaluated (with other
    calls, so that its probes hide among them). `sizes` names the sizes a wrong constant factor may be
    made of (the batch size N); `findings` are facts the caller observed (an input modified in place)
    that go into the message when the gradient is wrong."""
    g = _checked_analytic(analytic, x, name, input_name)
    start = time.perf_counter()
    counter = _Counter(evaluate)
    if first is None:
        probes = Probes.along(x, mode_for_size(x.size), draw_step(rng, tolerance), rng)
        first = Measured(probes, counter(probes.points()))
    else:
        counter.evaluations, counter.round_trips = len(first.values), 1
    mode, step = first.probes.mode, first.probes.step
    passed = False
    try:
        comparison = _compare(first.probes.project(g), first.probes.slopes(first.values), tolerance)
        passed = comparison.passed or _passes_again(g, first.probes, comparison, counter, tolerance, name)
        if not passed:
            raise _failure(name, input_name, g, x, comparison, mode, counter, tolerance, sizes, findings, step)
    finally:
        _record(lambda: Measurement(name, mode, int(x.size), counter.evaluations, counter.round_trips,
                                    time.perf_counter() - start, passed))


def _record(measurement: Callable[[], Measurement]) -> None:
    """Keeps the comparison's measurement where a `measuring()` block collects them (built only then)."""
    measurements = _instruments.get().measurements
    if measurements is not None:
        measurements.append(measurement())


def _passes_again(g: np.ndarray, first: Probes, failed: _Comparison, evaluate: _Counter, tolerance: Tolerance,
                  name: str) -> bool:
    """A failed first attempt may have straddled a kink, which needs an input within a step of it: the
    same directions with a step ten times smaller almost never meet one. Where they still disagree, a
    slope that changed with the step is a kink's signature (central differences of a smooth function
    agree at both steps), and the one-sided slopes decide; a wrong gradient disagrees at every step."""
    retry = Probes(first.x, first.mode, first.directions, first.step / 10)
    second = _compare(failed.analytic, retry.slopes(evaluate(retry.points())), tolerance)
    if second.passed:
        note(f"{name}: the finite-difference step {first.step:.2g} straddled a kink of the function (a ReLU at 0, "
             f"a tie), so the comparison was repeated with step {retry.step:.2g}")
        return True
    step_dependent = _compare(failed.numeric, second.numeric, tolerance).excess > 0
    if not np.all(step_dependent[second.excess > 0]) or not _kinks_explain(second, first, evaluate, tolerance):
        return False
    note(f"{name}: the finite-difference steps {first.step:.2g} and {retry.step:.2g} both straddled a kink of the "
         "function (a ReLU at 0, a tie); there the gradient was compared with the one-sided slope of the side the "
         "input lies on")
    return True


def _failure(name: str, input_name: str, g: np.ndarray, x: np.ndarray, first: _Comparison, mode: Mode,
             evaluate: _Counter, tolerance: Tolerance, sizes: Sizes, findings: Sequence[str], step: float) -> CheckFailed:
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
                                                 step, with_magnitude=True)
        analytic, numeric = g.ravel()[flat.ravel()].reshape(flat.shape), numeric_flat.reshape(flat.shape)
        index_of = [tuple(int(v) for v in np.unravel_index(int(i), x.shape)) for i in flat.ravel()]
        # One element of a large input moves f = <forward(x), dout> by little against its size, so
        # rounding limits the central difference to about eps * |f| / step: below that, an element is
        # not called wrong (this only locates elements; the check itself failed along directions).
        rounding = 100 * np.finfo(np.float64).eps * magnitude / step
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


def _is_array(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor))


def _keeps_dtype(out: Any, x: Any, forward_name: str) -> None:
    """A forward pass's output has its input's floating dtype: the central differences of a float32
    computation of a float64 input are too coarse to judge a backward pass by."""
    if not (_is_array(out) and _is_array(x)):
        return
    out_dtype, x_dtype = str(out.dtype).removeprefix("torch."), str(x.dtype).removeprefix("torch.")
    if out_dtype != x_dtype and x_dtype.startswith("float"):
        raise CheckFailed(f"out of {forward_name}: expected dtype {x_dtype} (the input's), got {out_dtype}")


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
                          f"{dout.shape} at the input itself")
    return float(np.sum(out.astype(np.float64) * dout))


def _batch_size(value: Any) -> Sizes:
    shape = getattr(value, "shape", ())
    return Sizes.of(N=shape[0]) if len(shape) > 1 else Sizes()


def _changed(before: Any, after: Any) -> bool:
    if not hasattr(before, "shape"):
        return False
    a, b = as_array(before, "input"), as_array(after, "input")
    return a.shape != b.shape or not np.array_equal(a, b, equal_nan=True)


def _replaced(args: Sequence[Any], index: int, value: Any) -> list[Any]:
    return [*args[:index], value, *args[index + 1:]]


# -- probes among ordinary calls ---------------------------------------------------------------------

# Steps for the worker that belong together and stay in order (set a parameter, evaluate, set it
# back): each ("call", function, args, options), with the options of remote.call_operation (select,
# keep_items, return_args), or ("setitem", mapping, key, value).
Group = list


def _run_shuffled(session: WorkerSession, rng: np.random.Generator, groups: list[Group]) -> list[list[Any]]:
    """Sends the groups as one batch in a random order, so that probes and ordinary calls arrive mixed,
    and returns each group's answers in the order the groups were given."""
    order = rng.permutation(len(groups))
    encoder = session.encoder()
    steps: list[tuple[RemoteObject, Any]] = []
    for index in order:
        for kind, target, *payload in groups[index]:
            if kind == "call":
                args, options = payload
                steps.append((target, remote.call_operation(target, encoder, args, {}, **options)))
            else:
                key, value = payload
                steps.append((target, remote.setitem_operation(target, encoder, key, value)))
    answers = iter(remote.perform_batch(session, steps, encoder))
    result: list[list[Any]] = [[] for _ in groups]
    for index in order:
        result[index] = [next(answers) for _ in groups[index]]
    return result


def _probe_values(session: WorkerSession, rng: np.random.Generator, ordinary: Group,
                  probe: Callable[[np.ndarray], Group], points: list[np.ndarray], pick: int,
                  value: Callable[[Any], float]) -> list[float]:
    """f at each point, sent with one ordinary call among them; `probe(point)` is the group that
    evaluates a point and `pick` the index of its answer in that group."""
    answers = _run_shuffled(session, rng, [ordinary, *(probe(p) for p in points)])
    return [value(group[pick]) for group in answers[1:]]


# -- what the reference does ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerExpectation:
    """What a layer must do at one input."""

    out_shape: tuple[int, ...]
    # Raises CheckFailed saying how the forward pass's output differs from what it must be.
    check_output: Callable[[Any], None]
    # (dout, the forward pass's output) -> the gradients, in the order the backward pass returns them.
    gradients: Callable[[np.ndarray, Any], Sequence[Any]]


class LayerReference(Protocol):
    def expect(self, args: Sequence[Any], forward_name: str) -> LayerExpectation: ...


@dataclass(frozen=True)
class ReferenceLayer:
    """The reference's forward and backward pass: at the same inputs the submission's output must
    equal the reference's, and its gradients for the same dout the reference's."""

    forward: Any
    backward: Any

    def expect(self, args: Sequence[Any], forward_name: str) -> LayerExpectation:
        answer = self.forward(*args)
        if isinstance(answer, (tuple, list)):
            out, cache = expect_tuple(answer, 2, f"the reference's {forward_name}")
        else:  # a cache that cannot cross stays with the reference, as an object to pass back
            out, cache = fetch(answer[0]), answer[1]

        def check_output(actual: Any) -> None:
            assert_close(actual, out, name=f"out of {forward_name}")

        def gradients(dout: np.ndarray, _: Any) -> Sequence[Any]:
            grads = self.backward(like(out, dout), cache)
            return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)

        return LayerExpectation(tuple(as_array(out, f"the reference's {forward_name}").shape), check_output, gradients)


def forward_agrees(check: Callable[[], None], forward_name: str, backward_name: str, *,
                    graded_alone: bool = False) -> None:
    """The forward pass's output (or loss) agrees with the reference's before any gradient is compared,
    so that a wrong forward pass is reported as such, and a forward pass computing something else
    cannot carry a backward pass consistent with it. `graded_alone`: the forward pass is a layer's,
    which a task of its own grades (a network's loss with batch normalization or dropout is not)."""
    try:
        check()
    except CheckFailed as failure:
        raise CheckFailed(f"{backward_name}: not graded, because {forward_name} disagrees with the reference at this "
                          f"check's inputs ({failure.message}); gradients are compared only where the forward "
                          f"computation is right, so fix {forward_name} first"
                          + (" (its own task shows the difference)" if graded_alone else ""),
                          failure.detail) from None


def _agrees_with_reference(analytic: Any, expected: Any, *, name: str, forward_name: str,
                           tolerance: Tolerance) -> None:
    """The gradient equals the reference's at the same inputs, not only the numeric gradient of the
    submission's own forward pass (which a forward pass can bend near its input)."""
    try:
        assert_close(analytic, expected, name=name, rtol=tolerance.rtol, atol=tolerance.atol)
    except CheckFailed as failure:
        raise CheckFailed(f"{name} disagrees with the reference's gradient at this check's inputs, though it agrees "
                          f"with central differences of {forward_name}, so {forward_name} computes something else "
                          f"near these inputs than at them: {failure.message.removeprefix(name + ': ')}",
                          failure.detail) from None


# -- the checks --------------------------------------------------------------------------------------

def check_layer_backward(forward: RemoteObject, backward: RemoteObject, args: Sequence[Any], *,
                         gradients: Sequence[tuple[str, int]], rng: np.random.Generator, reference: LayerReference,
                         tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`forward(*args) -> (out, cache)`, `backward(dout, cache) -> grads`; `gradients` names each
    returned gradient and the argument it belongs to, in the order backward returns them, e.g.
    [("dx", 0), ("dw", 1), ("db", 2)] (one entry when backward returns a single array). `reference`
    says what the layer must do at `args` (usually `ReferenceLayer(reference.layers.f, ...)`)."""
    forward_name, backward_name = remote.display_name(forward), remote.display_name(backward)
    # Everything drawn from rng before the submission answers, so the reference is asked the same
    # questions whatever the submission does (public mode answers them from recordings).
    expected = reference.expect(args, forward_name)
    dout = rng.standard_normal(expected.out_shape)
    step = draw_step(rng, tolerance)
    inputs = [as_array(args[i], grad_name).astype(np.float64) for grad_name, i in gradients]
    first = [Probes.along(x, mode_for_size(x.size), step, rng) for x in inputs]

    def probe(arg_index: int) -> Callable[[np.ndarray], Group]:
        return lambda p: [("call", forward, _replaced(args, arg_index, like(args[arg_index], p)), {"select": [0]})]

    # The call whose cache the backward pass gets travels among the probes; the cache stays in the
    # worker, since it may hold what cannot cross (an autograd graph, an object).
    base: Group = [("call", forward, list(args), {"keep_items": [1], "return_args": True})]
    groups = [base] + [probe(i)(p) for (_, i), probes in zip(gradients, first) for p in probes.points()]
    answers = _run_shuffled(remote.session_of(forward), rng, groups)
    kept = answers[0][0]
    out, cache = expect_tuple(kept.result, 2, forward_name)
    forward_agrees(lambda: (_keeps_dtype(out, args[0], forward_name), expected.check_output(out)),
                    forward_name, backward_name, graded_alone=True)
    # Changing an input in place is no error in itself; it matters only where the cache then holds the
    # changed values and the gradients come out wrong, which is what the message of a wrong gradient says.
    argument_names = {i: grad_name.removeprefix("d") or f"argument {i + 1}" for grad_name, i in gradients}
    findings = []
    for i, (before, after) in enumerate(zip(args, kept.args)):
        if _changed(before, after):
            changed = argument_names.get(i, f"argument {i + 1}")
            findings.append(f"{forward_name} changed {changed} in place, so a cache that keeps {changed} hands "
                            f"{backward_name} the changed values")
    returned = _backward_gradients(backward, like(out, dout), cache, len(gradients), findings)
    wanted = expected.gradients(dout, out)
    probe_answers = iter(group[0] for group in answers[1:])
    ordinary: Group = [("call", forward, list(args), {"select": [0]})]
    for (grad_name, arg_index), analytic, x, probes, expected_gradient in zip(gradients, returned, inputs, first, wanted):
        values = [_dot(next(probe_answers), dout, f"out of {forward_name}") for _ in probes.points()]

        def evaluate(points: list[np.ndarray], arg_index: int = arg_index) -> list[float]:
            return _probe_values(remote.session_of(forward), rng, ordinary, probe(arg_index), points, 0,
                                 lambda o: _dot(o, dout, f"out of {forward_name}"))

        name = f"{grad_name} of {backward_name}"
        compare_gradient(analytic, x, evaluate, name=name, rng=rng, tolerance=tolerance, sizes=_batch_size(args[0]),
                         findings=findings, input_name=grad_name.removeprefix("d") or "x",
                         first=Measured(probes, values))
        _agrees_with_reference(analytic, expected_gradient, name=name, forward_name=forward_name, tolerance=tolerance)


def _backward_gradients(backward: RemoteObject, dout: Any, cache: Any, count: int, findings: list[str]) -> tuple:
    """`backward(dout, cache)` as a tuple of `count` gradients. Changing dout in place breaks no caller
    (none uses dout again), so it only becomes a finding for the message of a wrong gradient, where it
    may be why: a gradient computed from dout after dout was changed."""
    backward_name = remote.display_name(backward)
    called = remote.call(backward, (dout, cache), {}, return_args=True)
    if _changed(dout, called.args[0]):
        findings.append(f"{backward_name} changed dout in place (harmless, unless a gradient was computed from the "
                        "changed dout)")
    returned = called.result
    if count == 1 and not isinstance(returned, (tuple, list)):
        returned = (returned,)
    return expect_tuple(returned, count, backward_name)


def check_loss_gradient(loss_function: RemoteObject, x: Any, y: Any, *, name: str, rng: np.random.Generator,
                        reference: Any, tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`loss_function(x, y) -> (loss, dx)`: the loss equal to `reference`'s (the reference's loss
    function), then dx against the numeric gradient of the loss and against the reference's dx."""
    expected_loss, expected_dx = expect_tuple(reference(x, y), 2, f"the reference's {name}")
    x64 = as_array(x, "x").astype(np.float64)
    probes = Probes.along(x64, mode_for_size(x64.size), draw_step(rng, tolerance), rng)

    def probe(p: np.ndarray) -> Group:
        return [("call", loss_function, [like(x, p), y], {"select": [0]})]

    def loss_value(v: Any) -> float:
        return float(as_array(v, f"loss of {name}"))

    answers = _run_shuffled(remote.session_of(loss_function), rng,
                            [[("call", loss_function, [x, y], {})], *(probe(p) for p in probes.points())])
    loss, dx = expect_tuple(answers[0][0], 2, name)
    forward_agrees(lambda: assert_close(loss, expected_loss, name=f"loss of {name}"), f"the loss of {name}",
                    f"dx of {name}")

    def evaluate(points: list[np.ndarray]) -> list[float]:
        return _probe_values(remote.session_of(loss_function), rng, [("call", loss_function, [x, y], {"select": [0]})], probe,
                             points, 0, loss_value)

    compare_gradient(dx, x64, evaluate, name=f"dx of {name}", rng=rng, tolerance=tolerance, sizes=_batch_size(x),
                     first=Measured(probes, [loss_value(group[0]) for group in answers[1:]]))
    _agrees_with_reference(dx, expected_dx, name=f"dx of {name}", forward_name=name, tolerance=tolerance)


def _expect_parameters(model: RemoteObject, names: Sequence[str], model_name: str) -> None:
    """Every documented parameter is in model.params under its name: the names compared are the
    contract's, so a model cannot keep a parameter out of the comparison by not showing it."""
    shown = fetch(model.params)
    if isinstance(shown, dict):
        missing = [n for n in names if n not in shown]
    else:  # not a plain dict (a subclass stays in the worker): each name must still be readable
        missing = [n for n in names if not _readable(model.params[n])]
    if missing and isinstance(shown, dict):
        raise CheckFailed(parameter_names_differ(names, list(shown), model_name))
    if missing:
        raise CheckFailed(f"{model_name}.params has no {', '.join(map(repr, missing))} (the documented parameters "
                          f"are {', '.join(names)})")


def parameter_names_differ(expected: Sequence[str], found: Sequence[Any], model_name: str) -> str:
    """The message for a model whose params lack documented names: both lists of names, and the
    renaming where it is a common one (another spelling, layers numbered from 0)."""
    missing = [name for name in expected if name not in found]
    message = (f"{model_name}: expected params {', '.join(expected)} (as the docstring names them); your model has "
               f"{', '.join(map(str, found)) or 'none'}, without {', '.join(map(repr, missing))}")
    renaming = _common_renaming(expected, [str(name) for name in found])
    return f"{message} ({renaming})" if renaming else message


def _spelling(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _numbered_from_one(name: str) -> str:
    return re.sub(r"(\d+)$", lambda number: str(int(number.group(1)) + 1), _spelling(name))


def _common_renaming(expected: Sequence[str], found: Sequence[str]) -> str:
    wanted = {_spelling(name) for name in expected}
    if wanted <= {_spelling(name) for name in found}:
        return "the same names spelled otherwise: use the docstring's spelling exactly, keys are case-sensitive"
    if wanted <= {_numbered_from_one(name) for name in found}:
        return "your layers are numbered from 0; the docstring numbers them from 1"
    return ""


def _readable(path: RemoteObject) -> bool:
    try:
        fetch(path)
    except StudentException:
        return False
    return True


def _reference_answer(reference_model: Any, params: dict[str, Any], X: Any, y: Any, model_name: str) -> tuple:
    set_params(reference_model, params)
    return expect_tuple(reference_model.loss(X, y), 2, f"the reference's {model_name}.loss(X, y)")


def check_model_gradients(model: RemoteObject, X: Any, y: Any, *, params: dict[str, Any], reference_model: Any,
                          model_name: str, rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE,
                          other_conventions: Sequence[OtherConvention] = ()) -> None:
    """`model.loss(X, y) -> (loss, grads)`: with `params` (every documented parameter, by name) set on
    the model, the loss equal to `reference_model`'s with the same parameters, and each gradient
    against the numeric gradient of the loss and the reference's gradient. `reference_model` is None
    only where a check ties the model to the reference otherwise (a dropout mask of the submission's
    own drawing, with the same network without dropout compared with the reference). A loss that
    equals the one of `other_conventions` (the reference's loss under another course's convention, at
    the same parameters) is reported as following that convention.

    Where the reference's gradients are compared too, the first numeric attempt moves every parameter
    at once, along directions in the space of all of them: a probe is a whole forward and backward
    pass, so this costs the passes of one parameter instead of one parameter's passes for each. Only
    where it disagrees is each parameter probed on its own, which names the parameter and elements."""
    names = list(params)
    _expect_parameters(model, names, model_name)
    expected = _reference_answer(reference_model, params, X, y, model_name) if reference_model is not None else None
    _run_shuffled(remote.session_of(model), rng, [[("setitem", model.params, name, value)] for name, value in params.items()])
    # (one round trip; the order of the assignments does not matter)
    step = draw_step(rng, tolerance)
    inputs = {name: as_array(value, f"params[{name!r}]").astype(np.float64) for name, value in params.items()}
    ordinary: Group = [("call", model.loss, [X, y], {"select": [0]})]

    def probe(name: str) -> Callable[[np.ndarray], Group]:
        # Set one parameter, evaluate, set it back: every other call sees the parameters as they are.
        return lambda p: [("setitem", model.params, name, like(params[name], p)),
                          *ordinary,
                          ("setitem", model.params, name, params[name])]

    def loss_value(v: Any) -> float:
        return float(as_array(v, f"loss of {model_name}"))

    def probed_alone(first: dict[str, Probes]) -> list[Group]:
        return [probe(n)(p) for n in names for p in first[n].points()]

    jointly = expected is not None and _instruments.get().forced_mode is Mode.AUTO
    joint = _JointProbes.along(inputs, step, rng) if jointly else None
    first = {} if joint is not None else _parameter_probes(inputs, step, rng)
    groups = [[("call", model.loss, [X, y], {})]]
    if joint is not None:
        groups += [joint.group(model, params, point, ordinary) for point in joint.probes.points()]
    else:
        groups += probed_alone(first)
    answers = _run_shuffled(remote.session_of(model), rng, groups)
    loss, grads = expect_tuple(answers[0][0], 2, f"{model_name}.loss(X, y)")
    if expected is not None:
        loss_name = f"loss of {model_name}.loss(X, y)"
        forward_agrees(lambda: assert_close_naming_conventions(loss, expected[0], name=loss_name,
                                                                others=other_conventions),
                        f"the loss of {model_name}", f"grads of {model_name}")
    if not isinstance(grads, dict):
        raise CheckFailed(f"{model_name}.loss(X, y): expected grads as a dict, got {type_name(grads)}")
    missing = [n for n in names if n not in grads]
    if missing:
        raise CheckFailed(f"{model_name}.loss(X, y): grads has no entry for {', '.join(map(repr, missing))} (every "
                          f"parameter needs its gradient: {', '.join(names)})")

    def label(name: str) -> str:
        return f"grads[{name!r}] of {model_name}.loss"

    alone: Optional[list[list[Any]]] = answers  # the first group's answers, then each probe's
    if joint is not None:
        values = [loss_value(group[len(names)]) for group in answers[1:]]
        if joint.agrees(grads, values, tolerance, f"grads of {model_name}.loss, every parameter at once"):
            alone = None
        else:  # each parameter on its own, as if the joint attempt had not been made
            first = _parameter_probes(inputs, step, rng)
            alone = _run_shuffled(remote.session_of(model), rng, [ordinary, *probed_alone(first)])
    first_values = {} if alone is None else _values_by_parameter(first, [loss_value(g[1]) for g in alone[1:]])
    for name in names:
        if name in first_values:
            def evaluate(points: list[np.ndarray], name: str = name) -> list[float]:
                return _probe_values(remote.session_of(model), rng, ordinary, probe(name), points, 1, loss_value)

            compare_gradient(grads[name], inputs[name], evaluate, name=label(name), rng=rng, tolerance=tolerance,
                             sizes=_batch_size(X), input_name=f"params[{name!r}]",
                             first=Measured(first[name], first_values[name]))
        if expected is not None:
            _agrees_with_reference(grads[name], expected[1][name], name=label(name), forward_name=f"{model_name}.loss",
                                   tolerance=tolerance)


def _parameter_probes(inputs: dict[str, np.ndarray], step: float, rng: np.random.Generator) -> dict[str, Probes]:
    return {name: Probes.along(x, mode_for_size(x.size, MODEL_ELEMENTWISE_MAX_SIZE), step, rng)
            for name, x in inputs.items()}


def _values_by_parameter(probes: dict[str, Probes], values: list[float]) -> dict[str, list[float]]:
    """The values of the probes of every parameter, in order, split by parameter."""
    remaining = iter(values)
    return {name: [next(remaining) for _ in p.points()] for name, p in probes.items()}


@dataclass(frozen=True)
class _JointProbes:
    """Directions that move every parameter of a model at once: the parameters, flattened and joined
    in order, are one input, and a direction's slope must equal the sum over the parameters of
    <gradient, the parameter's part of the direction>. A wrong gradient anywhere changes that sum
    along almost every direction, unless another exactly cancels it, which random directions rule out."""

    probes: Probes
    shapes: dict[str, tuple[int, ...]]

    @classmethod
    def along(cls, inputs: dict[str, np.ndarray], step: float, rng: np.random.Generator) -> "_JointProbes":
        joined = np.concatenate([x.ravel() for x in inputs.values()])
        probes = Probes.along(joined, Mode.DIRECTIONAL, step, rng)
        return cls(probes, {name: x.shape for name, x in inputs.items()})

    def split(self, joined: np.ndarray) -> dict[str, np.ndarray]:
        parts, offset = {}, 0
        for name, shape in self.shapes.items():
            size = int(np.prod(shape))
            parts[name] = joined[offset:offset + size].reshape(shape)
            offset += size
        return parts

    def group(self, model: RemoteObject, params: dict[str, Any], point: np.ndarray, ordinary: Group) -> Group:
        """Set every parameter to its part of `point`, evaluate, set them back."""
        moved = self.split(point)
        return [*(("setitem", model.params, name, like(params[name], moved[name])) for name in params),
                *ordinary,
                *(("setitem", model.params, name, value) for name, value in params.items())]

    def agrees(self, grads: dict[str, Any], values: list[float], tolerance: Tolerance, name: str) -> bool:
        """Whether every slope equals the analytic one (within tolerance); False as well where a
        gradient cannot be read as the parameter's shape, which the parameter's own check names."""
        start = time.perf_counter()
        try:
            joined = np.concatenate([_checked_analytic(grads[n], np.empty(shape), n).ravel()
                                     for n, shape in self.shapes.items()])
        except CheckFailed:
            return False
        passed = _compare(self.probes.project(joined), self.probes.slopes(values), tolerance).passed
        _record(lambda: Measurement(name, Mode.DIRECTIONAL, int(joined.size), len(values), 1,
                                    time.perf_counter() - start, passed))
        return passed
