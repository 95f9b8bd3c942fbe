"""The `reference` fixture: the instructor's solution, live or replayed from recorded fixtures.

Every operation has a key: a digest of what was done to what (the call path and its arguments,
after the history of the object it was done to). Three backends share the keys:
- live (official mode): runs `reference/<A>` in the grader process;
- recording (`grader fixtures A`): runs it live and stores each answer under its key;
- replay (public mode, no `reference/` on the machine): answers from the stored fixtures.
Answers are normalised through the wire format in every backend, so a check sees the same types
whichever answered it. Arguments are copied before a live call, so the reference never changes
the check's arrays; `inspect_call` shows what the call did to them, as it does for the student.
Every backend's `answer` is a new value, which the check may change in place without changing a
recording or a later answer.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.boundary import wire
from grader.boundary.packages import install_package, uninstall_package
from grader.sandbox.remote import CallRecord

FIXTURE_SUFFIX = ".fixtures"


class MissingFixture(LookupError):
    """Public mode met a reference call that was not recorded: the fixtures are stale."""


def _digest(*parts: Any) -> str:
    return hashlib.sha256(wire.pack(list(parts))).hexdigest()[:32]


def _keyed(value: Any) -> Any:
    """Arguments made packable for a digest: reference objects stand for their keys."""
    if isinstance(value, ReferenceObject):
        # A path into an object or module is part of what is passed: `models.PlainBlock` and
        # `models.ResidualBlock` share their module's key but are different arguments.
        return value.__identity__()
    if isinstance(value, wire.NonContiguous):  # the layout changes no value, so no answer
        return _keyed(value.value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.device.type != "cpu":
        # The same inputs on a GPU get the answer recorded on the CPU (compared to a tolerance).
        return value.detach().cpu()
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_keyed(v) for v in value)
    if type(value) is dict:
        return {k: _keyed(v) for k, v in value.items()}
    return value


@dataclass
class Entry:
    """One recorded answer: a plain value, or the fact that the answer was an object."""

    is_object: bool
    value: Any


class LiveBackend:
    """Runs the reference package in this process."""

    def __init__(self, package: str):
        self.package = package
        self.objects: dict[str, Any] = {}

    def resolve(self, root: str, path: list) -> Any:
        if root.startswith("module:"):
            obj = importlib.import_module(f"{self.package}.{root.removeprefix('module:')}")
        else:
            obj = self.objects[root]
        for kind, name in path:
            obj = getattr(obj, name) if kind == "attr" else obj[name]
        return obj

    def answer(self, key: str, compute: Any) -> Entry:
        value = compute()
        return self.normalise(key, value)

    def normalise(self, key: str, value: Any) -> Entry:
        """The answer as the wire would carry it (so a check sees the same types whichever backend
        answered), rebuilt from one encoding: a new value, which the caller owns."""
        encoder = wire.Encoder(_refuse)
        try:
            node = encoder.encode(value)
        except _NotPlain:
            self.objects[key] = value
            return Entry(True, type(value).__name__)
        return Entry(False, wire.Decoder(encoder.buffers, _no_handles).decode(node))


class _NotPlain(Exception):
    pass


def _refuse(value: Any) -> Any:
    raise _NotPlain


def _no_handles(ref: wire.HandleRef) -> Any:
    raise wire.WireError("a reference answer holds no handles")


class RecordingBackend(LiveBackend):
    def __init__(self, package: str):
        super().__init__(package)
        self.recorded: dict[str, dict[str, Entry]] = {}
        self.module = ""

    def answer(self, key: str, compute: Any) -> Entry:
        entry = super().answer(key, compute)
        # The recording keeps its own copy: the check owns the answer and may change it in place.
        self.recorded.setdefault(self.module, {})[key] = Entry(entry.is_object, copy.deepcopy(entry.value))
        return entry


class ReplayBackend:
    def __init__(self, fixtures_directory: Path):
        self.directory = fixtures_directory
        self.loaded: dict[str, dict[str, Entry]] = {}
        self.module = ""

    def answer(self, key: str, compute: Any) -> Entry:
        entries = self.loaded.get(self.module)
        if entries is None:
            entries = self.loaded[self.module] = read_fixture_file(self.directory / f"{self.module}{FIXTURE_SUFFIX}")
        if key not in entries:
            raise MissingFixture(
                f"the recorded reference answers ({self.directory.name}/{self.module}{FIXTURE_SUFFIX}) have no "
                f"answer for this check's inputs; the fixtures are out of date (instructors: `grader fixtures`)")
        entry = entries[key]  # answered again wherever a check asks again: the check gets a copy
        return Entry(entry.is_object, copy.deepcopy(entry.value))


def read_fixture_file(path: Path) -> dict[str, Entry]:
    if not path.is_file():
        return {}
    stored = wire.unpack(path.read_bytes())
    return {key: Entry(bool(is_object), value) for key, (is_object, value) in stored.items()}


def fixture_file_bytes(entries: dict[str, Entry]) -> bytes:
    return wire.pack({key: (entry.is_object, entry.value) for key, entry in sorted(entries.items())})


class ReferenceObject:
    """A lazy path in the reference, mirroring `RemoteObject` for the student: every attribute name is
    the reference's (its own state sits in name-mangled slots), and what a check does besides calling,
    assigning and indexing goes through grader.checking's functions."""

    __slots__ = ("__oracle", "__root", "__path", "__key", "__history", "__type_name")

    def __init__(self, oracle: "ReferenceOracle", root: str, path: list, key: str, history: list | None = None,
                 type_name: str = ""):
        object.__setattr__(self, "_ReferenceObject__oracle", oracle)
        object.__setattr__(self, "_ReferenceObject__root", root)
        object.__setattr__(self, "_ReferenceObject__path", path)
        object.__setattr__(self, "_ReferenceObject__key", key)
        # Objects share one mutable history: every operation on an object or a path into it
        # advances the key, so an answer recorded after a change is never replayed before it.
        object.__setattr__(self, "_ReferenceObject__history", history if history is not None else [key])
        object.__setattr__(self, "_ReferenceObject__type_name", type_name)

    def __extend(self, step: list) -> "ReferenceObject":
        return ReferenceObject(self.__oracle, self.__root, [*self.__path, step], self.__key, self.__history,
                               self.__type_name)

    def __getattr__(self, name: str) -> "ReferenceObject":
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__extend(["attr", name])

    def __getitem__(self, key: Any) -> "ReferenceObject":
        return self.__extend(["item", key])

    def __repr__(self) -> str:
        return f"ReferenceObject({self.__root}{''.join('.' + str(n) for _, n in self.__path)})"

    def __identity__(self) -> tuple:
        """What stands for the object in a digest: its key, and the path from it."""
        return ("<reference object>", self.__key) + ((self.__path,) if self.__path else ())

    def __operate(self, operation: str, payload: Any, compute: Any) -> Any:
        key = _digest(self.__history[0], self.__path, operation, _keyed(payload))
        if not self.__root.startswith("module:"):
            self.__history[0] = key
        entry = self.__oracle.backend.answer(key, compute)
        if entry.is_object:
            return ReferenceObject(self.__oracle, key, [], key, type_name=str(entry.value))
        return entry.value  # every backend answers with a new value, the check's own to change

    def __live__(self) -> Any:
        """The live object this path reaches (live and recording backends only)."""
        return self.__oracle.backend.resolve(self.__root, self.__path)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        oracle = self.__oracle
        return self.__operate("call", [list(args), kwargs],
                              lambda: self.__live__()(*oracle.live_args(args), **oracle.live_args(kwargs)))

    def __inspect_call__(self, *args: Any, **kwargs: Any) -> CallRecord:
        def compute() -> Any:
            live_args, live_kwargs = self.__oracle.live_args(args), self.__oracle.live_args(kwargs)
            result = self.__live__()(*live_args, **live_kwargs)
            return {"result": result, "args": tuple(live_args), "kwargs": live_kwargs}

        # Recorded fixtures name this operation "inspect".
        answer = self.__operate("inspect", [list(args), kwargs], compute)
        return CallRecord(answer["result"], answer["args"], answer["kwargs"])

    def __fetch__(self) -> Any:
        return self.__operate("fetch", None, self.__live__)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__operate("setattr", [name, value],
                       lambda: setattr(self.__live__(), name, self.__oracle.live_args(value)))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__operate("setitem", [key, value],
                       lambda: self.__live__().__setitem__(key, self.__oracle.live_args(value)))


def answers_live(obj: Any) -> bool:
    """Whether `obj` (a path into the reference) runs the reference here and now, as official grading
    does: not a recording (which would store the answer in the fixtures) nor a replay (which holds only
    what was recorded). A check asks before a reference call too large to record."""
    return isinstance(obj, ReferenceObject) and type(obj._ReferenceObject__oracle.backend) is LiveBackend


class ReferenceOracle:
    """`reference.<module>.<name>`: lazy paths into the reference solution."""

    def __init__(self, backend: Any):
        self.backend = backend

    def __getattr__(self, module: str) -> ReferenceObject:
        if module.startswith("_"):
            raise AttributeError(module)
        return ReferenceObject(self, f"module:{module}", [], f"module:{module}")

    def use_module(self, check_module: str) -> None:
        """Answers are stored per check file; tell the backend which one is running."""
        self.backend.module = check_module

    def live_args(self, value: Any) -> Any:
        """Deep copies of the arguments, with reference objects replaced by the live objects."""
        if isinstance(value, ReferenceObject):
            return value.__live__()
        if isinstance(value, wire.NonContiguous):
            return self.live_args(value.value)
        if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
            return type(value)(self.live_args(v) for v in value)
        if type(value) is dict:
            return {k: self.live_args(v) for k, v in value.items()}
        return _copied(value)


def _copied(value: Any) -> Any:
    """A deep copy. An array or a plain tensor (most of what checks pass) copies itself, with its
    layout, several times faster than `copy.deepcopy` does it."""
    if type(value) is np.ndarray and not value.dtype.hasobject:
        return value.copy(order="K")
    torch = sys.modules.get("torch")
    if (torch is not None and type(value) is torch.Tensor and value.layout == torch.strided and value.is_leaf
            and value.grad is None):
        copied = value.detach().clone()  # the format preserved: a dense tensor keeps its strides
        return copied.requires_grad_() if value.requires_grad else copied
    return copy.deepcopy(value)


def load_reference_package(assignment_id: str, reference_directory: Path, assignment_directory: Path) -> str:
    """Imports reference/<A> over assignments/<A> (for the provided files) as its own package."""
    name = f"reference_{assignment_id}"
    uninstall_package(name)
    install_package(name, [reference_directory, assignment_directory])
    return name


def unload_reference_package(name: str) -> None:
    uninstall_package(name)
