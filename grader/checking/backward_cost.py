"""A gradient computed, not measured: a backward pass (or a loss's gradient) on a large input must
cost about what a forward pass costs, as backpropagation does.

The other gradient checks compare values, and a gradient measured by finite differences of the
submission's own forward pass (the course's own `eval_numerical_gradient_array`, called from a
backward pass that kept its inputs in the cache) has the right values. What it cannot have is the
cost: without the layer's derivative, each of the input's D elements takes its own forward passes,
about 2 D of them, where backpropagation takes the work of one or two. On inputs of 10^4 to 4 x 10^5
elements that is minutes against milliseconds, so the limit below leaves slow honest code (a backward
pass written as Python loops over every element takes a few seconds at these sizes on a slow core)
far inside it, and a measured gradient far outside.

The limit is a fixed LIMIT_S, not a multiple of the submission's own forward pass's time: that time
is the submission's to choose (a forward pass can sleep when the grader calls it and run fast when
its own backward pass does), and every second it bought went to a measured gradient. The forward
pass is still timed, for the message. `benchmarks/bench_measured_gradients.py` shows, per check, what
a measured gradient costs against LIMIT_S, element by element and in groups.

What time cannot tell: elements that share no output can be measured together (all of ReLU's in two
forward passes, a convolution's by its footprint), and a layer whose Jacobian is symmetric
(normalization with gamma = 1) gives its backward product as one directional derivative. Those are
numerical differentiation that costs what backpropagation costs; the source review
(grader.engine.source_review) notes the plain forms of it for a person to read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from grader.checking.compare import CheckFailed, as_array, assert_close, expect_tuple
from grader.checking.gradcheck import forward_agrees, like
from grader.checking.proxies import fetch, set_params
from grader.oracle.reference import answers_live
from grader.sandbox import remote
from grader.sandbox.errors import WorkerTimeout
from grader.sandbox.remote import RemoteObject

# What a backward pass, a loss's gradient or a model's gradients may take on the checks' large inputs.
# A gradient by finite differences needs about 2 D forward passes (D >= 10^4 at these sizes): minutes;
# backpropagation, even as Python loops over every element, a few seconds at most on a slow core.
LIMIT_S = 10.0


@dataclass(frozen=True)
class LargeExpectation:
    """What the gradients must be on the large input, where they are known (official grading, with the
    reference run here): the upstream gradient sent, and the gradients for it, given as values or as a
    function of the forward pass's output (dropout: of the submission's own mask)."""

    dout: np.ndarray
    gradients: Union[Sequence[np.ndarray], Callable[[Any], Sequence[np.ndarray]]]
    out: Optional[np.ndarray] = None   # the forward pass's output there, where it is the reference's


def reference_expectation(reference_forward: Any, reference_backward: Any, args: Sequence[Any],
                          rng: np.random.Generator) -> Optional[LargeExpectation]:
    """The reference's gradients for a random dout at `args`, where the reference runs here (never
    recorded into, nor replayed from, the public fixtures: they would hold megabytes for one check)."""
    if not answers_live(reference_forward):
        return None
    out, cache = expect_tuple(reference_forward(*args), 2, "the reference's forward pass")
    dout = rng.standard_normal(as_array(out, "the reference's output").shape)
    grads = reference_backward(like(args[0], dout), cache)
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    return LargeExpectation(dout, [as_array(g, "the reference's gradient") for g in grads],
                            as_array(out, "the reference's output"))


def check_backward_cost(forward: RemoteObject, backward: RemoteObject, args: Sequence[Any], *,
                        input_names: str, expected: Optional[LargeExpectation] = None) -> None:
    """`forward(*args) -> (out, cache)` timed (for the message), then `backward(dout, cache)` given LIMIT_S:
    a backward pass that does not answer within it fails, saying why; where `expected` is known, its
    gradients must be right too (a backward pass that answers fast on large inputs only by answering
    anything is no backward pass either). `input_names` names what the gradients are of, in the order
    backward returns them ("x, w and b": dx, dw, db). The inputs cross to the worker once; without `expected` nothing comes back: the
    forward pass's own output serves as dout, so what is timed is the work, not the copying."""
    forward_name, backward_name = remote.display_name(forward), remote.display_name(backward)
    session = remote.session_of(forward)
    kept = [session.keep(a) if hasattr(a, "shape") else a for a in args]
    started = time.perf_counter()
    out, cache = expect_tuple(remote.call(forward, kept, {}, keep_items=[0, 1]), 2, forward_name)
    forward_s = time.perf_counter() - started
    what = f"{backward_name} on {input_names} of {_elements(args):,} elements"
    if expected is None:
        _within(lambda limit: remote.call(backward, (out, cache), {}, keep=True, timeout_s=limit),
                LIMIT_S, what, f"{forward_name} takes {forward_s:.3g} s there")
        return
    if expected.out is not None:
        # As the other gradient checks: a backward pass is graded only where its forward pass is right
        # (a wrong cache would otherwise make it raise here, hiding the forward pass's own message).
        forward_agrees(lambda: assert_close(fetch(out), expected.out, name=f"out of {forward_name}"), forward_name,
                       backward_name, graded_alone=True)
    dout = like(args[0], expected.dout)
    returned = _within(lambda limit: remote.call(backward, (dout, cache), {}, timeout_s=limit), LIMIT_S,
                       what, f"{forward_name} takes {forward_s:.3g} s there")
    returned = returned if isinstance(returned, (tuple, list)) else (returned,)
    gradient_names = [f"d{name.strip()}" for name in input_names.replace(" and ", ", ").split(",")]
    grads = expect_tuple(returned, len(gradient_names), backward_name)
    wanted = expected.gradients(fetch(out)) if callable(expected.gradients) else expected.gradients
    for name, got, value in zip(gradient_names, grads, wanted):
        assert_close(got, value, name=f"{name} of {backward_name} on the large input of this check ({input_names} "
                                      f"of {_elements(args):,} elements)")


def check_loss_cost(loss: RemoteObject, args: Sequence[Any], *, input_names: str,
                    expected: Optional[tuple[Any, Any]] = None) -> None:
    """`loss(*args) -> (value, gradient)`: computed within LIMIT_S on a large input, and equal to
    `expected` (the reference's (loss, dx) where it runs here)."""
    name = remote.display_name(loss)
    what = f"{name} on {input_names} of {_elements(args):,} elements"
    answer = _within(lambda limit: remote.call(loss, list(args), {}, keep=expected is None, timeout_s=limit),
                     LIMIT_S, what, "")
    if expected is not None:
        value, dx = expect_tuple(answer, 2, name)
        assert_close(value, expected[0], name=f"loss of {what}")
        assert_close(dx, expected[1], name=f"dx of {what}")


def check_model_cost(model: RemoteObject, X: Any, y: Any, *, name: str, parameters: int,
                     rng: np.random.Generator, reference_model: Any = None) -> None:
    """The model's parameters set to values the grader draws, then `model.loss(X)` (the scores: a
    forward pass) timed for the message and `model.loss(X, y)` (the loss and the gradients of its
    `parameters` parameters) given LIMIT_S; where the reference runs here, `reference_model` given the
    same values computes the loss and gradients it must return. The values are the grader's, never read
    back from the model: one that changes its own parameters as it runs (zeros, whose gradients it
    knows without measuring) answers for parameters other than those it was given."""
    live = reference_model is not None and answers_live(reference_model)
    current = fetch(model.params)
    if not isinstance(current, dict):
        raise CheckFailed(f"{name}.params of the large model of this check: expected a dict, got {type(current).__name__}")
    names = sorted(fetch(reference_model.params)) if live else sorted(current)
    if set(names) - set(current):
        # The model's other checks grade its names on small models; here, names that only a large model
        # lacks would otherwise spare its gradients the comparison.
        raise CheckFailed(f"{name}.params of the large model of this check has no entry for "
                          f"{', '.join(map(repr, sorted(set(names) - set(current))))}")
    values = {key: like(current[key], 0.05 * rng.standard_normal(np.shape(current[key]))) for key in names}
    set_params(model, values)
    started = time.perf_counter()
    remote.call(model.loss, [X], {}, keep=True)
    forward_s = time.perf_counter() - started
    what = f"{name}.loss(X, y), the gradients of its {parameters:,} parameters,"
    answer = _within(lambda limit: remote.call(model.loss, [X, y], {}, keep=not live, timeout_s=limit),
                     LIMIT_S, what, f"{name}.loss(X), its scores, takes {forward_s:.3g} s")
    if not live:
        return
    set_params(reference_model, values)
    expected_loss, expected_grads = expect_tuple(reference_model.loss(X, y), 2, "the reference's loss")
    loss, grads = expect_tuple(answer, 2, f"{name}.loss(X, y)")
    assert_close(loss, expected_loss, name=f"loss of {what}")
    if not isinstance(grads, dict):
        raise CheckFailed(f"{name}.loss(X, y): expected grads as a dict, got {type(grads).__name__}")
    for key in names:
        if key not in grads:
            raise CheckFailed(f"{name}.loss(X, y): grads has no entry for {key!r}")
        assert_close(grads[key], expected_grads[key], name=f"grads[{key!r}] of {what}")


def _elements(args: Sequence[Any]) -> int:
    return sum(int(np.prod(np.shape(a))) for a in args if hasattr(a, "shape"))


def _within(call: Any, limit: float, what: str, forward_time: str) -> Any:
    try:
        return call(limit)
    except WorkerTimeout:
        raise CheckFailed(
            f"{what} did not answer within {limit:.3g} s" + (f" ({forward_time})" if forward_time else "") + ": "
            "a gradient by backpropagation costs about what the forward pass costs, one measured by finite "
            "differences (the forward pass run again for each element, as a numeric gradient check does) "
            "thousands of times more. Compute the gradient from the cache with the layer's derivative") from None
