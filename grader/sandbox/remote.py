"""The grader's view of a submission: lazy paths into the worker, plain values back.

`student.layers.affine_forward(x, w, b)` sends one request and returns plain data rebuilt by the
grader; an object that is not plain (a model, a solver) comes back as a `RemoteObject` rooted at a
handle, on which attribute and item access build paths locally and `call`, `fetch`, assignment and
item assignment each cost one round trip.

A call that runs past the call limit in a check is remembered for the rest of the submission: the
same target is not called again, and neither is the submission's function the worker was stuck in
(read from the stack the worker dumps just before the limit), wherever later code calls it from. One
endless loop costs one call limit, not one per check that reaches it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

from grader.boundary import protocol, wire
from grader.sandbox.errors import (BudgetSpent, EarlierTimeout, StudentException, WorkerCrashed, WorkerFailure,
                                   WorkerLost, WorkerTimeout)
from grader.sandbox.worker_process import Limits, WorkerProcess, scrubbed_environment
from grader.untrusted_text import valid_unicode


def worker_seed(seed: int) -> int:
    """The seed the worker's generators get for a check of seed `seed` (a 64-bit digest: nothing of
    `seed` can be read back from it)."""
    return int.from_bytes(hashlib.sha256(f"worker:{seed}".encode()).digest()[:8], "little")


class StackFrame(NamedTuple):
    """A frame of the submission's code in the worker's stack dump: the function the worker was in."""

    file: str
    function: str
    line: int


@dataclass(frozen=True)
class Hang:
    """A call that did not return within the call limit in a check."""

    target: str                      # what the check called: layers.Linear.forward, TwoLayerNet.loss
    limit_s: float
    stuck_in: Optional[StackFrame]   # the innermost frame of the submission's code, when the dump showed it

    def called_again(self) -> str:
        where = f", stuck in {_frame_name(self.stuck_in)}" if self.stuck_in else ""
        return (f"{self.target} timed out in an earlier check (no answer within {self.limit_s:g} s{where}); "
                "not called again")

    def reached_again(self) -> str:
        assert self.stuck_in is not None
        return (f"this calls {_frame_name(self.stuck_in)}, which timed out in an earlier check (no answer "
                f"within {self.limit_s:g} s from {self.target}); not called again")


def _frame_name(frame: StackFrame) -> str:
    return f"{frame.function} ({Path(frame.file).name} line {frame.line})"


# The stack dump's name in the worker's scratch directory, and how often the worker dumps its stacks
# during a watched call, as a fraction of the call limit: a call stopped at the limit has at least two
# dumps taken while it ran, and the last complete one shows where it was stuck.
STACK_DUMP_NAME = ".call-stack"
STACK_DUMP_EVERY = 1 / 3
_STACK_DUMP_BYTES = 256 * 1024
_DUMP_TAG = re.compile(r"tag (\d+) main (\d+)")
_DUMP_THREAD = re.compile(r"(?:Current thread|Thread) 0x([0-9a-f]+) \(most recent call first\):")
_DUMP_FRAME = re.compile(r'  File "(.+)", line (\d+) in ([\w<>]{1,200})')


def read_stack_dump(path: Path, tag: int, package_dirs: set[str]) -> Optional[StackFrame]:
    """The innermost frame of the submission's code in the worker's main thread, in the last dump the
    worker wrote during request `tag`; None when there is none. The file is the worker's to write, so
    it is read as untrusted text: no link followed, a size cap, and only lines of the dump's exact form."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, _STACK_DUMP_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    lines = text.splitlines()
    header = _DUMP_TAG.fullmatch(lines[0]) if lines else None
    if header is None or int(header[1]) != tag:
        return None  # the dumps of another request: this one never got as far as starting the watch
    main_thread, in_main, found, stuck_in = int(header[2]), False, False, None
    for line in lines[1:]:
        thread = _DUMP_THREAD.fullmatch(line)
        if thread:
            in_main, found = int(thread[1], 16) == main_thread, False
            continue
        frame = _DUMP_FRAME.fullmatch(line) if in_main and not found else None
        if frame and os.path.dirname(frame[1]) in package_dirs and frame[3] != "<module>":
            # Most recent call first: the first frame of the submission's in a dump is the innermost.
            stuck_in, found = StackFrame(frame[1], frame[3], int(frame[2])), True
    return stuck_in


@dataclass(frozen=True)
class CallRecord:
    """A call's result together with its arguments as they were after the call."""

    result: Any
    args: tuple
    kwargs: dict


class WorkerSession:
    """All requests of one submission. Starts a worker when needed and a fresh one after a failure;
    remembers modules whose import killed a worker so that each later use fails at once (unless a
    signal the grader did not send killed it: see `WorkerLost`)."""

    def __init__(self, submission_dir: Path, scratch_dir: Path, limits: Limits,
                 budget_s: float | None = None, preload: tuple[str, ...] = (),
                 extra_env: dict[str, str] | None = None):
        self.submission_dir = submission_dir
        self.extra_env = dict(extra_env or {})  # e.g. the one GPU a batch lent this session
        self.scratch_dir = scratch_dir
        self.limits = limits
        self.deadline = time.monotonic() + budget_s if budget_s else None
        self.generation = 0
        self.worker_starts = 0
        self._worker: WorkerProcess | None = None
        self._imported: set[str] = set()
        self._broken_modules: dict[str, WorkerFailure] = {}
        self._released: list[int] = []
        self._seed: Optional[int] = None          # for the generators, sent with the next request
        self._handle_types: dict[int, str] = {}   # of the live worker's handles, for naming what they call
        self._hangs: dict[str, Hang] = {}        # by the target called (see `_called_targets`)
        self._stuck_in: list[Hang] = []          # those whose stuck frame every worker refuses to enter
        self._dump_tag = 0
        # Resolved: the sandbox binds the scratch directory at its real path.
        self._stack_dump_path = scratch_dir.resolve() / STACK_DUMP_NAME
        self.logs: list[str] = []
        self.preload = preload
        # Sees every answer (or the student's exception) as the grader receives it, if set.
        self.observer: Callable[[Any, BaseException | None], None] | None = None
        # Makes the scratch directory as it was before any code ran in it, if set (`fresh_worker`).
        self.renew_scratch: Callable[[], None] | None = None
        # Sees each line the live worker prints, as it arrives, if set (a training's progress).
        self.on_output_line: Callable[[str], None] | None = None

    def start(self) -> None:
        """Starts the worker now, so that its start-up (and preloads) overlap the grader's own."""
        self._live_worker()

    # -- lifecycle ------------------------------------------------------------------------------

    def _live_worker(self) -> WorkerProcess:
        if self._worker is None or not self._worker.alive:
            self._retire()
            self.generation += 1
            self.worker_starts += 1
            self._imported.clear()
            self._released.clear()
            self._handle_types.clear()
            self._worker = WorkerProcess(self.submission_dir, self.scratch_dir, self.limits,
                                         scrubbed_environment(self.scratch_dir, self.extra_env), self.preload)
            self._worker.output.on_line = self._tell_output_line
        return self._worker

    def _tell_output_line(self, line: str) -> None:
        if self.on_output_line is not None:
            self.on_output_line(line)

    def _retire(self) -> None:
        if self._worker is not None:
            self._worker.close()
            text = self._worker.output.text()
            if text:
                self.logs.append(text)
            self._worker = None

    def close(self) -> None:
        self._retire()

    def fresh_worker(self) -> None:
        """The next request starts a new worker, in which none of the submission's code has run yet,
        and (where the session can renew it) none of the files it wrote are left: a training task's
        provided Solver is the assignment's, whatever code run at check time wrote."""
        self._retire()
        if self.renew_scratch is not None:
            self.renew_scratch()

    def output(self) -> str:
        """Everything the submission printed so far (capped per worker)."""
        live = [self._worker.output.text()] if self._worker is not None else []
        return "".join(self.logs + live)

    # -- requests -------------------------------------------------------------------------------

    def _timeout(self, timeout_s: float | None) -> float:
        timeout = timeout_s if timeout_s is not None else self.limits.call_timeout_s
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise BudgetSpent("the submission used up its time budget before this check")
            timeout = min(timeout, remaining)
        return timeout

    def import_module(self, module: str, timeout_s: float) -> None:
        """Imports a module of the submission now, within `timeout_s` (a training clock's time left);
        running past it does not mark the module as broken for later requests."""
        self._ensure_imported(module, timeout_s)

    def _ensure_imported(self, module: str, timeout_s: float | None = None) -> None:
        if module in self._broken_modules:
            raise self._broken_modules[module]
        if module in self._imported:
            return
        try:
            self._exchange(protocol.Import(module), [], self._timeout(timeout_s), observe=False)
        except WorkerLost as lost:
            # Killed from outside (an operator, the out-of-memory killer): that says nothing about the
            # module, so it is not remembered as broken and a retry imports it again.
            raise WorkerLost(f"importing {module}.py stopped the worker: {lost}", lost.signal_name) from lost
        except WorkerFailure as failure:
            if isinstance(failure, WorkerTimeout) and timeout_s is not None:
                raise  # the caller's own clock ran out (training), which says nothing about the module
            message = f"importing {module}.py stopped the worker: {failure}"
            broken = type(failure)(message)
            self._broken_modules[module] = broken
            raise broken from failure
        self._imported.add(module)

    def _exchange(self, operation: protocol.Operation, buffers: list[bytes], timeout_s: float, observe: bool = True,
                  refused: Sequence[Hang] = (), watch: Optional[protocol.StackWatchSettings] = None,
                  called: Sequence[str] = ()) -> Any:
        worker = self._live_worker()
        release, self._released = self._released, []
        seed, self._seed = self._seed, None
        places = tuple(protocol.RefusedPlace(*hang.stuck_in) for hang in refused if hang.stuck_in is not None)
        try:
            header, reply_buffers = worker.exchange(operation, buffers, timeout_s, release=release, refuse=places,
                                                    watch=watch, seed=seed)
        except WorkerFailure:
            self._retire()
            raise
        try:
            reply = protocol.Reply.from_json(header, batch=isinstance(operation, protocol.Batch))
        except protocol.ProtocolError as exc:
            self._retire()
            raise WorkerCrashed(f"the worker sent an answer the grader cannot read ({exc})") from exc
        generation = self.generation

        def handle(ref: wire.HandleRef) -> RemoteObject:
            type_name = valid_unicode(ref.type_name)
            self._handle_types[ref.id] = type_name
            return RemoteObject(self, protocol.Target(handle=ref.id), generation, type_name=type_name)

        decoder = wire.Decoder(reply_buffers, handle)
        if self.observer is None or not observe:
            return _unwrap(reply, decoder, refused)
        try:
            value = _unwrap(reply, decoder, refused)
        except StudentException as error:
            self.observer(None, error)
            raise
        self.observer(without_cache(value) if any(map(is_forward_pass, called)) else value, None)
        return value

    def perform(self, operation: protocol.Operation, encoder: wire.Encoder, modules: Iterable[str],
                timeout_s: float | None = None) -> Any:
        """Sends `operation` (its values encoded by `encoder`) once the submission's `modules` are
        imported. With `timeout_s` None the call limit applies, and a call that runs past it is
        remembered (see the module's docstring): later calls of it fail at once."""
        called = self._called_targets(operation)
        for target in called:
            if target in self._hangs:
                raise EarlierTimeout(self._hangs[target].called_again())
        for module in modules:
            self._ensure_imported(module)
        timeout = self._timeout(timeout_s)
        refused = tuple(self._stuck_in)
        watch = None
        if called and timeout_s is None:
            self._dump_tag += 1
            watch = protocol.StackWatchSettings(str(self._stack_dump_path), self._dump_tag,
                                                self.limits.call_timeout_s * STACK_DUMP_EVERY)
        try:
            return self._exchange(operation, encoder.buffers, timeout, refused=refused, watch=watch, called=called)
        except EarlierTimeout:
            raise
        except WorkerTimeout:
            if watch is not None:
                self._remember_hang(called, timeout)
            raise

    def _called_targets(self, operation: protocol.Operation) -> tuple[str, ...]:
        """The functions `operation` calls, each named from its module, or from the type of the handle
        it starts at: `layers.Linear.forward`, `TwoLayerNet.loss`."""
        calls = operation.operations if isinstance(operation, protocol.Batch) else (operation,)
        targets = []
        for call in calls:
            if isinstance(call, protocol.Call):
                target = call.target
                root = target.module or self._handle_types.get(target.handle, "object")
                targets.append(".".join([str(root), *target.attribute_names()]))
        return tuple(dict.fromkeys(targets))

    def _remember_hang(self, called: tuple[str, ...], timeout_s: float) -> None:
        package_dirs = {str(self.submission_dir), str(self.submission_dir.resolve())}
        hang = Hang(called[0], timeout_s, read_stack_dump(self._stack_dump_path, self._dump_tag, package_dirs))
        if len(called) == 1:  # of a batch of several functions, only the dump can tell which one hung
            self._hangs[called[0]] = hang
        if hang.stuck_in is not None and all(h.stuck_in != hang.stuck_in for h in self._stuck_in):
            self._stuck_in.append(hang)

    def encoder(self) -> wire.Encoder:
        def encode_handle(value: Any) -> Any:
            if isinstance(value, RemoteObject) and _where(value).session is self \
                    and _where(value).target.handle is not None:
                return {"$": "handle", "id": _where(value).handle_id()}
            return wire.refuse_objects(value)

        return wire.Encoder(encode_handle)

    def seed_global_generators(self, seed: int) -> None:
        """Seeds np.random, random and torch in the worker (each check starts from its own seed) before
        the next request runs: the seed travels with it. What the worker gets is derived from `seed`
        one way: the check's seed also draws the grader's inputs and probes, which code reading
        torch.initial_seed() in the worker could otherwise draw again."""
        self._seed = worker_seed(int(seed))

    def pin_class(self, module: str, name: str, timeout_s: float) -> None:
        """Imports the provided `module` and has the worker keep its class `name` as that module defined
        it, with what defines it then: asked before the student's modules are imported (the provided
        modules import none of them at their top), none of them can have replaced or changed it yet."""
        self._exchange(protocol.Pin(module, name), [], self._timeout(timeout_s), observe=False)
        self._imported.add(module)

    def is_pinned_class(self, obj: "RemoteObject", module: str, name: str, timeout_s: float) -> protocol.PinCheck:
        """Whether the type of `obj` is exactly the class `pin_class` kept (not a subclass, not another
        class of the same name), and what of that class the submission's code changed since; an answer
        the grader cannot read counts as another class."""
        operation = protocol.IsPinned(_where(obj).live_target(), module, name)
        answer = self._exchange(operation, [], self._timeout(timeout_s), observe=False)
        try:
            check = protocol.PinCheck.from_json(answer)
        except protocol.ProtocolError:
            return protocol.PinCheck(same_type=False)
        return protocol.PinCheck(check.same_type, tuple(valid_unicode(item) for item in check.changed))

    def keep(self, value: Any, device: str | None = None, timeout_s: float | None = None) -> "RemoteObject":
        """Sends plain data to the worker to keep there (its tensors moved to `device`, whole);
        returns a handle to pass to student code."""
        encoder = self.encoder()
        return self.perform(protocol.Keep(encoder.encode(value), device), encoder, (), timeout_s)

    def release(self, handle_id: int, generation: int) -> None:
        if generation == self.generation:
            self._released.append(handle_id)


def _unwrap(reply: protocol.Reply, decoder: wire.Decoder, refused: Sequence[Hang] = ()) -> Any:
    if reply.error is not None:
        error = reply.error
        if error.refused is not None and 0 <= error.refused < len(refused):
            raise EarlierTimeout(refused[error.refused].reached_again())
        # The student's own text (a class can name itself anything, a message can hold anything):
        # valid Unicode from here on, escaped by each writer where it is shown.
        raise StudentException(
            type_name=valid_unicode(error.type), message=valid_unicode(error.message),
            traceback=valid_unicode(error.traceback), is_not_implemented=error.is_not_implemented,
            location=(valid_unicode(error.location[0]), error.location[1]) if error.location else None)
    if isinstance(reply.value, list):  # a batch: one reply per operation
        return [_unwrap(item, decoder, refused) for item in reply.value]
    answer = protocol.Answer.from_json(reply.value)
    if answer is None:
        return None
    result = decoder.decode(answer.result)
    if answer.returns_args:
        return CallRecord(result, tuple(decoder.decode(answer.args)), decoder.decode(answer.kwargs))
    return result


class OmittedCache:
    """Stands in, for an observer of a check's answers, for the cache a forward pass returned beside its
    output: what a layer keeps for its backward pass is the student's to choose, so two forward passes
    with the same output answer alike whatever their caches hold."""

    def __repr__(self) -> str:
        return "<cache>"


OMITTED_CACHE = OmittedCache()


def is_forward_pass(target: str) -> bool:
    """Whether a called function, named as `_called_targets` names it, is a layer's forward pass
    (`layers.Linear.forward`, `layers.affine_forward`), whose second result is its cache."""
    last = target.rpartition(".")[2]
    return last == "forward" or last.endswith("_forward")


def without_cache(value: Any) -> Any:
    """A forward pass's answer, (out, cache) or a call record of it, with the cache left out."""
    if isinstance(value, CallRecord):
        return CallRecord(without_cache(value.result), value.args, value.kwargs)
    if isinstance(value, tuple) and len(value) == 2:
        return (value[0], OMITTED_CACHE)
    return value


@dataclass
class _Where:
    """What a RemoteObject stands for: a target in the worker of `session` that was live at
    `generation`, and the type the worker named for its handle."""

    session: WorkerSession
    target: protocol.Target
    generation: int
    type_name: str = ""
    root: Optional["RemoteObject"] = None          # a path keeps its root handle alive
    finalizer: Optional[weakref.finalize] = None

    def live_target(self) -> protocol.Target:
        if self.target.handle is not None and self.generation != self.session.generation:
            raise WorkerCrashed("this object belonged to a worker that has since been stopped")
        return self.target

    def handle_id(self) -> int:
        if self.target.path:
            raise TypeError("only a whole object can be passed back, not a path into it")
        assert self.target.handle is not None
        self.live_target()
        return self.target.handle

    def modules(self) -> list[str]:
        return [self.target.module] if self.target.module is not None else []


def _where(obj: "RemoteObject") -> _Where:
    return object.__getattribute__(obj, "_RemoteObject__where")


class RemoteObject:
    """A path to something in the worker: a module attribute, or an attribute or item of a handle.

    Every attribute name is the student's: the object's own state sits in one name-mangled slot, and
    what the grader does with it besides calling, assigning and indexing goes through this module's
    functions (`call`, `call_keeping`, and grader.checking's `fetch` and `inspect_call`), so no student attribute
    (`fetch`, `_modules`, `_call`) is ever shadowed."""

    __slots__ = ("__where", "__weakref__")

    def __init__(self, session: WorkerSession, target: protocol.Target, generation: int, type_name: str = ""):
        finalizer = None
        if target.handle is not None and not target.path:
            finalizer = weakref.finalize(self, session.release, target.handle, generation)
        object.__setattr__(self, "_RemoteObject__where", _Where(session, target, generation, type_name,
                                                                finalizer=finalizer))

    # -- paths (no round trip) --------------------------------------------------------------------

    def __extend(self, step: protocol.Step) -> RemoteObject:
        where = _where(self)
        child = RemoteObject(where.session, where.target.then(step), where.generation, where.type_name)
        _where(child).root = self
        return child

    def __getattr__(self, name: str) -> RemoteObject:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__extend(protocol.Step("attr", name))

    def __getitem__(self, key: Any) -> RemoteObject:
        encoder = wire.Encoder(wire.refuse_objects)
        node = encoder.encode(key)
        if encoder.buffers:
            raise TypeError("item keys must be numbers or strings")
        return self.__extend(protocol.Step("item", node))

    def __iter__(self) -> Iterator[Any]:
        # Without it Python would iterate by indexing 0, 1, 2, ..., and indexing builds a path without
        # asking the worker, so `tuple(handle)` would never end (and take the grader's memory with it).
        raise TypeError(f"{self!r} is a path into the worker and cannot be iterated: fetch it, or index it")

    def __repr__(self) -> str:
        target = _where(self).target
        path = ".".join(str(step.key) for step in target.path)
        root = target.module or f"<{_where(self).type_name or 'object'} #{target.handle}>"
        return f"RemoteObject({root}{'.' + path if path else ''})"

    # -- operations (one round trip each) ---------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call(self, args, kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        where = _where(self)
        encoder = where.session.encoder()
        operation = protocol.SetAttr(where.live_target(), name, encoder.encode(value))
        where.session.perform(operation, encoder, where.modules())

    def __setitem__(self, key: Any, value: Any) -> None:
        where = _where(self)
        encoder = where.session.encoder()
        where.session.perform(setitem_operation(self, encoder, key, value), encoder, where.modules())

    # The check-facing operations, polymorphic with the reference's objects (see grader.checking).
    def __inspect_call__(self, *args: Any, **kwargs: Any) -> CallRecord:
        return call(self, args, kwargs, return_args=True)

    def __fetch__(self, keep: bool = False) -> Any:
        where = _where(self)
        encoder = where.session.encoder()
        return where.session.perform(protocol.Fetch(where.live_target(), keep), encoder, where.modules())


# -- what the grader does with a RemoteObject -----------------------------------------------------------

def call_operation(obj: RemoteObject, encoder: wire.Encoder, args: Sequence, kwargs: dict, *,
                   select: Sequence[int] = (), keep: bool = False, keep_items: Sequence[int] = (),
                   return_args: bool = False) -> protocol.Call:
    """The request that calls `obj` (see protocol.Call for the options)."""
    return protocol.Call(_where(obj).live_target(), encoder.encode(list(args)), encoder.encode(dict(kwargs)),
                         tuple(select), keep, tuple(keep_items), return_args)


def setitem_operation(obj: RemoteObject, encoder: wire.Encoder, key: Any, value: Any) -> protocol.SetItem:
    return protocol.SetItem(_where(obj).live_target(), encoder.encode(key), encoder.encode(value))


def call(obj: RemoteObject, args: Sequence, kwargs: dict, *, select: Sequence[int] = (), keep: bool = False,
         keep_items: Sequence[int] = (), return_args: bool = False, timeout_s: float | None = None) -> Any:
    """Calls `obj` in the worker, with the options of protocol.Call and the session's call limit
    (or `timeout_s`)."""
    where = _where(obj)
    encoder = where.session.encoder()
    operation = call_operation(obj, encoder, args, kwargs, select=select, keep=keep, keep_items=keep_items,
                               return_args=return_args)
    answer = where.session.perform(operation, encoder, where.modules(), timeout_s)
    if return_args and not _answers_the_arguments_sent(answer, args, kwargs):
        # The arguments as the call left them are one value for each argument sent: a check walks them
        # beside its own, and an answer with fewer would leave some of its comparisons undone.
        raise WorkerCrashed("the worker's answer does not hold the arguments of the call it answers")
    return answer


def _answers_the_arguments_sent(answer: Any, args: Sequence, kwargs: dict) -> bool:
    return (isinstance(answer, CallRecord) and len(answer.args) == len(args) and type(answer.kwargs) is dict
            and set(answer.kwargs) == set(kwargs))


def call_keeping(obj: RemoteObject, *args: Any, items: Sequence[int], **kwargs: Any) -> Any:
    """Calls and leaves the result's items at `items` in the worker, as handles: a layer's cache goes
    back to its backward pass exactly as the forward pass left it."""
    return call(obj, args, kwargs, keep_items=items)


def perform_batch(session: WorkerSession, steps: Sequence[tuple[RemoteObject, protocol.Operation]],
                  encoder: wire.Encoder) -> list[Any]:
    """Operations on several objects (built with `encoder`) in one round trip, answered in order."""
    modules = sorted({module for obj, _ in steps for module in _where(obj).modules()})
    return session.perform(protocol.Batch(tuple(operation for _, operation in steps)), encoder, modules)


def session_of(obj: RemoteObject) -> WorkerSession:
    return _where(obj).session


def type_name(obj: RemoteObject) -> str:
    """The type the worker named for the object's handle ("" for a module's attribute)."""
    return _where(obj).type_name


def display_name(obj: RemoteObject) -> str:
    """The path as a student would write it, without the module: `Linear.forward`, `affine_forward`."""
    return ".".join(_where(obj).target.attribute_names()) or repr(obj)


class StudentProxy:
    """The `student` fixture: `student.<module>.<name>` is a lazy path into the submission (or into
    the sub-package `prefix` of what the worker loaded, for a worker that holds several)."""

    def __init__(self, session: WorkerSession, prefix: str = ""):
        self._session = session
        self._prefix = f"{prefix}." if prefix else ""

    def __getattr__(self, module: str) -> RemoteObject:
        if module.startswith("_"):
            raise AttributeError(module)
        return RemoteObject(self._session, protocol.Target(module=self._prefix + module), 0)
