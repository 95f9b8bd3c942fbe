"""A gradient computed, not measured: a backward pass (or a loss's gradient) on a large input must
cost about what a forward pass costs, as backpropagation does.

The other gradient checks compare values, and a gradient measured by finite differences of the
submission's own forward pass (the course's own `eval_numerical_gradient_array`, called from a
backward pass that kept its inputs in the cache) has the right values. What it cannot have is the
cost: without the layer's derivative, each of the input's D elements takes its own forward passes,
about 2 D of them, where backpropagation takes the work of one or two. On inputs of 10^4 to 10^5
elements that is minutes against milliseconds, so the limit below leaves slow honest code (a backward
pass written as Python loops over every element takes a few seconds at these sizes on a slow core)
far inside it, and a measured gradient far outside.

The limit is the larger of a floor and a multiple of the forward pass's own time, measured on the
same input in the same worker: code whose forward pass is slow (loops) gets a proportionally larger
limit, and a machine that is slow or busy slows both alike.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from grader.checking.compare import CheckFailed, expect_tuple
from grader.sandbox import remote
from grader.sandbox.errors import WorkerTimeout
from grader.sandbox.remote import RemoteObject

# A backward pass may take this long whatever its forward pass takes, and this many forward passes'
# time where that is longer. A gradient by finite differences needs about 2 D forward passes (D >= 10^4
# at the sizes the checks use); backpropagation a few.
FLOOR_S = 10.0
FORWARD_PASSES = 50


def limit_for(forward_s: float) -> float:
    return max(FLOOR_S, FORWARD_PASSES * forward_s)


def check_backward_cost(forward: RemoteObject, backward: RemoteObject, args: Sequence[Any], *,
                        input_names: str) -> None:
    """`forward(*args) -> (out, cache)` timed, then `backward(out, cache)` given `limit_for` that time:
    a backward pass that does not answer within it fails, saying why. `input_names` names what the
    gradients are of, for the message ("x, w and b"). The inputs cross to the worker once, and nothing
    comes back: the forward pass's own output serves as dout (any upstream gradient of its shape costs
    backpropagation the same), so what is timed is the work, not the copying."""
    forward_name, backward_name = remote.display_name(forward), remote.display_name(backward)
    session = remote.session_of(forward)
    kept = [session.keep(a) if hasattr(a, "shape") else a for a in args]
    started = time.perf_counter()
    out, cache = expect_tuple(remote.call(forward, kept, {}, keep_items=[0, 1]), 2, forward_name)
    forward_s = time.perf_counter() - started
    _within(lambda limit: remote.call(backward, (out, cache), {}, keep=True, timeout_s=limit), limit_for(forward_s),
            f"{backward_name} on {input_names} of {_elements(args):,} elements",
            f"{forward_name} takes {forward_s:.3g} s there")


def check_loss_cost(loss: RemoteObject, args: Sequence[Any], *, input_names: str) -> None:
    """`loss(*args) -> (value, gradient)`: computed within FLOOR_S on a large input (there is no
    forward pass apart to time: the floor alone is the limit)."""
    name = remote.display_name(loss)
    _within(lambda limit: remote.call(loss, list(args), {}, keep=True, timeout_s=limit), FLOOR_S,
            f"{name} on {input_names} of {_elements(args):,} elements", "")


def check_model_cost(model: RemoteObject, X: Any, y: Any, *, name: str, parameters: int) -> None:
    """`model.loss(X)` (the scores: a forward pass) timed, then `model.loss(X, y)` (the loss and the
    gradients of its `parameters` parameters) given `limit_for` that time."""
    started = time.perf_counter()
    remote.call(model.loss, [X], {}, keep=True)
    forward_s = time.perf_counter() - started
    _within(lambda limit: remote.call(model.loss, [X, y], {}, keep=True, timeout_s=limit), limit_for(forward_s),
            f"{name}.loss(X, y), the gradients of its {parameters:,} parameters,",
            f"{name}.loss(X), its scores, takes {forward_s:.3g} s")


def _elements(args: Sequence[Any]) -> int:
    return sum(int(np.prod(np.shape(a))) for a in args if hasattr(a, "shape"))


def _within(call: Any, limit: float, what: str, forward_time: str) -> None:
    try:
        call(limit)
    except WorkerTimeout:
        raise CheckFailed(
            f"{what} did not answer within {limit:.3g} s" + (f" ({forward_time})" if forward_time else "") + ": "
            "a gradient by backpropagation costs about what the forward pass costs, one measured by finite "
            "differences (the forward pass run again for each element, as a numeric gradient check does) "
            "thousands of times more. Compute the gradient from the cache with the layer's derivative") from None
