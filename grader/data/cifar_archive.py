"""Read and write the CIFAR-10 python archive (`cifar-10-python.tar.gz`).

The archive holds a directory `cifar-10-batches-py/` with `data_batch_1` .. `data_batch_5`,
`test_batch` and `batches.meta`, each a protocol-2 pickle written by Python 2. A batch is a dict
with byte-string keys: `b"data"` (uint8 array (N, 3072): the red plane, then green, then blue, each
32x32 row-major), `b"labels"` (list of int), `b"batch_label"` and `b"filenames"`. `batches.meta`
holds `b"label_names"`, `b"num_cases_per_batch"` and `b"num_vis"`.

Reading streams through the tar file without extracting anything, and unpickles with an
unpickler that can build numpy arrays and nothing else: an archive never runs code. Writing
produces the same opcodes the Python 2 original has (so the one reader serves both), with fixed
timestamps and owners, so equal data gives equal bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from grader.files import atomic_file

ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
PIXELS_PER_IMAGE = 3 * 32 * 32

# Official members are about 31 MB; anything far larger is not a CIFAR batch.
MAX_MEMBER_BYTES = 256 * 1024 * 1024


class DatasetError(Exception):
    """A dataset is missing, corrupt or unreadable; the message says which file and what to do."""


class UnsafeArchiveError(DatasetError):
    """An archive tried to do more than a CIFAR batch needs (run code, escape its directory)."""


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset split into train and test."""

    train_images: np.ndarray  # (N, 3, 32, 32) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, 3, 32, 32) uint8
    test_labels: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]
    source: str  # "cifar10" | "synthetic"

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
                raise ValueError(
                    f"{split}_images must be uint8 of shape (N, 3, 32, 32), "
                    f"got {images.dtype} {images.shape}"
                )
            if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be int64 of shape ({images.shape[0]},), "
                    f"got {labels.dtype} {labels.shape}"
                )


# --- reading -----------------------------------------------------------------------------------


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# (module, name) -> object. Python 2 era files name numpy.core; numpy 2 writes numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise UnsafeArchiveError(
                f"refused to load {module}.{name}: a CIFAR batch holds only numpy arrays and "
                "plain data, so this file is not one (and may try to run code)"
            )
        return factory()


def restricted_loads(data: bytes):
    """Unpickle `data` the way the CIFAR batches are meant to be read (bytes keys)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _check_member(path: Path, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or member.name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"{path}: member {member.name!r} points outside the archive")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"{path}: member {member.name!r} is a link or device, not a plain file"
        )


def _read_members(path: Path) -> dict[str, bytes]:
    """The bytes of the batch files in the archive, keyed by base name."""
    wanted = {f"{BATCH_DIR}/{name}" for name in (*TRAIN_BATCHES, TEST_BATCH, META)}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|gz") as tar:  # a stream: one pass, nothing extracted
            for member in tar:
                _check_member(path, member)
                member_name = member.name.removeprefix("./")
                if member_name not in wanted:
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise DatasetError(
                        f"{path}: member {member.name!r} is {member.size} bytes, "
                        "far larger than a CIFAR batch"
                    )
                stream = tar.extractfile(member)
                found[PurePosixPath(member_name).name] = stream.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DatasetError(f"{path} is truncated or not a gzipped tar file ({error})") from error
    missing = sorted(
        PurePosixPath(name).name for name in wanted if PurePosixPath(name).name not in found
    )
    if missing:
        raise DatasetError(f"{path} is incomplete: it lacks {', '.join(missing)} in {BATCH_DIR}/")
    return found


def _unpickle_member(path: Path, name: str, data: bytes) -> dict:
    try:
        content = restricted_loads(data)
    except UnsafeArchiveError as error:
        raise UnsafeArchiveError(f"{path}: {BATCH_DIR}/{name}: {error}") from error
    except Exception as error:  # a damaged pickle can fail in many ways
        raise DatasetError(
            f"{path}: {BATCH_DIR}/{name} is not a readable pickle ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(content, dict):
        raise DatasetError(
            f"{path}: {BATCH_DIR}/{name} holds a {type(content).__name__}, not a dict"
        )
    return content


def _batch_arrays(
    path: Path, name: str, batch: dict, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    where = f"{path}: {BATCH_DIR}/{name}"
    data = batch.get(b"data")
    labels = batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{where}: b'data' is not a 2-d uint8 array")
    if data.shape[1] != PIXELS_PER_IMAGE:
        raise DatasetError(f"{where}: b'data' rows have {data.shape[1]} values, not 3072")
    if not isinstance(labels, (list, np.ndarray)):
        raise DatasetError(f"{where}: b'labels' is not a list")
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise DatasetError(f"{where}: b'labels' are not all integers") from error
    if label_array.shape != (data.shape[0],):
        raise DatasetError(f"{where}: {len(label_array)} labels for {data.shape[0]} images")
    if label_array.size and (label_array.min() < 0 or label_array.max() >= num_classes):
        raise DatasetError(f"{where}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, *IMAGE_SHAPE), label_array


def read_archive(path: str | os.PathLike, *, source: str = "cifar10") -> ImageDataset:
    """Read a `cifar-10-python.tar.gz`-format archive into memory.

    Raises DatasetError naming the file and what is wrong with it (UnsafeArchiveError when it
    holds anything but plain data and numpy arrays).
    """
    path = Path(path)
    members = _read_members(path)
    meta = _unpickle_member(path, META, members[META])
    label_names = meta.get(b"label_names")
    if not isinstance(label_names, list) or not all(isinstance(n, bytes) for n in label_names):
        raise DatasetError(f"{path}: {BATCH_DIR}/{META} has no list of b'label_names'")
    class_names = tuple(name.decode("utf-8", errors="replace") for name in label_names)

    def split(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [
            _batch_arrays(path, name, _unpickle_member(path, name, members[name]), len(class_names))
            for name in names
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    train_images, train_labels = split(TRAIN_BATCHES)
    test_images, test_labels = split((TEST_BATCH,))
    return ImageDataset(train_images, train_labels, test_images, test_labels, class_names, source)


# --- writing -----------------------------------------------------------------------------------

# Pickle opcodes, as Python 2's cPickle wrote them at protocol 2.
_PROTO_2 = b"\x80\x02"
_STOP = b"."
_MARK = b"("
_EMPTY_DICT = b"}"
_SETITEMS = b"u"
_EMPTY_LIST = b"]"
_APPENDS = b"e"
_TUPLE = b"t"
_TUPLE1, _TUPLE2, _TUPLE3 = b"\x85", b"\x86", b"\x87"
_NONE = b"N"
_NEWTRUE, _NEWFALSE = b"\x88", b"\x89"
_REDUCE = b"R"
_BUILD = b"b"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _int(value: int) -> bytes:
    if 0 <= value < 0x100:
        return b"K" + bytes([value])
    if 0 <= value < 0x10000:
        return b"M" + struct.pack("<H", value)
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raise ValueError(f"integer {value} does not fit a CIFAR batch")


def _bytes(value: bytes) -> bytes:
    # A Python 2 str: what encoding="bytes" turns back into bytes.
    if len(value) < 0x100:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def _uint8_array(array: np.ndarray) -> bytes:
    # What numpy 1.x under Python 2 wrote for ndarray.__reduce__ and dtype.__reduce__.
    dtype = (
        _global("numpy", "dtype")
        + _bytes(b"u1")
        + _NEWFALSE
        + _NEWTRUE
        + _TUPLE3
        + _REDUCE
        + _MARK
        + _int(3)
        + _bytes(b"|")
        + _NONE
        + _NONE
        + _NONE
        + _int(-1)
        + _int(-1)
        + _int(0)
        + _TUPLE
        + _BUILD
    )
    shape = _MARK + b"".join(_int(n) for n in array.shape) + _TUPLE
    return (
        _global("numpy.core.multiarray", "_reconstruct")
        + _global("numpy", "ndarray")
        + _int(0)
        + _TUPLE1
        + _bytes(b"b")
        + _TUPLE3
        + _REDUCE
        + _MARK
        + _int(1)
        + shape
        + dtype
        + _NEWFALSE
        + _bytes(np.ascontiguousarray(array).tobytes())
        + _TUPLE
        + _BUILD
    )


def _value(value) -> bytes:
    if isinstance(value, bytes):
        return _bytes(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _int(int(value))
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return _uint8_array(value)
    if isinstance(value, list):
        if not value:
            return _EMPTY_LIST
        return _EMPTY_LIST + _MARK + b"".join(_value(item) for item in value) + _APPENDS
    raise TypeError(f"cannot write {type(value).__name__} into a CIFAR batch")


def pickle_batch(batch: dict[bytes, object]) -> bytes:
    """A protocol-2 pickle of `batch` with the opcodes of the original Python 2 files."""
    items = b"".join(_bytes(key) + _value(value) for key, value in batch.items())
    return _PROTO_2 + _EMPTY_DICT + _MARK + items + _SETITEMS + _STOP


def _batch(images: np.ndarray, labels: np.ndarray, batch_label: str, class_names, start: int):
    filenames = [
        f"{class_names[label]}_s_{start + i:06d}.png".encode() for i, label in enumerate(labels)
    ]
    return {
        b"batch_label": batch_label.encode(),
        b"labels": [int(label) for label in labels],
        b"data": images.reshape(len(images), PIXELS_PER_IMAGE),
        b"filenames": filenames,
    }


def _tar_info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if directory else 0o644
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def write_archive(
    path: str | os.PathLike, dataset: ImageDataset, *, compresslevel: int = 1
) -> Path:
    """Write `dataset` as a `cifar-10-python.tar.gz`-format archive, atomically.

    The train split is cut into the five `data_batch_*` files. Equal data and compression level
    give equal bytes: no timestamps, owners or file names go into the tar or gzip headers.
    """
    path = Path(path)
    class_names = [name.encode() for name in dataset.class_names]
    train_parts = np.array_split(np.arange(len(dataset.train_labels)), len(TRAIN_BATCHES))
    members = [
        (
            META,
            {
                b"num_cases_per_batch": len(train_parts[0]),
                b"label_names": class_names,
                b"num_vis": PIXELS_PER_IMAGE,
            },
        )
    ]
    for number, (name, indices) in enumerate(zip(TRAIN_BATCHES, train_parts, strict=True), start=1):
        images, labels = dataset.train_images[indices], dataset.train_labels[indices]
        label = f"training batch {number} of {len(TRAIN_BATCHES)}"
        members.append(
            (
                name,
                _batch(
                    images,
                    labels,
                    label,
                    dataset.class_names,
                    int(indices[0]) if len(indices) else 0,
                ),
            )
        )
    members.append(
        (
            TEST_BATCH,
            _batch(
                dataset.test_images,
                dataset.test_labels,
                "testing batch 1 of 1",
                dataset.class_names,
                0,
            ),
        )
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, durable=True, mode=0o600) as raw:
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        ) as compressed:
            with tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                tar.addfile(_tar_info(BATCH_DIR, 0, directory=True))
                for name, batch in members:
                    data = pickle_batch(batch)
                    tar.addfile(_tar_info(f"{BATCH_DIR}/{name}", len(data)), io.BytesIO(data))
    return path
