"""Checks that several assignments share: a forward pass against the reference, optimizer updates
over several steps, and what dropout must do where its mask is the submission's to draw. The
assignments' check files call these with their own functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from grader.checking.compare import (CheckFailed, OtherConvention, as_array, assert_close, assert_close_naming_conventions,
                            assert_true, assert_unchanged, expect_tuple, type_name)
from grader.checking.gradcheck import LayerExpectation, check_model_gradients, like
from grader.checking.optim_conventions import name_other_convention
from grader.checking.proxies import inspect_call, set_params
from grader.oracle.reference import MissingFixture
from grader.sandbox.remote import display_name


def is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__name__ == "Tensor"


def forward_matches(student_fn: Any, reference_fn: Any, args: Sequence[Any], name: str, *, rtol: float = 1e-6,
                    atol: float = 1e-8, check_dtype: bool = False,
                    kept_by_caller: Optional[Mapping[int, str]] = None) -> Any:
    """`fn(*args) -> (out, cache)`: out equal to the reference's. `kept_by_caller` names the arguments
    (by index) that the caller keeps and uses again, a model's parameters: changing one of them in place
    changes the model, so it fails, saying so. Changing any other argument in place breaks nothing the
    forward check can see (whether the backward pass still gets what it needs is its own check's
    business). None: every array argument must come back unchanged."""
    record = inspect_call(student_fn, *args)
    out, _ = expect_tuple(record.result, 2, name)
    expected, _ = reference_fn(*args)
    assert_close(out, expected, name=f"out of {name}", rtol=rtol, atol=atol, check_dtype=check_dtype)
    for index, (before, after) in enumerate(zip(args, record.args)):
        if not is_array(before):
            continue
        if kept_by_caller is None:
            assert_unchanged(as_array(after, name) if is_array(after) else after, as_array(before, name),
                             name=f"argument {index + 1} of {name}")
        elif index in kept_by_caller and changed_in_place(before, after):
            parameter = kept_by_caller[index]
            raise CheckFailed(f"{name} changed {parameter} in place: {parameter} belongs to the caller (a model keeps "
                              f"its parameters there), so every forward pass would change the model; compute with "
                              f"a new array instead")
    return out


def changed_in_place(before: Any, after: Any) -> bool:
    """Whether an array argument came back from the worker holding other values than were sent."""
    if not is_array(after):
        return True
    a, b = as_array(after, "argument"), as_array(before, "argument")
    return a.shape != b.shape or not np.array_equal(a, b, equal_nan=True)


def _copy(value: Any) -> Any:
    return value.clone() if type(value).__name__ == "Tensor" else np.array(value, copy=True)


def compare_optimizer_steps(student_rule: Any, reference_rule: Any, rng: np.random.Generator, w: Any, dw: Any,
                            config: dict, state_keys: Sequence[str], name: str, steps: int = 3) -> None:
    """Several updates in a row, each fed the config the previous one returned: next_w and every piece
    of state against the reference, the state kept in the dict passed in. Only what the rule returns
    and the state it keeps are judged: a caller (the Solver, torch.optim) uses next_w and never w or dw
    again, so updating w in place and returning it, or scribbling on dw, breaks nothing. Each side is
    fed its own copies, so that what one does to its arguments cannot change what the other is fed.
    A rule that follows another course's convention (grader.checking.optim_conventions) fails naming it."""
    try:
        _compare_steps(student_rule, reference_rule, rng, w, dw, config, state_keys, name, steps)
    except CheckFailed as failure:
        name_other_convention(failure, student_rule, name, w, dw, config)
        raise


def _compare_steps(student_rule: Any, reference_rule: Any, rng: np.random.Generator, w: Any, dw: Any,
                   config: dict, state_keys: Sequence[str], name: str, steps: int) -> None:
    student_config, reference_config = dict(config), dict(config)
    student_w, reference_w = w, w
    for step in range(1, steps + 1):
        record = inspect_call(student_rule, _copy(student_w), _copy(dw), student_config)
        next_w, returned_config = expect_tuple(record.result, 2, name)
        expected_w, expected_config = reference_rule(_copy(reference_w), _copy(dw), reference_config)
        assert_close(next_w, expected_w, name=f"next_w of {name} at step {step}")
        if not isinstance(returned_config, dict):
            raise CheckFailed(f"{name}: the second value returned must be the config dict, got "
                              f"{type_name(returned_config)}")
        for key in state_keys:
            if key not in returned_config:
                raise CheckFailed(f"{name}: config[{key!r}] is missing after step {step}; keep the optimizer's "
                                  "state in config")
            assert_close(returned_config[key], expected_config[key], name=f"config[{key!r}] of {name} at step {step}")
            passed_in = record.args[2] if isinstance(record.args[2], dict) else {}
            if key not in passed_in:
                raise CheckFailed(f"{name}: config[{key!r}] was not stored in the config dict that was passed in; "
                                  "update that dict in place")
        student_w, student_config = next_w, returned_config
        reference_w, reference_config = expected_w, expected_config
        dw = like(dw, rng.standard_normal(as_array(dw, "dw").shape))


@dataclass(frozen=True)
class InvertedDropout:
    """Dropout in training mode, for `check_layer_backward`: the mask is the submission's to draw, so
    the reference's behaviour is stated for the mask its forward pass drew: each unit of the output
    is 0 (dropped) or x / keep (kept), some unit is kept, and the gradient is dout * out / x (dout
    where a unit was kept, scaled by 1 / keep). `x` must have no zeros."""

    keep: float  # the probability of keeping a unit
    # What to tell a submission that reads the probability the other way round (kept units scaled by
    # 1 / (1 - keep)), naming both readings; "" where no message is given.
    other_reading: str = ""

    def expect(self, args: Sequence[Any], forward_name: str) -> LayerExpectation:
        x = as_array(args[0], "x").astype(np.float64)

        def check_output(out: Any) -> None:
            values = as_array(out, f"out of {forward_name}").astype(np.float64)
            if values.shape != x.shape:
                raise CheckFailed(f"out of {forward_name}: expected shape {x.shape} (the input's), got {values.shape}")
            kept = ~np.isclose(values, 0.0, rtol=0, atol=1e-12)
            others = ([OtherConvention(np.where(kept, x / (1 - self.keep), 0.0), self.other_reading)]
                      if self.other_reading and self.keep != 0.5 else [])
            assert_close_naming_conventions(
                values, np.where(kept, x / self.keep, 0.0), others=others,
                name=f"out of {forward_name} (each unit 0, or x / {self.keep:g} where it is kept)")
            if not kept.any():
                raise CheckFailed(f"out of {forward_name}: no unit of {x.size} is kept (each is kept with "
                                  f"probability {self.keep:g})")

        def gradients(dout: np.ndarray, out: Any) -> Sequence[Any]:
            return (like(args[0], dout * as_array(out, "out").astype(np.float64) / x),)

        return LayerExpectation(x.shape, check_output, gradients)


def _same_units_whatever_the_seed(name: str) -> str:
    return (f"{name} keeps the same units whatever dropout_param['seed'] is: each unit is kept or dropped at "
            "random, drawn after seeding the random generator with the seed")


def check_masks_are_drawn(kept: Callable[[int], Any], name: str, seeds: int = 12) -> None:
    """Dropout's masks are drawn at random: `kept(seed)` (the units a train-mode forward pass keeps,
    seeded so, with units kept with probability one half) differs from seed to seed, and over the
    seeds each unit is kept in some draws and dropped in others. A fixed pattern (the same units
    every time) keeps the right fraction and scales right, and is no dropout."""
    masks = np.array([np.asarray(as_array(kept(seed), f"mask of {name}"), dtype=bool).ravel() for seed in range(seeds)])
    if (masks == masks[0]).all():
        raise CheckFailed(_same_units_whatever_the_seed(name))
    frequency = masks.mean(axis=0)
    fixed = float(np.mean((frequency == 0) | (frequency == 1)))
    # A unit kept with probability 1/2 is kept in all 12 draws or in none with probability 4.9e-4: of
    # a thousand units, half a unit on average, far below the fifth that fails.
    if fixed > 0.2:
        raise CheckFailed(f"{name} keeps {fixed:.0%} of the units in all of {seeds} differently seeded draws or in "
                          "none: each unit is kept or dropped at random, independently of its place")


def draws_reference_masks(student_forward: Any, reference_forward: Any, shapes: Sequence[tuple[int, ...]],
                          dropout_param: dict, keep: float, template: Any, name: str) -> tuple[bool, list[np.ndarray]]:
    """Whether a dropout forward pass, seeded by `dropout_param` as a model seeds it, keeps the units the
    reference's keeps for each shape (a model built on it then computes the reference's loss), and the
    factors it multiplied a tensor of ones by (0, or 1 / keep), one array for each shape; fails where it
    is no inverted dropout at all (a kept unit not scaled by 1 / keep). `template` gives the array type
    of the inputs (an ndarray or a tensor)."""
    same, factors = True, []
    for shape in shapes:
        ones = like(template, np.ones(shape))
        out, _ = expect_tuple(student_forward(ones, dict(dropout_param)), 2, name)
        expected, _ = expect_tuple(reference_forward(ones, dict(dropout_param)), 2, f"the reference's {name}")
        try:
            InvertedDropout(keep).expect((ones,), name).check_output(out)
        except CheckFailed as failure:
            raise CheckFailed(f"{failure.message}; the model's dropout layers use {name}, so fix it first",
                              failure.detail) from None
        factors.append(as_array(out, name).astype(np.float64))
        same = same and np.array_equal(factors[-1] != 0, as_array(expected, name) != 0)
    if not same and "seed" in dropout_param:
        # Other masks than the reference's are as right only where they are drawn at random.
        ones = like(template, np.ones(shapes[0]))
        other, _ = expect_tuple(student_forward(ones, {**dropout_param, "seed": dropout_param["seed"] + 1}), 2, name)
        if np.array_equal(as_array(other, name) != 0, factors[0] != 0) and factors[0].size >= 16:
            raise CheckFailed(f"{_same_units_whatever_the_seed(name)}; the model's dropout layers use it, so fix "
                              "it first")
    return same, factors


def check_dropout_network_gradients(network: Callable[..., Any], student: Any, reference: Any,
                                    params: dict[str, Any], X: Any, y: Any, *, dropout: tuple[Any, Any],
                                    dropout_param: dict, keep: float, hidden_shapes: Sequence[tuple[int, ...]],
                                    name: str, name_without_dropout: str, rng: np.random.Generator) -> None:
    """A fully connected network with dropout layers, `network(source, with_dropout, reg=None)` (None: the
    check's own strength of regularization), whose masks are the submission's to draw. Where its dropout
    forward pass (`dropout`: the submission's and the reference's) keeps the units the reference's
    keeps, the network is compared with the reference's; where it draws other masks (another way of
    drawing them is as right), the same network without dropout is, the one with dropout must apply the
    masks its layer draws (see `_applies_its_masks`), and its gradients are those of its own loss."""
    layer_name = display_name(dropout[0])
    same_masks, factors = draws_reference_masks(*dropout, hidden_shapes, dropout_param, keep, X, layer_name)
    check_model_gradients(network(student, False), X, y, params=params, reference_model=network(reference, False),
                          model_name=name_without_dropout, rng=rng)
    if not same_masks:
        _applies_its_masks(network, student, reference, params, X, y, factors, name, layer_name)
    else:
        _uses_the_seed_given(network, student, reference, params, X, y, name, layer_name)
    check_model_gradients(network(student, True), X, y, params=params,
                          reference_model=network(reference, True) if same_masks else None, model_name=name, rng=rng)


def _network_loss(model: Any, values: dict[str, Any], inputs: Any, labels: Any, name: str) -> float:
    set_params(model, values)
    loss, _ = expect_tuple(model.loss(inputs, labels), 2, f"{name}.loss(X, y)")
    return float(as_array(loss, f"loss of {name}"))


def _uses_the_seed_given(network: Callable[..., Any], student: Any, reference: Any, params: dict[str, Any], X: Any,
                         y: Any, name: str, layer_name: str) -> None:
    """Where the dropout layer draws the reference's masks for the model's seed, a network that
    computes another loss than the reference's (which the gradient check would report as a wrong
    loss) is told what is left to differ: where its layers get their seed, or where dropout is applied."""
    actual = _network_loss(network(student, True, reg=0.0), params, X, y, name)
    try:
        expected = _network_loss(network(reference, True, reg=0.0), params, X, y, name)
    except MissingFixture:  # public mode: the gradient check says what it can
        return
    if not np.isclose(actual, expected, rtol=1e-6, atol=1e-9):
        raise CheckFailed(
            f"the loss of {name} (reg=0) is {actual:.6g}, expected {expected:.6g}: the network without dropout agrees "
            f"and {layer_name} keeps the reference's units for the model's seed, so the network gives its dropout "
            "layers other masks: the docstring has every dropout layer use the seed given (one dropout_param for "
            "all of them, not a seed of its own per layer such as seed + i), in train mode, after each hidden ReLU")


def _applies_its_masks(network: Callable[..., Any], student: Any, reference: Any, params: dict[str, Any], X: Any,
                       y: Any, factors: Sequence[np.ndarray], name: str, layer_name: str) -> None:
    """The loss of the network with dropout, without regularization, is the mean over the examples of
    the reference network's loss without dropout, each example with its own masks folded into the
    parameters: a dropout factor m >= 0 after relu(z) is relu(z * m), so hidden layer k's weight columns
    and biases are scaled by the factors its mask gives that example. A network that ignores its
    dropout layers, or applies them elsewhere, computes another loss. Public grading has no reference
    for masks it could not record: there the network must at least not compute its loss without
    dropout."""
    def loss_of(model: Any, values: dict[str, Any], inputs: Any, labels: Any) -> float:
        return _network_loss(model, values, inputs, labels, name)

    actual = loss_of(network(student, True, reg=0.0), params, X, y)
    arrays = {key: as_array(value, key) for key, value in params.items()}
    examples = []
    for i in range(len(factors[0])):
        folded = dict(arrays)
        for layer, factor in enumerate(factors, start=1):
            folded[f"W{layer}"] = arrays[f"W{layer}"] * factor[i]
            folded[f"b{layer}"] = arrays[f"b{layer}"] * factor[i]
        examples.append(({key: like(params[key], value) for key, value in folded.items()}, X[i:i + 1], y[i:i + 1]))
    try:  # public mode: even building the reference's network may not be recorded
        reference_network = network(reference, False, reg=0.0)
        expected = float(np.mean([loss_of(reference_network, *example) for example in examples]))
    except MissingFixture:
        without = loss_of(network(student, False, reg=0.0), params, X, y)
        assert_true(not np.isclose(actual, without, rtol=1e-9, atol=0.0),
                    f"the loss of {name} is its loss without dropout: its dropout layers change nothing")
        return
    assert_close(actual, expected, rtol=1e-6, atol=1e-9,
                 name=f"loss of {name} (reg=0), whose {layer_name} keeps other units than the reference's (which is "
                      "as right): the loss of the network with the units its own masks keep, scaled by 1 / keep, "
                      "after each hidden ReLU")
