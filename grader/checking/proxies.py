"""What a check does with the student's and the reference's objects besides calling, assigning and
indexing them. Both kinds of object give every attribute name to the code they stand for (a student's
model may well have a `fetch` method or a `_modules` attribute), so these operations are functions
that take the object, not methods of it.

    record = inspect_call(student.layers.batchnorm_forward, x, gamma, beta, bn_param)
    params = fetch(model.params)
    set_params(model, {"W1": w})
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from grader.sandbox.remote import CallRecord, RemoteObject, call_keeping as _call_keeping


def inspect_call(function: Any, *args: Any, **kwargs: Any) -> CallRecord:
    """Calls `function` and returns its result with the arguments as the call left them, so that
    in-place changes show."""
    return type(function).__inspect_call__(function, *args, **kwargs)


def fetch(path: Any, *, keep: bool = False) -> Any:
    """The value at `path`: plain data, or an object to pass back for what cannot cross. `keep` (the
    student's side only) leaves even plain data in the worker, as a handle."""
    if keep:
        if not isinstance(path, RemoteObject):
            raise TypeError("only the student's objects can be kept in the worker")
        return type(path).__fetch__(path, keep=True)
    return type(path).__fetch__(path)


def set_params(model: Any, values: Mapping[str, Any]) -> None:
    """Sets each of `values` in `model.params` by its name (a student's model or the reference's)."""
    for name, value in values.items():
        model.params[name] = value


def call_keeping(function: RemoteObject, *args: Any, items: Sequence[int], **kwargs: Any) -> Any:
    """Calls a student's function and leaves its result's items at `items` in the worker, as
    handles: what must stay as it was made (parameters with their autograd state, a layer's cache)
    goes back to the next call untouched."""
    if not isinstance(function, RemoteObject):
        raise TypeError("call_keeping is for the student's functions (the reference runs in the grader)")
    return _call_keeping(function, *args, items=items, **kwargs)
