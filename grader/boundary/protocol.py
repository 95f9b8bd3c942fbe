"""The requests the grader sends a worker and the replies it gets, as types both sides share.

A request is one `Operation` in an `Envelope`; the worker answers each with one `Reply`: a value or
an `ErrorReport`. On the pipe they travel as the JSON header of a wire message (`to_json`), with
arrays and tensors in the message's buffers (grader.boundary.wire); values inside operations and
replies are already wire-encoded nodes.

One word per idea: a value the worker *keeps* stays there and crosses as a handle (`Keep` sends the
grader's data to be kept; a `Call` may keep its result, or some items of a tuple result). A `Target`
is where an operation acts: a module of the submission or a kept value, then a path of attribute
and item steps.

The grader builds operations and trusts nothing in a reply: `Reply.from_json` and
`ErrorReport.from_json` accept only the shapes written here (anything else is `ProtocolError`).
The worker parses operations with `operation_from_json`; a grader that sends a malformed one has a
bug, and the worker answers it with an error like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Optional


class ProtocolError(ValueError):
    """A message that is not one of the protocol's shapes."""


# -- where an operation acts --------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of a path: an attribute by name, or an item by its wire-encoded key."""

    kind: str   # "attr" | "item"
    key: Any

    def to_json(self) -> list:
        return [self.kind, self.key]


@dataclass(frozen=True)
class Target:
    """A module of the submission (`module`) or a kept value (`handle`), then `path` from it."""

    module: Optional[str] = None
    handle: Optional[int] = None
    path: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if (self.module is None) == (self.handle is None):
            raise ProtocolError("a target starts at a module or at a handle, not both")

    def then(self, step: Step) -> "Target":
        return Target(self.module, self.handle, (*self.path, step))

    def attribute_names(self) -> list[str]:
        return [str(step.key) for step in self.path if step.kind == "attr"]

    def to_json(self) -> dict:
        start = {"module": self.module} if self.module is not None else {"handle": self.handle}
        return {**start, "path": [step.to_json() for step in self.path]}

    @classmethod
    def from_json(cls, data: Any) -> "Target":
        data = _mapping(data, "target")
        path = tuple(Step(*_pair(step)) for step in data.get("path", ()))
        if any(step.kind not in ("attr", "item") for step in path):
            raise ProtocolError("a path step is an attribute or an item")
        return cls(data.get("module"), data.get("handle"), path)


# -- operations -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    """What a request asks; each kind is named on the pipe by its `NAME`."""

    NAME: ClassVar[str] = ""

    def to_json(self) -> dict:
        body = {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"op": self.NAME, **body}

    @classmethod
    def from_json(cls, data: dict) -> "Operation":
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        if "target" in values:
            values["target"] = Target.from_json(values["target"])
        return cls(**values)


@dataclass(frozen=True)
class Call(Operation):
    """Calls the target with wire-encoded `args` and `kwargs`. `select` indexes into the result (e.g.
    [0]); `keep` keeps the result in the worker; `keep_items` keeps those items of a tuple result
    (a layer's cache stays exactly as the forward pass left it); `return_args` also returns the
    arguments as the call left them (in-place changes show)."""

    NAME: ClassVar[str] = "call"
    target: Target
    args: Any
    kwargs: Any
    select: tuple[int, ...] = ()
    keep: bool = False
    keep_items: tuple[int, ...] = ()
    return_args: bool = False

    @classmethod
    def from_json(cls, data: dict) -> "Call":
        return cls(Target.from_json(data["target"]), data["args"], data["kwargs"], tuple(data.get("select", ())),
                   bool(data.get("keep", False)), tuple(data.get("keep_items", ())),
                   bool(data.get("return_args", False)))


@dataclass(frozen=True)
class Fetch(Operation):
    """The value at the target: plain data, or a handle to it where `keep` (or where it is not plain)."""

    NAME: ClassVar[str] = "fetch"
    target: Target
    keep: bool = False


@dataclass(frozen=True)
class SetAttr(Operation):
    NAME: ClassVar[str] = "setattr"
    target: Target
    name: str
    value: Any


@dataclass(frozen=True)
class SetItem(Operation):
    NAME: ClassVar[str] = "setitem"
    target: Target
    key: Any
    value: Any


@dataclass(frozen=True)
class Batch(Operation):
    """Several operations in one round trip, answered by a list of replies in their order."""

    NAME: ClassVar[str] = "batch"
    operations: tuple[Operation, ...]

    @classmethod
    def from_json(cls, data: dict) -> "Batch":
        return cls(tuple(operation_from_json(item) for item in data["operations"]))


@dataclass(frozen=True)
class Keep(Operation):
    """Keeps the grader's data in the worker (its tensors moved to `device`, whole), sent before any
    clock starts; answered by a handle to pass to student code."""

    NAME: ClassVar[str] = "keep"
    value: Any
    device: Optional[str] = None


@dataclass(frozen=True)
class Import(Operation):
    NAME: ClassVar[str] = "import"
    module: str


@dataclass(frozen=True)
class Pin(Operation):
    """Keeps a provided module's class as that module defined it, and what defines it then (its
    namespace, its functions' code and defaults, its module's globals), asked before any student
    module is imported (which could replace or change it)."""

    NAME: ClassVar[str] = "pin"
    module: str
    name: str


@dataclass(frozen=True)
class IsPinned(Operation):
    """Whether the target's type is exactly the pinned class (type(), which a class cannot make lie),
    and what of that class changed since it was pinned: answered by a `PinCheck`."""

    NAME: ClassVar[str] = "is_pinned"
    target: Target
    module: str
    name: str


OPERATIONS: dict[str, type[Operation]] = {kind.NAME: kind for kind in (
    Call, Fetch, SetAttr, SetItem, Batch, Keep, Import, Pin, IsPinned)}


def operation_from_json(data: Any) -> Operation:
    data = _mapping(data, "operation")
    kind = OPERATIONS.get(data.get("op"))
    if kind is None:
        raise ProtocolError(f"unknown operation {data.get('op')!r}")
    try:
        return kind.from_json(data)
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed {kind.NAME} operation: {exc}") from exc


# -- the request around an operation ------------------------------------------------------------------

@dataclass(frozen=True)
class StackWatchSettings:
    """Where the worker dumps its stacks while a call the grader may stop runs, and how often; `tag`
    names the request in the dump's first line."""

    path: str
    tag: int
    every_s: float

    def to_json(self) -> dict:
        return {"path": self.path, "tag": self.tag, "every_s": self.every_s}


@dataclass(frozen=True)
class RefusedPlace:
    """A function that did not return before, which a call refuses to enter: where it is defined."""

    file: str
    function: str
    line: int

    def to_json(self) -> list:
        return [self.file, self.function, self.line]


@dataclass(frozen=True)
class Envelope:
    """One request on the pipe: its number, the operation, the handles the grader let go of, the
    functions calls must not enter (the whole list each time), the stack watch, if any, and the seed,
    if any, of the generators student code draws from without being handed one, set before the
    operation runs (a check's seed travels with its first request, not in a round trip of its own)."""

    id: int
    operation: Operation
    release: tuple[int, ...] = ()
    refuse: tuple[RefusedPlace, ...] = ()
    watch: Optional[StackWatchSettings] = None
    seed: Optional[int] = None

    def to_json(self) -> dict:
        return {"id": self.id, "request": self.operation.to_json(), "release": list(self.release),
                "refuse": [place.to_json() for place in self.refuse],
                "watch": self.watch.to_json() if self.watch is not None else None, "seed": self.seed}

    @classmethod
    def from_json(cls, data: Any) -> "Envelope":
        data = _mapping(data, "request")
        watch, seed = data.get("watch"), data.get("seed")
        if seed is not None and type(seed) is not int:
            raise ProtocolError(f"a seed must be an integer, not {type(seed).__name__}")
        return cls(data["id"], operation_from_json(data["request"]), tuple(data.get("release", ())),
                   tuple(RefusedPlace(*_triple(place)) for place in data.get("refuse", ())),
                   StackWatchSettings(**watch) if isinstance(watch, dict) else None, seed)


# -- replies --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorReport:
    """An exception in the worker as plain data: the student's part of the traceback, where in the
    student's files it was raised, and, for a call refused for entering a function that did not
    return before, which of the request's refused places it was."""

    type: str
    message: str
    traceback: str = ""
    is_not_implemented: bool = False
    location: Optional[tuple[str, int]] = None
    refused: Optional[int] = None

    def to_json(self) -> dict:
        return {"type": self.type, "message": self.message, "traceback": self.traceback,
                "is_not_implemented": self.is_not_implemented,
                "location": list(self.location) if self.location else None, "refused": self.refused}

    @classmethod
    def from_json(cls, data: Any) -> "ErrorReport":
        """From the worker's text: every field checked for its type, anything else dropped."""
        data = _mapping(data, "error")
        location = data.get("location")
        refused = data.get("refused")
        return cls(type=str(data.get("type", "Exception")), message=str(data.get("message", "")),
                   traceback=str(data.get("traceback", "")), is_not_implemented=data.get("is_not_implemented") is True,
                   location=(str(location[0]), location[1]) if isinstance(location, list) and len(location) == 2
                   and type(location[1]) is int else None,
                   refused=refused if type(refused) is int else None)


@dataclass(frozen=True)
class Reply:
    """The answer to one operation: `value` (wire-encoded; for a batch, a list of replies), or `error`."""

    value: Any = None
    error: Optional[ErrorReport] = None
    id: Optional[int] = None   # the request's number, on the envelope's reply only

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        value = [item.to_json() for item in self.value] if _is_reply_list(self.value) else self.value
        body = {"ok": True, "value": value} if self.error is None else {"ok": False, "error": self.error.to_json()}
        return body if self.id is None else {"id": self.id, **body}

    @classmethod
    def from_json(cls, data: Any, batch: bool = False) -> "Reply":
        """A reply as the worker sent it; `batch` when it answers a `Batch` (a list of replies)."""
        data = _mapping(data, "reply")
        identity = data.get("id")
        identity = identity if type(identity) is int else None
        if data.get("ok") is not True:
            return cls(error=ErrorReport.from_json(data.get("error")), id=identity)
        value = data.get("value")
        if batch:
            if not isinstance(value, list):
                raise ProtocolError("a batch is answered by a list of replies")
            value = [cls.from_json(item) for item in value]
        return cls(value=value, id=identity)


@dataclass(frozen=True)
class Answer:
    """What a reply's value holds for the operations that return something: the wire-encoded result
    and, for a call with `return_args`, the arguments as the call left them."""

    result: Any = None
    args: Any = None
    kwargs: Any = None
    returns_args: bool = False

    def to_json(self) -> dict:
        if self.returns_args:
            return {"result": self.result, "args": self.args, "kwargs": self.kwargs}
        return {"result": self.result}

    @classmethod
    def from_json(cls, data: Any) -> Optional["Answer"]:
        if not isinstance(data, dict):
            return None
        if "args" in data:
            return cls(data.get("result"), data.get("args"), data.get("kwargs"), True)
        return cls(data.get("result"))


@dataclass(frozen=True)
class PinCheck:
    """The answer to `IsPinned`: whether the target's type is exactly the pinned class, and, where it
    is, what defined that class and differs now from what defined it when it was pinned (its
    functions, their code and defaults, its module's globals; the object's own attributes that hide
    its methods), in words, a few at most. The target is the provided class's only where both hold."""

    same_type: bool
    changed: tuple[str, ...] = ()

    MAX_CHANGES: ClassVar[int] = 8
    MAX_CHARACTERS: ClassVar[int] = 200

    @property
    def provided(self) -> bool:
        return self.same_type and not self.changed

    def to_json(self) -> dict:
        return {"same_type": self.same_type, "changed": list(self.changed)}

    @classmethod
    def from_json(cls, data: Any) -> "PinCheck":
        """From the worker's answer: a bool and a list of strings (a few, cut short), or ProtocolError."""
        data = _mapping(data, "pin check")
        same_type, changed = data.get("same_type"), data.get("changed")
        if type(same_type) is not bool or not isinstance(changed, list) \
                or not all(type(item) is str for item in changed):
            raise ProtocolError("a pin check is {same_type: bool, changed: [str]}")
        return cls(same_type, tuple(item[:cls.MAX_CHARACTERS] for item in changed[:cls.MAX_CHANGES]))


# -- helpers --------------------------------------------------------------------------------------

def _json(value: Any) -> Any:
    if isinstance(value, (Target, Step, Operation)):
        return value.to_json()
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    return value


def _is_reply_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Reply) for item in value)


def _mapping(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise ProtocolError(f"a {what} is a mapping, not {type(data).__name__}")
    return data


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ProtocolError("a path step is a pair")
    return value[0], value[1]


def _triple(value: Any) -> tuple[str, str, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ProtocolError("a refused place is [file, function, line]")
    return str(value[0]), str(value[1]), int(value[2])
