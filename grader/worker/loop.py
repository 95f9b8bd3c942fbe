"""The worker's request loop: resolve a target, do one thing to it, send back plain data.

Requests arrive on a private pipe (never stdin/stdout, which belong to the student's prints).
Every request gets exactly one response; a student's exception, `sys.exit` or
`NotImplementedError` becomes an error response with the student's part of the traceback.

For a call the grader may stop at its call limit, the request says where the worker's stacks are
dumped while it runs (the grader reads them to learn which function did not return: see
StackWatch); and each request lists the functions that did not return before, which a call refuses
to enter.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import gc
import importlib
import importlib.abc
import json
import os
import sys
import threading
import traceback
import types
from pathlib import Path
from typing import Any

from grader.boundary import protocol, wire
from grader.boundary.packages import install_package
from grader.worker.confine import ConfinementError, confine

CONFINEMENT_FAILED_EXIT = 71  # the grader's worker_process knows this status

PACKAGE = "submission"
MAX_MESSAGE_BYTES = 2 * 1024 * 1024 * 1024
_GRADER_DIR = str(Path(wire.__file__).resolve().parents[1])  # the grader package
_IMPORTLIB_DIR = os.path.dirname(importlib.__file__) + os.sep


def seed_global_generators(seed: int) -> None:
    """Seeds the generators student code draws from without being handed one (np.random, random,
    torch), so that a check gives the same answers however often and wherever it runs."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is None:
        return
    # The generators of the devices a check can run on: the CPU's, CUDA's (seeded once it starts) where
    # torch was built for it, and a Mac's GPU where it has one. torch.manual_seed queues a seeding for
    # every device kind torch knows (XPU, MTIA too), recording the caller's stack for each: 0.1 ms at
    # every check, on a machine that has none of them.
    torch.default_generator.manual_seed(seed)
    if torch.version.cuda is not None or torch.version.hip is not None:
        torch.cuda.manual_seed_all(seed)
    if torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)


class NotCalledAgain(BaseException):
    """Raised on entering a function that did not return in an earlier request. A BaseException, so
    that the student's `except Exception` does not swallow it and carry on into the same loop."""

    def __init__(self, index: int):
        super().__init__("this function did not return in an earlier check; it is not called again")
        self.index = index


def refusing_tracer(places: list[protocol.RefusedPlace]) -> Any:
    """A trace function that raises NotCalledAgain on entry into a function holding one of `places`,
    as the grader read them from a stack dump."""
    by_file: dict[str, list[tuple[str, int, int]]] = {}
    for index, place in enumerate(places):
        by_file.setdefault(place.file, []).append((place.function, place.line, index))

    def trace(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            for function, line, index in by_file.get(code.co_filename, ()):
                if code.co_name == function and any(found == line for _, _, found in code.co_lines()):
                    raise NotCalledAgain(index)
        return None  # no tracing inside the frame: only entries cost anything

    return trace


class StackWatch:
    """Python's fault handler writes every thread's stack to a file every `every_s` seconds, from its
    own thread (a loop that never gives up the interpreter cannot stop it). Each watched request
    empties the file and writes a first line naming itself and the thread that runs it, so that what
    the grader finds there after stopping a request that did not answer was dumped during that
    request. Armed once per worker: a request only pays for emptying the file."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.settings: tuple[str, float] | None = None

    def start(self, watch: protocol.StackWatchSettings | None) -> None:
        if watch is None:
            return
        try:
            settings = (str(watch.path), float(watch.every_s))
            if settings != self.settings:
                self.arm(*settings)
            header = f"tag {int(watch.tag)} main {threading.get_ident()}\n".encode()
            if self.fd is None:
                return
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, header, 0)
            os.lseek(self.fd, len(header), os.SEEK_SET)  # where the fault handler writes next
        except (OSError, KeyError, TypeError, ValueError):
            pass  # the grader then knows the call that timed out, not where it was stuck

    def arm(self, path: str, every_s: float) -> None:
        faulthandler.cancel_dump_traceback_later()
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.settings = None, None
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        faulthandler.dump_traceback_later(every_s, repeat=True, file=self.fd)
        self.settings = (path, every_s)


# A changed class is described by its first few changes (a class changed wholesale would list them all).
MAX_CHANGES_DESCRIBED = 4
# A namespace key that is not a plain string (only code run after the pin puts one there).
NOT_A_NAME = "a key that is not a name"


class PinnedClass:
    """A provided class as its module defined it, and what defined it at that moment (`definition`),
    to tell later whether it is still the same. Each part is held as the objects it was made of and
    compared by identity: nothing of theirs is called to compare them, and nothing the submission
    added is looked into (that it was added is the change)."""

    def __init__(self, cls: type, module: types.ModuleType):
        self.cls = cls
        self.module = module
        # The classes whose namespaces define it: it and its bases in the submission's package (a
        # library's or Python's are not the assignment's), and the other classes its module defines.
        own = [klass for klass in cls.__mro__
               if klass is cls or str(vars(klass).get("__module__", "")).startswith(PACKAGE + ".")]
        defined_there = [value for value in dict.values(vars(module))
                         if isinstance(value, type) and vars(value).get("__module__") == module.__name__]
        # Named as they were named then (a class's name can be set without changing what it does).
        self.classes = [(klass, klass.__qualname__) for klass in dict.fromkeys(own + defined_there)]
        self.name = cls.__name__
        self.where = f"{module.__name__.rpartition('.')[2]}.py"
        self.functions = {name for name, value in dict.items(vars(module))
                          if type(value) is types.FunctionType and value.__module__ == module.__name__}
        # The names an attribute of the object itself would hide (its methods: set on the object, they
        # replace the method for that object alone).
        self.methods = list(dict.fromkeys(name for klass in own for name, value in vars(klass).items()
                                          if type(value) in (types.FunctionType, staticmethod, classmethod)))
        self.parts = self.definition()

    def definition(self) -> dict[tuple[str, str, str], tuple]:
        """What defines the class, as {(owner, name, aspect): the objects it is}: the namespace of its
        module (the globals its functions read) and of each of `classes` (`vars`), with their bases
        (`__mro__`) and metaclass; and for each function there (a static or class method's, a
        property's accessors) its `__code__`, `__defaults__`, `__kwdefaults__` and closure cells.
        About fifty parts for a provided Solver, checked in some 40 microseconds."""
        parts: dict[tuple[str, str, str], tuple] = {}
        where = self.where
        for name, value in dict.items(vars(self.module)):
            name = name if type(name) is str else NOT_A_NAME
            if name == "__warningregistry__":  # where Python notes the warnings it showed, not code
                continue
            parts[(where, name, "")] = (value,)
            if name in self.functions and type(value) is types.FunctionType:
                parts.update(_function_parts(where, name, value))
        for klass, owner in self.classes:
            parts[(owner, "__class__", "")] = (type(klass),)
            parts[(owner, "__mro__", "")] = tuple(type.__dict__["__mro__"].__get__(klass))
            for name, value in vars(klass).items():
                name = name if type(name) is str else NOT_A_NAME
                parts[(owner, name, "")] = (value,)
                for accessor, function in _functions_of(value):
                    parts.update(_function_parts(owner, name + accessor, function))
        return parts

    def check(self, obj: Any) -> protocol.PinCheck:
        """Whether `obj`'s type is exactly the class, and what of it changed since it was pinned."""
        if type(obj) is not self.cls:
            return protocol.PinCheck(same_type=False)
        now = self.definition()
        differ = [key for key, recorded in self.parts.items() if key not in now or not _same(recorded, now[key])]
        # A function replaced or removed is said once, not again for its code and defaults.
        replaced = {(owner, name) for owner, name, aspect in differ if not aspect}
        changed = [describe_change(key, key in now) for key in differ if not key[2] or key[:2] not in replaced]
        changed += [describe_change(key, True, added=True) for key in now if key not in self.parts and not key[2]]
        try:
            own = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            own = None
        if isinstance(own, dict):  # read as attribute lookup reads it, through dict's own methods
            changed += [f"{name} set on the {self.name} object" for name in self.methods
                        if dict.__contains__(own, name)]
        if len(changed) > MAX_CHANGES_DESCRIBED:
            changed[MAX_CHANGES_DESCRIBED - 1:] = [f"{len(changed) - MAX_CHANGES_DESCRIBED + 1} more changes"]
        return protocol.PinCheck(same_type=True, changed=tuple(changed))


def _functions_of(value: Any) -> list[tuple[str, types.FunctionType]]:
    """The functions behind a class's namespace entry, each with how to name it beside the entry."""
    if type(value) in (staticmethod, classmethod):
        value = value.__func__
    if type(value) is types.FunctionType:
        return [("", value)]
    if type(value) is property:
        return [(f" ({accessor})", function) for accessor, function in
                (("getter", value.fget), ("setter", value.fset), ("deleter", value.fdel))
                if type(function) is types.FunctionType]
    return []


def _function_parts(owner: str, name: str, function: types.FunctionType) -> dict[tuple[str, str, str], tuple]:
    keywords = function.__kwdefaults__
    return {(owner, name, "code"): (function.__code__,),
            (owner, name, "defaults"): tuple(function.__defaults__ or ()),
            (owner, name, "keyword defaults"): tuple(item for pair in dict.items(keywords) for item in pair)
            if type(keywords) is dict else (),
            (owner, name, "closure"): tuple(_cell_contents(cell) for cell in function.__closure__ or ())}


_EMPTY_CELL = object()


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet
        return _EMPTY_CELL


def _same(recorded: tuple, now: tuple) -> bool:
    return len(recorded) == len(now) and all(a is b for a, b in zip(recorded, now))


def describe_change(key: tuple[str, str, str], present: bool, added: bool = False) -> str:
    """A change to one part of a pinned class, in words: "Solver.train replaced", "the code of
    Solver._step changed", "len of solver.py added"."""
    owner, name, aspect = key
    what = f"{name} of {owner}" if owner.endswith(".py") else f"{owner}.{name}"
    if aspect:
        return f"the {aspect} of {what} changed"
    if added:
        return f"{what} added"
    return f"{what} replaced" if present else f"{what} removed"


class Worker:
    def __init__(self, submission_dir: Path):
        install_package(PACKAGE, [submission_dir])
        self.handles: dict[int, Any] = {}
        self.next_handle = 1
        # Classes of provided modules as those modules defined them (see the "pin" operation).
        self.pinned: dict[tuple[str, str], PinnedClass] = {}
        # The functions a call refuses to enter, and the trace function that does it (None: no refusals).
        self.refused_places: list = []
        self.tracer: Any = None
        self.stack_watch = StackWatch()

    # -- values ---------------------------------------------------------------------------------

    def keep(self, value: Any) -> wire.HandleRef:
        handle_id = self.next_handle
        self.next_handle += 1
        self.handles[handle_id] = value
        return wire.HandleRef(handle_id, type(value).__name__)

    def encoder(self) -> wire.Encoder:
        """Encodes plain data as itself and anything else as a handle kept in this worker."""
        encoder = wire.Encoder(lambda value: encoder.encode(self.keep(value)))
        return encoder

    def decoder(self, buffers: list[bytes]) -> wire.Decoder:
        def resolve(ref: wire.HandleRef) -> Any:
            if ref.id not in self.handles:
                raise LookupError(f"handle {ref.id} is unknown or was released")
            return self.handles[ref.id]

        return wire.Decoder(buffers, resolve)

    # -- targets --------------------------------------------------------------------------------

    def resolve(self, target: protocol.Target, decoder: wire.Decoder) -> Any:
        if target.handle is not None:
            if target.handle not in self.handles:
                raise LookupError(f"handle {target.handle} is unknown or was released")
            obj = self.handles[target.handle]
        else:
            obj = importlib.import_module(f"{PACKAGE}.{target.module}")
        for step in target.path:
            obj = getattr(obj, step.key) if step.kind == "attr" else obj[decoder.decode(step.key)]
        return obj

    # -- operations -----------------------------------------------------------------------------

    def run(self, op: protocol.Operation, decoder: wire.Decoder, encoder: wire.Encoder) -> Any:
        """The value of a reply to `op`: an Answer's JSON, a batch's list of replies, or None."""
        if isinstance(op, protocol.Batch):
            return [self.run_guarded(sub, decoder, encoder) for sub in op.operations]
        if isinstance(op, protocol.Keep):  # data the grader hands to student code later, before any clock starts
            value = decoder.decode(op.value)
            if op.device:
                value = to_device(value, op.device)
            return protocol.Answer(encoder.encode(self.keep(value))).to_json()
        if isinstance(op, protocol.Import):
            importlib.import_module(f"{PACKAGE}.{op.module}")
            return None
        if isinstance(op, protocol.Pin):  # before the student's modules are imported, which could replace the class
            module = importlib.import_module(f"{PACKAGE}.{op.module}")
            self.pinned[(op.module, op.name)] = PinnedClass(getattr(module, op.name), module)
            return None
        target = self.resolve(op.target, decoder)
        if isinstance(op, protocol.IsPinned):  # type(), not isinstance or __class__, which a class can make lie
            pinned = self.pinned.get((op.module, op.name))
            check = pinned.check(target) if pinned is not None else protocol.PinCheck(same_type=False)
            return protocol.Answer(encoder.encode(check.to_json())).to_json()
        if isinstance(op, protocol.Call):
            args = decoder.decode(op.args)
            kwargs = decoder.decode(op.kwargs)
            result = self.call(target, args, kwargs)
            for index in op.select:
                result = result[index]
            if op.keep_items and isinstance(result, tuple):
                # Parts that must stay here as they are (a cache holding an autograd graph, say)
                # cross as handles; the grader passes them back untouched.
                result = tuple(self.keep(item) if i in op.keep_items else item for i, item in enumerate(result))
            encoded = self.reply_value(result, op.keep, encoder)
            if op.return_args:
                return protocol.Answer(encoded, encoder.encode(args), encoder.encode(kwargs), returns_args=True).to_json()
            return protocol.Answer(encoded).to_json()
        if isinstance(op, protocol.Fetch):
            return protocol.Answer(self.reply_value(target, op.keep, encoder)).to_json()
        if isinstance(op, protocol.SetAttr):
            setattr(target, op.name, decoder.decode(op.value))
            return protocol.Answer().to_json()
        if isinstance(op, protocol.SetItem):
            target[decoder.decode(op.key)] = decoder.decode(op.value)
            return protocol.Answer().to_json()
        raise protocol.ProtocolError(f"unknown operation {op.NAME!r}")

    def refuse(self, places: tuple[protocol.RefusedPlace, ...]) -> None:
        """The functions calls must not enter from now on (the grader sends the whole list each time)."""
        places = list(places)
        if places != self.refused_places:
            self.refused_places = places
            self.tracer = refusing_tracer(places) if places else None

    def call(self, target: Any, args: Any, kwargs: Any) -> Any:
        if self.tracer is None:
            return target(*args, **kwargs)
        # Set for each call: a trace function that raised is removed by the interpreter.
        sys.settrace(self.tracer)
        try:
            return target(*args, **kwargs)
        finally:
            sys.settrace(None)

    def reply_value(self, value: Any, keep: bool, encoder: wire.Encoder) -> Any:
        if keep:
            return encoder.encode(self.keep(value))
        return encoder.encode(value)

    def run_guarded(self, op: protocol.Operation, decoder: wire.Decoder, encoder: wire.Encoder) -> protocol.Reply:
        try:
            return protocol.Reply(value=self.run(op, decoder, encoder))
        except BaseException as exc:  # noqa: BLE001 - SystemExit from student code is an answer too
            return protocol.Reply(error=describe_exception(exc))


def to_device(value: Any, device: str) -> Any:
    """Tensors in a plain structure moved to `device`."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def describe_exception(exc: BaseException) -> protocol.ErrorReport:
    """The exception as plain data, with the grader's own frames removed from the traceback."""
    # Neither the grader's frames nor the import machinery's (a syntax error would show ten frames of
    # importlib and not the line at fault) are the student's story.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith((_GRADER_DIR, _IMPORTLIB_DIR, "<frozen importlib"))]
    location = (frames[-1].filename, frames[-1].lineno) if frames else None
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        location = (exc.filename, exc.lineno)
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a student's exception whose __str__ raises
        message = "<the exception's message could not be shown>"
    if isinstance(exc, SystemExit):
        message = f"the code called sys.exit({exc.code!r})"
    lines = traceback.format_list(frames)
    text = "Traceback (most recent call last):\n" + "".join(lines) if lines else ""
    if isinstance(exc, SyntaxError):  # the file, the line and a caret under the fault
        text += "".join(traceback.format_exception_only(exc)).rstrip("\n")
    else:
        text += f"{type(exc).__name__}: {message}"
    # The student's files by their own names ("layers.py"), not by the scratch folder they sit in.
    text = text.replace(f'"{os.path.join(os.getcwd(), PACKAGE)}{os.sep}', '"')
    return protocol.ErrorReport(type=type(exc).__name__, message=message[:4000], traceback=text[-16000:],
                                is_not_implemented=isinstance(exc, NotImplementedError), location=location,
                                refused=exc.index if isinstance(exc, NotCalledAgain) else None)


def synchronize_gpu() -> None:
    """Work a request queued on the GPU is finished before the answer leaves, so the grader's
    clock, which stops at the answer, covers it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def serve(worker: Worker, requests: Any, responses: Any) -> None:
    def read_exactly(n: int) -> bytes:
        data = requests.read(n)
        if len(data) != n:
            raise EOFError
        return data

    while True:
        try:
            header, buffers = wire.read_message(read_exactly, MAX_MESSAGE_BYTES)
        except EOFError:
            return
        try:
            envelope = protocol.Envelope.from_json(header)
        except (protocol.ProtocolError, KeyError, TypeError, ValueError) as exc:  # the grader's bug: said, not fatal
            identity = header.get("id") if isinstance(header, dict) else None
            wire.write_message(responses, protocol.Reply(error=describe_exception(exc), id=identity).to_json(), [])
            continue
        for handle_id in envelope.release:
            worker.handles.pop(handle_id, None)
        encoder = worker.encoder()
        worker.refuse(envelope.refuse)
        worker.stack_watch.start(envelope.watch)
        if envelope.seed is not None:
            seed_global_generators(envelope.seed)
        reply = worker.run_guarded(envelope.operation, worker.decoder(buffers), encoder)
        synchronize_gpu()
        try:
            wire.write_message(responses, dataclasses.replace(reply, id=envelope.id).to_json(), encoder.buffers)
        except (TypeError, ValueError) as exc:  # e.g. a student's number that JSON cannot hold
            failed = protocol.Reply(error=describe_exception(exc), id=envelope.id)
            wire.write_message(responses, failed.to_json(), [])


class _HiddenModules(importlib.abc.MetaPathFinder):
    """Makes an import of a module the assignment leaves out (a NumPy assignment's deep-learning
    frameworks) fail, saying why; the sandbox leaves its files unreadable besides, so that code that
    removes this finder finds nothing to import either."""

    def __init__(self, names: list[str]):
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        top = fullname.partition(".")[0]
        if top in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}: this assignment is written with NumPy, and "
                                      f"{top} is not available to its code", name=fullname)
        return None


def hide_modules(names: list[str]) -> None:
    if names:
        sys.meta_path.insert(0, _HiddenModules(names))


def main() -> None:
    request_fd, response_fd = int(sys.argv[1]), int(sys.argv[2])
    settings = json.loads(sys.argv[3])
    try:
        confine(settings)  # before any student code, and before torch, runs
    except ConfinementError as exc:
        print(f"confinement failed: {exc}", flush=True)
        os._exit(CONFINEMENT_FAILED_EXIT)
    requests = os.fdopen(request_fd, "rb", buffering=1024 * 1024)
    responses = os.fdopen(response_fd, "wb", buffering=1024 * 1024)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the student's code never reads the channel
    # What loads before the submission (torch's 200,000 objects) lives as long as the worker: kept out
    # of the cyclic collector's full passes, which would walk it all (about 80 ms each) a few times
    # while it imports and a few times more while the submission runs.
    gc.disable()
    hide_modules(settings.get("hidden_modules", []))
    for library in settings.get("preload", []):  # e.g. torch, imported while the grader starts up
        importlib.import_module(library)
    worker = Worker(Path(settings["submission_dir"]))
    gc.freeze()
    gc.enable()
    serve(worker, requests, responses)
