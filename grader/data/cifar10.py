"""Find, verify, download and cache CIFAR-10.

The archive is looked for in the explicit `data_dir` (`--data-dir`), then `$CIFAR10_DIR`, then
the user cache directory, downloaded into the first of them when missing and allowed, verified
against its md5, and converted once into a uint8 cache of `.npy` files that later loads read in
a few tens of milliseconds. The cache is written under a file lock, each file atomically, with its
description (`dataset.json`) last, so concurrent graders never see or write half a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path
from typing import BinaryIO

import numpy as np
import platformdirs
from filelock import FileLock

from grader.data.cifar_archive import ARCHIVE_NAME, DatasetError, ImageDataset, read_archive
from grader.files import atomic_file, write_atomically

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_DIR_NAME = "cifar-10-uint8"
CACHE_FORMAT = 1
_DESCRIPTION = "dataset.json"
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
_CHUNK = 1 << 20


class DatasetUnavailable(DatasetError):
    """The dataset is not on this machine and could not be downloaded. `summary` says it in one line
    that still names where the archive goes (a report's table shows one line); str() says it all."""

    def __init__(self, message: str, summary: str = ""):
        super().__init__(message)
        self.summary = summary or message.splitlines()[0]


def default_data_dir() -> Path:
    """Where CIFAR-10 goes when no directory is named: the user cache directory."""
    return Path(platformdirs.user_cache_dir("grader")) / "cifar10"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The directories searched for the archive, in order, each with where it came from."""
    dirs = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "--data-dir"))
    if os.environ.get("CIFAR10_DIR"):
        dirs.append((Path(os.environ["CIFAR10_DIR"]).expanduser(), "$CIFAR10_DIR"))
    dirs.append((default_data_dir(), "user cache directory"))
    return dirs


def file_md5(path: str | os.PathLike) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- the uint8 cache ---------------------------------------------------------------------------


def read_cache(
    cache_dir: str | os.PathLike, expected_md5: str | None = None, *, mmap: bool = False
) -> ImageDataset | None:
    """The dataset in a complete uint8 cache, or None when there is none (or it does not match)."""
    cache_dir = Path(cache_dir)
    try:
        description = json.loads((cache_dir / _DESCRIPTION).read_text())
        if description.get("format") != CACHE_FORMAT:
            return None
        if expected_md5 is not None and description.get("archive_md5") != expected_md5:
            return None
        arrays = {
            name: np.load(cache_dir / f"{name}.npy", mmap_mode="r" if mmap else None)
            for name in _ARRAYS
        }
        dataset = ImageDataset(
            **arrays,
            class_names=tuple(description["class_names"]),
            source=description["source"],
        )
        if (len(dataset.train_labels), len(dataset.test_labels)) != (
            description["num_train"],
            description["num_test"],
        ):
            return None
        return dataset
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Missing, half-removed or damaged: the caller rebuilds it from the archive.
        return None


def _write_cache(cache_dir: Path, dataset: ImageDataset, archive: Path, archive_md5: str) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / _DESCRIPTION).unlink(missing_ok=True)  # incomplete until rewritten last
    for name in _ARRAYS:
        array = np.ascontiguousarray(getattr(dataset, name))
        with atomic_file(cache_dir / f"{name}.npy", durable=True, mode=0o600) as file:
            np.save(file, array)
    description = {
        "format": CACHE_FORMAT,
        "source": dataset.source,
        "class_names": list(dataset.class_names),
        "archive": str(archive),
        "archive_md5": archive_md5,
        "num_train": len(dataset.train_labels),
        "num_test": len(dataset.test_labels),
    }
    text = json.dumps(description, indent=2).encode()
    write_atomically(cache_dir / _DESCRIPTION, text, durable=True, mode=0o600)


def load_archive(
    archive: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    expected_md5: str | None,
    source: str,
    mmap: bool = False,
    remedy: str | None = None,
) -> ImageDataset:
    """Load an archive through its uint8 cache, building the cache on first use.

    With `expected_md5` the archive is verified before it is read. `remedy` ends the message of
    any error about the archive (what the user should do about it).
    """
    archive, cache_dir = Path(archive), Path(cache_dir)
    dataset = read_cache(cache_dir, expected_md5, mmap=mmap)
    if dataset is not None:
        return dataset
    if remedy is None:
        remedy = f"Delete {archive} and put a good copy in its place."
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir.parent / f"{cache_dir.name}.lock"):
        dataset = read_cache(cache_dir, expected_md5, mmap=mmap)
        if dataset is not None:  # another grader built it while we waited
            return dataset
        if not archive.is_file():
            raise DatasetError(f"{archive} does not exist. {remedy}")
        md5 = file_md5(archive)
        if expected_md5 is not None and md5 != expected_md5:
            raise DatasetError(
                f"{archive} has md5 {md5}, expected {expected_md5}: it is truncated, corrupt "
                f"or a different file. {remedy}"
            )
        try:
            dataset = read_archive(archive, source=source)
        except DatasetError as error:
            raise type(error)(f"{error}. {remedy}") from error
        _write_cache(cache_dir, dataset, archive, md5)
    if mmap:
        return read_cache(cache_dir, expected_md5, mmap=True) or dataset
    return dataset


# --- download ----------------------------------------------------------------------------------


def _open_url(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=60)


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def download_archive(
    directory: str | os.PathLike,
    *,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    progress: bool = True,
) -> Path:
    """Download the archive into `directory` and return its path.

    The bytes go to a temporary file in the same directory and are renamed into place only when
    complete and matching `md5`; on any failure, Ctrl-C included, nothing is left behind. Two
    graders downloading at once take turns, and the second finds the first one's file.
    Raises OSError (network, disk) or DatasetError (md5 mismatch).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / ARCHIVE_NAME
    with FileLock(directory / f"{ARCHIVE_NAME}.lock"):
        if target.is_file():
            return target
        digest = hashlib.md5()
        with atomic_file(target, durable=True, mode=0o600) as file, _open_url(url) as response:
            length = response.headers.get("Content-Length")
            with _progress_bar(progress) as bar:
                task = bar.add_task(
                    f"Downloading {ARCHIVE_NAME}", total=int(length) if length else None
                )
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    bar.advance(task, len(chunk))
            if md5 is not None and digest.hexdigest() != md5:
                raise DatasetError(
                    f"the file downloaded from {url} has md5 {digest.hexdigest()}, expected {md5}"
                )
    return target


# --- the public loader -------------------------------------------------------------------------


def _unavailable(dirs: list[tuple[Path, str]], reason: str, md5: str | None) -> DatasetUnavailable:
    places = "\n".join(f"  - {path}  ({origin})" for path, origin in dirs)
    checksum = f" (md5 {md5})" if md5 else ""
    return DatasetUnavailable(
        f"CIFAR-10 is not available: there is no {ARCHIVE_NAME} in\n{places}\n"
        f"and {reason}.\n"
        f"Put the official {ARCHIVE_NAME}{checksum} from {CIFAR10_URL} into one of these "
        f"directories, or into any directory you then name with --data-dir or $CIFAR10_DIR.",
        summary=f"CIFAR-10 is not available: put {ARCHIVE_NAME} into {dirs[0][0]} or a folder named by "
                "--data-dir (details below)" if dirs else "",
    )


def _cache_dir_for(archive: Path) -> Path:
    # Beside the archive when we may write there (a shared read-only copy gets a per-user cache).
    if os.access(archive.parent, os.W_OK):
        return archive.parent / CACHE_DIR_NAME
    return default_data_dir() / CACHE_DIR_NAME


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    mmap: bool = False,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    progress: bool = True,
) -> ImageDataset:
    """CIFAR-10: 50000 training and 10000 test images, (N, 3, 32, 32) uint8, labels int64.

    Searches `data_dir`, `$CIFAR10_DIR` and the user cache directory for a ready uint8 cache,
    then for `cifar-10-python.tar.gz`; downloads it into the first of them when missing and
    `download` is set. Raises DatasetUnavailable when it is nowhere to be had, DatasetError when
    the archive found is corrupt.
    """
    dirs = search_dirs(data_dir)
    for directory, _ in dirs:
        dataset = read_cache(directory / CACHE_DIR_NAME, md5, mmap=mmap)
        if dataset is not None:
            return dataset
    archive = next((d / ARCHIVE_NAME for d, _ in dirs if (d / ARCHIVE_NAME).is_file()), None)
    if archive is None:
        if not download:
            raise _unavailable(dirs, "downloading was not allowed", md5)
        try:
            archive = download_archive(dirs[0][0], url=url, md5=md5, progress=progress)
        except (OSError, DatasetError) as error:
            raise _unavailable(dirs, f"the download from {url} failed: {error}", md5) from error
    remedy = (
        f"Delete it and run again to download a fresh copy, or put a good copy of "
        f"{ARCHIVE_NAME}{f' (md5 {md5})' if md5 else ''} in its place."
    )
    return load_archive(
        archive,
        _cache_dir_for(archive),
        expected_md5=md5,
        source="cifar10",
        mmap=mmap,
        remedy=remedy,
    )
