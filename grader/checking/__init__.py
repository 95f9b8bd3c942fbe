"""How a check compares a student's answer with the truth: comparisons and their messages, numeric
gradient checks and their diagnosis, test inputs, and the checks several assignments share.

What a check author imports, all from here (`from grader.checking import assert_close, fetch`):
- comparisons that fail with a message for the student: `assert_close`, `assert_true`,
  `assert_unchanged`, `expect_tuple`, `as_array`; `CheckFailed` and `OtherConvention` (a result that
  follows another reasonable convention, named in the message);
- gradient checks: `check_layer_backward`, `check_loss_gradient`, `check_model_gradients` with
  `ReferenceLayer`, and `parameter_names_differ`; `check_backward_cost`, `check_loss_cost` and
  `check_model_cost` (a gradient computed by backpropagation, not measured by finite differences) with
  `LargeExpectation`, `reference_expectation` and `answers_live` (whether the reference runs here);
- inputs that keep a check away from kinks and ties: `away_from_zero`, `distinct`, `hinge_safe_scores`;
- what a check does with the `student` and `reference` objects besides calling them: `fetch`,
  `inspect_call`, `call_keeping`, `set_params`;
- checks shared by assignments: `compare_optimizer_steps` with `name_other_convention` (an update rule
  written as other course materials write it), `forward_matches`, `changed_in_place`,
  `check_dropout_network_gradients`, `InvertedDropout`;
- `NonContiguous` (an argument sent as a non-contiguous array) and `StudentException` (the student's
  code raised).
"""

from grader.boundary.wire import NonContiguous
from grader.checking.optim_conventions import name_other_convention
from grader.checking.backward_cost import (LargeExpectation, check_backward_cost, check_loss_cost,
                                           check_model_cost, reference_expectation)
from grader.checking.compare import (CheckFailed, OtherConvention, as_array, assert_close,
                                     assert_close_naming_conventions, assert_true, assert_unchanged, expect_tuple,
                                     type_name)
from grader.checking.gradcheck import (ReferenceLayer, check_layer_backward, check_loss_gradient,
                                       check_model_gradients, parameter_names_differ)
from grader.checking.inputs import away_from_zero, distinct, hinge_safe_scores
from grader.checking.proxies import call_keeping, fetch, inspect_call, set_params
from grader.checking.shared_checks import (InvertedDropout, changed_in_place, check_dropout_network_gradients,
                                           check_masks_are_drawn, compare_optimizer_steps, forward_matches)
from grader.oracle.reference import answers_live
from grader.sandbox.errors import StudentException

__all__ = [
    "CheckFailed", "OtherConvention", "as_array", "assert_close", "assert_close_naming_conventions", "assert_true",
    "assert_unchanged", "expect_tuple", "type_name",
    "answers_live", "LargeExpectation", "check_backward_cost", "check_loss_cost", "check_model_cost",
    "reference_expectation",
    "ReferenceLayer", "check_layer_backward", "check_loss_gradient", "check_model_gradients", "parameter_names_differ",
    "away_from_zero", "distinct", "hinge_safe_scores",
    "call_keeping", "fetch", "inspect_call", "set_params",
    "InvertedDropout", "changed_in_place", "check_dropout_network_gradients", "check_masks_are_drawn",
    "compare_optimizer_steps", "name_other_convention",
    "forward_matches",
    "NonContiguous", "StudentException",
]
