"""The plain-data format that crosses between the grader and the worker.

A message is a JSON header plus a list of raw byte buffers. Arrays and tensors travel as
dtype + shape + bytes; numbers, strings, None, lists, tuples and dicts as JSON nodes; anything else
the worker holds stays there and crosses as a handle id. Nothing is ever unpickled.

Both sides import this module. `decode` is the grader's defence: it accepts only the node types
below, an allow-list of dtypes, sizes that add up, bounded nesting, and it rebuilds every array as
a fresh base `numpy.ndarray` / `torch.Tensor`, so no subclass or override survives the crossing.
torch is imported only when a tensor actually crosses (NumPy assignments never pay for it).
"""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import numpy as np

MAGIC = b"GRW1"
_FRAME = struct.Struct("!4sQI")  # magic, header length, number of buffers
_BUFFER_LENGTH = struct.Struct("!Q")

MAX_DEPTH = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_BUFFERS = 1_000_000

NUMPY_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"]
)
TORCH_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16", "float32",
     "float64", "complex64", "complex128"]
)


class WireError(ValueError):
    """A message that does not follow the format (never trusted, never half decoded)."""


class TooLarge(WireError):
    """A message over the reader's size limit, refused before its buffers are read."""


@dataclass(frozen=True)
class NonContiguous:
    """An array or tensor to be rebuilt on the other side as a non-contiguous view of the same values
    (the last two axes stored transposed): a check's way to send input that `.view()` rejects."""

    value: Any


@dataclass(frozen=True)
class HandleRef:
    """A reference to an object that stays in the worker."""

    id: int
    type_name: str = ""


# ---------------------------------------------------------------- encoding (both sides)


class Encoder:
    """Turns a value into (JSON node, buffers). `on_object` decides what to do with anything that
    is not plain: the worker turns it into a handle, the grader refuses it."""

    def __init__(self, on_object: Callable[[Any], Any]):
        self._on_object = on_object
        self.buffers: list[bytes] = []

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return value if not isinstance(value, str) else str(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            value = float(value)
            return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
        if isinstance(value, np.ndarray):
            return self._array(value)
        if isinstance(value, np.generic) and value.dtype.name in NUMPY_DTYPES:
            return {"$": "npscalar", "dtype": value.dtype.str, "buf": self._buffer(value.tobytes())}
        if isinstance(value, np.dtype) and value.name in NUMPY_DTYPES:
            return {"$": "dtype", "lib": "numpy", "name": value.name, "as": "dtype"}
        if isinstance(value, type) and issubclass(value, np.generic) and np.dtype(value).name in NUMPY_DTYPES:
            return {"$": "dtype", "lib": "numpy", "name": np.dtype(value).name, "as": "type"}
        if isinstance(value, HandleRef):
            return {"$": "handle", "id": value.id, "type": value.type_name}
        if isinstance(value, NonContiguous):
            node = self.encode(value.value, depth + 1)
            if isinstance(node, dict) and node.get("$") in ("ndarray", "tensor"):
                node["layout"] = "noncontiguous"
            return node
        torch = sys.modules.get("torch")
        if torch is not None:
            node = self._torch_value(value, torch)
            if node is not None:
                return node
        if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
            kind = "list" if type(value) is list else "tuple"
            return {"$": kind, "items": [self.encode(item, depth + 1) for item in value]}
        if type(value) is dict or type(value) is OrderedDict:
            # An OrderedDict is a dict that remembers its order, as every dict now does: it arrives as
            # one (read through dict's own items, not a method the sender could have replaced).
            return {"$": "dict", "items": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                           for k, v in dict.items(value)]}
        return self._on_object(value)

    def _torch_value(self, value: Any, torch: Any) -> Any:
        """The node of a tensor, torch dtype or device; None for any other value. The types are looked
        up, not assumed: another thread may be importing torch, and a type not defined yet has no
        instances."""
        if isinstance(value, getattr(torch, "Tensor", ())):
            return self._tensor(value, torch)
        if isinstance(value, getattr(torch, "dtype", ())):
            name = str(value).removeprefix("torch.")
            if name in TORCH_DTYPES:
                return {"$": "dtype", "lib": "torch", "name": name}
        if isinstance(value, getattr(torch, "device", ())):
            return {"$": "device", "name": str(value)}
        return None

    def _buffer(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def _array(self, array: np.ndarray) -> Any:
        if array.dtype.name not in NUMPY_DTYPES:
            return self._on_object(array)
        data = np.ascontiguousarray(array).tobytes()
        return {"$": "ndarray", "dtype": array.dtype.str, "shape": list(array.shape),
                "buf": self._buffer(data)}

    def _tensor(self, tensor: Any, torch: Any) -> Any:
        dtype_name = str(tensor.dtype).removeprefix("torch.")
        if dtype_name not in TORCH_DTYPES or tensor.layout != torch.strided or tensor.is_quantized:
            return self._on_object(tensor)
        flat = tensor.detach()
        if flat.device.type != "cpu":
            flat = flat.cpu()
        if dtype_name != "bfloat16" and not flat.is_conj() and not flat.is_neg():
            data = flat.numpy().tobytes()  # in row-major order, whatever the layout
        else:  # no NumPy type (bfloat16), or a lazily conjugated or negated view: its bytes as stored
            flat = flat.resolve_conj().resolve_neg().contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        return {"$": "tensor", "dtype": dtype_name, "shape": list(tensor.shape),
                "device": str(tensor.device), "requires_grad": bool(tensor.requires_grad),
                "buf": self._buffer(data)}


def refuse_objects(value: Any) -> Any:
    raise WireError(f"cannot send a {type(value).__name__} to the worker: only plain data crosses")


# ---------------------------------------------------------------- decoding (the grader's guard)


class Decoder:
    """Rebuilds values from (JSON node, buffers). `on_handle` turns a handle node into whatever the
    receiving side uses for it."""

    def __init__(self, buffers: list[bytes], on_handle: Callable[[HandleRef], Any]):
        self._buffers = buffers
        self._on_handle = on_handle

    def decode(self, node: Any, depth: int = 0) -> Any:
        """The value `node` stands for; WireError for anything that is not a node this format writes
        (whatever a decoding step would raise on it: a shape too large for an array, a dtype of the
        wrong kind), so that a malformed answer is the sender's fault, never the reader's crash."""
        try:
            return self._decode(node, depth)
        except WireError:
            raise
        except (ValueError, TypeError, OverflowError, KeyError, IndexError, AttributeError, RecursionError,
                MemoryError) as exc:
            raise WireError(f"a value cannot be decoded: {type(exc).__name__}: {exc}") from None

    def _decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is not dict:
            raise WireError(f"unexpected JSON node of type {type(node).__name__}")
        kind = node.get("$")
        if kind in ("list", "tuple"):
            items = [self._decode(item, depth + 1) for item in _list(node, "items")]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            result = {}
            for pair in _list(node, "items"):
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("dict item is not a key/value pair")
                key = self._decode(pair[0], depth + 1)
                if not isinstance(key, (str, int, float, bool, tuple, type(None))):
                    raise WireError(f"dict key of type {type(key).__name__} is not allowed")
                result[key] = self._decode(pair[1], depth + 1)
            return result
        if kind == "float":
            text = node.get("v")
            if text not in ("nan", "inf", "-inf"):
                raise WireError(f"bad non-finite float {text!r}")
            return float(text)
        if kind == "ndarray":
            return self._array(node)
        if kind == "npscalar":
            dtype = _numpy_dtype(node.get("dtype"))
            data = self._buffer(node)
            if len(data) != dtype.itemsize:
                raise WireError("numpy scalar has the wrong number of bytes")
            return _array_from_bytes(data, dtype)[0].copy()
        if kind == "tensor":
            return self._tensor(node)
        if kind == "dtype":
            return self._dtype(node)
        if kind == "device":
            import torch

            if type(node.get("name")) is not str:
                raise WireError("bad device")
            return torch.device(node["name"])
        if kind == "handle":
            handle_id, type_name = node.get("id"), node.get("type", "")
            if type(handle_id) is not int or type(type_name) is not str:
                raise WireError("bad handle node")
            return self._on_handle(HandleRef(handle_id, type_name))
        raise WireError(f"unknown node type {kind!r}")

    def _dtype(self, node: dict) -> Any:
        name = node.get("name")
        if node.get("lib") == "torch":
            if name not in TORCH_DTYPES:
                raise WireError(f"torch dtype {name!r} is not allowed")
            import torch

            return getattr(torch, name)
        dtype = _numpy_dtype(name)
        return dtype if node.get("as") == "dtype" else dtype.type

    def _buffer(self, node: dict) -> bytes:
        index = node.get("buf")
        if type(index) is not int or not 0 <= index < len(self._buffers):
            raise WireError("buffer index out of range")
        return self._buffers[index]

    def _array(self, node: dict) -> np.ndarray:
        dtype = _numpy_dtype(node.get("dtype"))
        shape = _shape(node.get("shape"))
        data = self._buffer(node)
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise WireError(f"array of shape {tuple(shape)} and dtype {dtype} has {len(data)} bytes")
        # A writable, owning, base ndarray built by grader code.
        array = _array_from_bytes(data, dtype).reshape(shape).copy()
        if node.get("layout") == "noncontiguous" and array.ndim >= 2:
            array = np.swapaxes(np.swapaxes(array, -1, -2).copy(), -1, -2)
        return array

    def _tensor(self, node: dict) -> Any:
        import torch

        dtype_name = node.get("dtype")
        if dtype_name not in TORCH_DTYPES:
            raise WireError(f"tensor dtype {dtype_name!r} is not allowed")
        dtype = getattr(torch, dtype_name)
        shape = _shape(node.get("shape"))
        data = self._buffer(node)
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise WireError(f"tensor of shape {tuple(shape)} and dtype {dtype_name} has {len(data)} bytes")
        # Over a fresh bytearray, then cloned: a writable, owning, resizable tensor built by this code.
        raw = torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)
        tensor = raw.reshape(shape).clone()
        device = node.get("device", "cpu")
        if type(device) is not str:
            raise WireError("bad tensor device")
        if device != "cpu" and torch.cuda.is_available():
            tensor = tensor.to(device)
        if node.get("layout") == "noncontiguous" and tensor.dim() >= 2:
            tensor = tensor.transpose(-1, -2).contiguous().transpose(-1, -2)
        if node.get("requires_grad") is True and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor


def _array_from_bytes(data: bytes, dtype: np.dtype) -> np.ndarray:
    """The values of `data`, read as `dtype`. A bool is one byte that numpy keeps as it is: the
    sender's bytes other than 0 and 1 become 1, so that no two True differ (in their bytes, a
    digest, a view as integers). Torch makes them 1 itself when it copies a bool tensor."""
    if dtype == np.bool_:
        return np.frombuffer(data, dtype=np.uint8) != 0
    return np.frombuffer(data, dtype=dtype)


def _list(node: dict, key: str) -> list:
    value = node.get(key)
    if type(value) is not list:
        raise WireError(f"{key!r} must be a list")
    return value


def _shape(shape: Any) -> list[int]:
    if type(shape) is not list or len(shape) > 32 or any(type(d) is not int or d < 0 for d in shape):
        raise WireError(f"bad shape {shape!r}")
    return shape


def _numpy_dtype(text: Any) -> np.dtype:
    if type(text) is not str:
        raise WireError("dtype must be a string")
    try:
        dtype = np.dtype(text)
    except TypeError as exc:
        raise WireError(f"unknown dtype {text!r}") from exc
    if dtype.name not in NUMPY_DTYPES:
        raise WireError(f"dtype {dtype.name} is not allowed")
    return dtype


# ---------------------------------------------------------------- framing


def write_message(stream: BinaryIO, header: dict, buffers: list[bytes]) -> None:
    payload = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    parts = [_FRAME.pack(MAGIC, len(payload), len(buffers)), payload]
    for buffer in buffers:
        parts.append(_BUFFER_LENGTH.pack(len(buffer)))
        parts.append(buffer)
    # A raw stream's write may take only part of the bytes (a pipe write interrupted by a signal, a
    # stop and continue included, returns what it wrote): the rest is written until none is left.
    remaining = memoryview(b"".join(parts))
    while remaining:
        written = stream.write(remaining)
        if written is None:  # a non-blocking stream that could take nothing now
            raise BlockingIOError("the stream took none of the message")
        remaining = remaining[written:]
    stream.flush()


def read_message(read_exactly: Callable[[int], bytes], max_bytes: int) -> tuple[dict, list[bytes]]:
    """Reads one message; `read_exactly(n)` returns exactly n bytes or raises EOFError."""
    magic, header_length, buffer_count = _FRAME.unpack(read_exactly(_FRAME.size))
    if magic != MAGIC:
        raise WireError("message does not start with the protocol's magic bytes")
    if header_length > MAX_HEADER_BYTES or buffer_count > MAX_BUFFERS:
        raise WireError("message header too large")
    total = header_length
    header_bytes = read_exactly(header_length)
    buffers = []
    for _ in range(buffer_count):
        (length,) = _BUFFER_LENGTH.unpack(read_exactly(_BUFFER_LENGTH.size))
        total += length
        if total > max_bytes:
            raise TooLarge(f"message larger than the {max_bytes} byte limit")
        buffers.append(read_exactly(length))
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError, MemoryError) as exc:
        # Not only malformed JSON: JSON nested past the parser's recursion limit, or an integer of more
        # digits than Python converts, is the sender's doing too, never the reader's failure.
        raise WireError(f"message header is not JSON that can be read: {type(exc).__name__}: {exc}") from None
    if type(header) is not dict:
        raise WireError("message header is not a JSON object")
    return header, buffers


def pack(value: Any) -> bytes:
    """A self-contained byte string for a plain value (used for stored fixtures and digests)."""
    encoder = Encoder(refuse_objects)
    node = encoder.encode(value)
    stream = io.BytesIO()
    write_message(stream, {"value": node}, encoder.buffers)
    return stream.getvalue()


def unpack(data: bytes, on_handle: Callable[[HandleRef], Any] | None = None) -> Any:
    view = memoryview(data)
    position = 0

    def read_exactly(n: int) -> bytes:
        nonlocal position
        if position + n > len(view):
            raise WireError("truncated data")
        chunk = bytes(view[position:position + n])
        position += n
        return chunk

    header, buffers = read_message(read_exactly, max_bytes=len(data))

    def refuse_handle(ref: HandleRef) -> Any:
        raise WireError("stored data may not contain handles")

    return Decoder(buffers, on_handle or refuse_handle).decode(header.get("value"))
