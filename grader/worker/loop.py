"""The worker's request loop: resolve a target, do one thing to it, send back plain data.

Requests arrive on a private pipe (never stdin/stdout, which belong to the student's prints).
Every request gets exactly one response; a student's exception, `sys.exit` or
`NotImplementedError` becomes an error response with the student's part of the traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from grader import wire
from grader.packages import install_package
from grader.worker.confine import ConfinementError, confine

CONFINEMENT_FAILED_EXIT = 71  # the grader's worker_process knows this status

PACKAGE = "submission"
MAX_MESSAGE_BYTES = 2 * 1024 * 1024 * 1024
_GRADER_DIR = str(Path(wire.__file__).resolve().parent)


def seed_global_generators(seed: int) -> None:
    """Seeds the generators student code draws from without being handed one (np.random, random,
    torch), so that a check gives the same answers however often and wherever it runs."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


class Worker:
    def __init__(self, submission_dir: Path):
        install_package(PACKAGE, [submission_dir])
        self.handles: dict[int, Any] = {}
        self.next_handle = 1

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

    def resolve(self, target: dict, decoder: wire.Decoder) -> Any:
        if "handle" in target:
            if target["handle"] not in self.handles:
                raise LookupError(f"handle {target['handle']} is unknown or was released")
            obj = self.handles[target["handle"]]
        else:
            obj = importlib.import_module(f"{PACKAGE}.{target['module']}")
        for kind, name in target.get("path", []):
            obj = getattr(obj, name) if kind == "attr" else obj[decoder.decode(name)]
        return obj

    # -- operations -----------------------------------------------------------------------------

    def run(self, op: dict, decoder: wire.Decoder, encoder: wire.Encoder) -> Any:
        kind = op["op"]
        if kind == "batch":
            return [self.run_guarded(sub, decoder, encoder) for sub in op["ops"]]
        if kind == "release":
            for handle_id in op["ids"]:
                self.handles.pop(handle_id, None)
            return None
        if kind == "ping":
            return {"pid": os.getpid()}
        if kind == "hold":  # data the grader hands to student code later, sent before any clock starts
            value = decoder.decode(op["value"])
            if op.get("device"):
                value = to_device(value, op["device"])
            return {"result": encoder.encode(self.keep(value))}
        if kind == "import":
            importlib.import_module(f"{PACKAGE}.{op['module']}")
            return None
        if kind == "seed":
            seed_global_generators(int(op["seed"]))
            return None
        target = self.resolve(op["target"], decoder)
        if kind == "call":
            args = decoder.decode(op["args"])
            kwargs = decoder.decode(op["kwargs"])
            result = target(*args, **kwargs)
            for index in op.get("select", []):
                result = result[index]
            if op.get("hold_items") and isinstance(result, tuple):
                # Parts that must stay here as they are (a cache holding an autograd graph, say)
                # cross as handles; the grader passes them back untouched.
                result = tuple(self.keep(item) if i in op["hold_items"] else item for i, item in enumerate(result))
            encoded = self.reply_value(result, op.get("keep", False), encoder)
            if op.get("return_args"):
                return {"result": encoded, "args": encoder.encode(args), "kwargs": encoder.encode(kwargs)}
            return {"result": encoded}
        if kind == "fetch":
            return {"result": self.reply_value(target, op.get("keep", False), encoder)}
        if kind == "setattr":
            setattr(target, op["name"], decoder.decode(op["value"]))
            return {"result": None}
        if kind == "setitem":
            target[decoder.decode(op["key"])] = decoder.decode(op["value"])
            return {"result": None}
        raise ValueError(f"unknown operation {kind!r}")

    def reply_value(self, value: Any, keep: bool, encoder: wire.Encoder) -> Any:
        if keep:
            return encoder.encode(self.keep(value))
        return encoder.encode(value)

    def run_guarded(self, op: dict, decoder: wire.Decoder, encoder: wire.Encoder) -> dict:
        try:
            return {"ok": True, "value": self.run(op, decoder, encoder)}
        except BaseException as exc:  # noqa: BLE001 - SystemExit from student code is an answer too
            return {"ok": False, "error": describe_exception(exc)}


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


def describe_exception(exc: BaseException) -> dict:
    """The exception as plain data, with the grader's own frames removed from the traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_GRADER_DIR)]
    location = [frames[-1].filename, frames[-1].lineno] if frames else None
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a student's exception whose __str__ raises
        message = "<the exception's message could not be shown>"
    if isinstance(exc, SystemExit):
        message = f"the code called sys.exit({exc.code!r})"
    lines = traceback.format_list(frames)
    text = "Traceback (most recent call last):\n" + "".join(lines) if lines else ""
    text += f"{type(exc).__name__}: {message}"
    return {
        "type": type(exc).__name__,
        "is_not_implemented": isinstance(exc, NotImplementedError),
        "message": message[:4000],
        "traceback": text[-16000:],
        "location": location,
    }


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
        for handle_id in header.get("release", []):
            worker.handles.pop(handle_id, None)
        encoder = worker.encoder()
        reply = worker.run_guarded(header["request"], worker.decoder(buffers), encoder)
        synchronize_gpu()
        reply["id"] = header["id"]
        try:
            wire.write_message(responses, reply, encoder.buffers)
        except (TypeError, ValueError) as exc:  # e.g. a student's number that JSON cannot hold
            wire.write_message(responses, {"id": header["id"], "ok": False, "error": describe_exception(exc)}, [])


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
    for library in settings.get("preload", []):  # e.g. torch, imported while the grader starts up
        importlib.import_module(library)
    worker = Worker(Path(settings["submission_dir"]))
    serve(worker, requests, responses)
