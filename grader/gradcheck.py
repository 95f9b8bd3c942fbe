"""Numeric-gradient checks: a submission's backward pass against central differences of its own
forward pass, computed in float64 by the grader.

Small inputs are checked element by element (2 forward evaluations per element); large inputs
with a few random directions u (2 evaluations each, whatever the size): the numeric
(f(x + h u) - f(x - h u)) / 2h must match <analytic gradient, u>. All evaluations of one input go
to the worker in one batched request. Tolerances are absolute numbers, never scaled by size:
|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) for every compared number.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from grader.compare import CheckFailed, as_array, expect_tuple
from grader.remote import RemoteObject, run_batch

ELEMENTWISE_MAX_SIZE = 64
DIRECTIONAL_PROBES = 4


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-5
    atol: float = 1e-7
    step: float = 1e-6


DEFAULT_TOLERANCE = Tolerance()

# f(list of perturbed copies of one input) -> one scalar per copy, in one round trip.
BatchedScalar = Callable[[list[np.ndarray]], list[float]]


def _probes(x: np.ndarray, rng: np.random.Generator, step: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if x.size <= ELEMENTWISE_MAX_SIZE:
        directions = []
        for i in range(x.size):
            u = np.zeros_like(x)
            u.flat[i] = 1.0
            directions.append(u)
    else:
        directions = [rng.standard_normal(x.shape) for _ in range(DIRECTIONAL_PROBES)]
    points = []
    for u in directions:
        points.append(x + step * u)
        points.append(x - step * u)
    return directions, points


def compare_gradient(analytic: Any, x: np.ndarray, evaluate: BatchedScalar, *, name: str,
                     rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """Fails with the worst disagreement between `analytic` and the numeric gradient of
    `evaluate` at `x`."""
    g = as_array(analytic, name)
    if g.shape != x.shape:
        raise CheckFailed(f"{name}: expected shape {x.shape} (the input's), got {g.shape}")
    g = g.astype(np.float64)
    if not np.all(np.isfinite(g)):
        raise CheckFailed(f"{name}: {int((~np.isfinite(g)).sum())} element(s) are NaN or infinite")
    # A finite-difference step that straddles a kink (a ReLU at 0, a max-pool tie) gives a wrong
    # numeric slope for correct code. That needs an input within a step of the kink, so a second
    # attempt with a step ten times smaller (and new directions) almost never meets one, while a
    # wrong analytic gradient disagrees at every step.
    for step in (tolerance.step, tolerance.step / 10):
        directions, points = _probes(x, rng, step)
        values = np.asarray(evaluate(points), dtype=np.float64)
        numeric = (values[0::2] - values[1::2]) / (2 * step)
        analytic_values = np.array([np.sum(g * u) for u in directions])
        excess = np.abs(analytic_values - numeric) - (
            tolerance.atol + tolerance.rtol * np.maximum(np.abs(analytic_values), np.abs(numeric)))
        if np.all(excess <= 0):
            return
    worst = int(np.argmax(excess))
    a, n = analytic_values[worst], numeric[worst]
    relative = abs(a - n) / max(abs(a) + abs(n), 1e-300)
    bounds = f"tolerance rtol={tolerance.rtol:g}, atol={tolerance.atol:g}"
    if x.size <= ELEMENTWISE_MAX_SIZE:
        index = [int(i) for i in np.unravel_index(worst, x.shape)] if x.shape else []
        wrong = int((excess > 0).sum())
        message = (f"{name}: {wrong} of {x.size} elements disagree with the numeric gradient; worst at "
                   f"{index}: analytic {a:.6g}, numeric {n:.6g} (relative error {relative:.2e}, {bounds})")
        detail = "numeric gradient:\n" + np.array2string(numeric.reshape(x.shape), precision=5) + \
                 "\nanalytic gradient:\n" + np.array2string(g, precision=5)
    else:
        message = (f"{name}: disagrees with the numeric gradient along {int((excess > 0).sum())} of "
                   f"{len(directions)} random directions; worst: analytic {a:.6g}, numeric {n:.6g} "
                   f"(relative error {relative:.2e}, {bounds})")
        detail = ""
    raise CheckFailed(message, detail)


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


def check_layer_backward(forward: RemoteObject, backward: RemoteObject, args: Sequence[Any], *,
                         gradients: Sequence[tuple[str, int]], rng: np.random.Generator,
                         tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`forward(*args) -> (out, cache)`, `backward(dout, cache) -> grads`; `gradients` names each
    returned gradient and the argument it belongs to, in the order backward returns them, e.g.
    [("dx", 0), ("dw", 1), ("db", 2)] (one entry when backward returns a single array)."""
    forward_name, backward_name = forward._display_name(), backward._display_name()
    # The cache stays in the worker: it may hold what cannot cross (an autograd graph, an object).
    out, cache = expect_tuple(forward.keeping(*args, items=[1]), 2, forward_name)
    dout = rng.standard_normal(as_array(out, f"out of {forward_name}").shape)
    returned = backward(like(out, dout), cache)
    if len(gradients) == 1 and not isinstance(returned, (tuple, list)):
        returned = (returned,)
    returned = expect_tuple(returned, len(gradients), backward_name)
    for (grad_name, arg_index), analytic in zip(gradients, returned):
        def evaluate(points: list[np.ndarray], arg_index: int = arg_index) -> list[float]:
            original = args[arg_index]
            calls = [([*args[:arg_index], like(original, p), *args[arg_index + 1:]], {}) for p in points]
            outs = forward.many(calls, select=[0])
            return [_dot(o, dout, f"out of {forward_name}") for o in outs]

        compare_gradient(analytic, as_array(args[arg_index], "input").astype(np.float64), evaluate,
                         name=f"{grad_name} of {backward_name}", rng=rng, tolerance=tolerance)


def check_loss_gradient(loss_function: RemoteObject, x: Any, y: Any, *, name: str,
                        rng: np.random.Generator, tolerance: Tolerance = DEFAULT_TOLERANCE) -> None:
    """`loss_function(x, y) -> (loss, dx)`: dx against the numeric gradient of loss."""
    loss, dx = expect_tuple(loss_function(x, y), 2, name)

    def evaluate(points: list[np.ndarray]) -> list[float]:
        losses = loss_function.many([((like(x, p), y), {}) for p in points], select=[0])
        return [float(as_array(v, f"loss of {name}")) for v in losses]

    compare_gradient(dx, as_array(x, "x").astype(np.float64), evaluate, name=f"dx of {name}", rng=rng,
                     tolerance=tolerance)


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
                         name=f"grads[{name!r}] of {model_name}.loss", rng=rng, tolerance=tolerance)
