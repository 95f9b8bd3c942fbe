"""Finding, verifying, downloading and caching CIFAR-10, on small archives written locally."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from grader.data import cifar10
from grader.data.cifar10 import (
    CACHE_DIR_NAME,
    DatasetUnavailable,
    download_archive,
    file_md5,
    load_archive,
    load_cifar10,
    read_cache,
)
from grader.data.cifar_archive import ARCHIVE_NAME, DatasetError, ImageDataset, write_archive


def small_dataset(seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    return ImageDataset(
        train_images=rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8),
        train_labels=np.arange(60, dtype=np.int64) % 10,
        test_images=rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8),
        test_labels=np.arange(20, dtype=np.int64) % 10,
        class_names=tuple(f"class{i}" for i in range(10)),
        source="cifar10",
    )


def assert_same(a: ImageDataset, b: ImageDataset) -> None:
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    np.testing.assert_array_equal(a.test_images, b.test_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert a.class_names == b.class_names


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """Keep the real user cache directory and $CIFAR10_DIR out of every test."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    directory = tmp_path / "user-cache"
    monkeypatch.setattr(cifar10, "default_data_dir", lambda: directory)
    return directory


@pytest.fixture
def source(tmp_path) -> Path:
    """A small archive in the official format, somewhere outside the searched directories."""
    return write_archive(tmp_path / "source" / ARCHIVE_NAME, small_dataset())


@pytest.fixture
def data_dir(tmp_path, source) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / ARCHIVE_NAME).write_bytes(source.read_bytes())
    return directory


def no_partial_files(directory: Path) -> bool:
    return not any(path.name.endswith(".part") for path in directory.rglob("*"))


def test_loads_from_data_dir_and_builds_the_cache(data_dir, source):
    dataset = load_cifar10(data_dir, download=False, md5=file_md5(source))
    assert_same(dataset, small_dataset())
    assert dataset.source == "cifar10"
    assert dataset.train_images.shape == (60, 3, 32, 32)
    assert (data_dir / CACHE_DIR_NAME / "dataset.json").is_file()


def test_later_loads_read_the_cache(data_dir, source):
    md5 = file_md5(source)
    load_cifar10(data_dir, download=False, md5=md5)
    (data_dir / ARCHIVE_NAME).unlink()
    assert_same(load_cifar10(data_dir, download=False, md5=md5), small_dataset())


def test_mmap_load_gives_the_same_arrays(data_dir, source):
    md5 = file_md5(source)
    load_cifar10(data_dir, download=False, md5=md5)
    mapped = load_cifar10(data_dir, download=False, md5=md5, mmap=True)
    assert isinstance(mapped.train_images, np.memmap)
    assert_same(mapped, small_dataset())


def test_cache_for_another_archive_is_not_used(data_dir, source):
    load_cifar10(data_dir, download=False, md5=file_md5(source))
    assert read_cache(data_dir / CACHE_DIR_NAME, expected_md5="0" * 32) is None


def test_damaged_cache_is_rebuilt(data_dir, source):
    md5 = file_md5(source)
    load_cifar10(data_dir, download=False, md5=md5)
    images = data_dir / CACHE_DIR_NAME / "train_images.npy"
    images.write_bytes(images.read_bytes()[:1000])
    assert_same(load_cifar10(data_dir, download=False, md5=md5), small_dataset())


def test_environment_variable_is_searched(tmp_path, source, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(source.parent))
    assert_same(load_cifar10(download=False, md5=file_md5(source)), small_dataset())


def test_explicit_directory_comes_before_the_environment(tmp_path, data_dir, monkeypatch):
    other = write_archive(tmp_path / "other" / ARCHIVE_NAME, small_dataset(seed=1))
    monkeypatch.setenv("CIFAR10_DIR", str(other.parent))
    assert_same(load_cifar10(data_dir, download=False, md5=None), small_dataset(seed=0))


def test_md5_mismatch_names_the_file_and_what_to_do(data_dir):
    with pytest.raises(DatasetError) as raised:
        load_cifar10(data_dir, download=False)  # the official md5: this archive is not it
    message = str(raised.value)
    assert str(data_dir / ARCHIVE_NAME) in message
    assert cifar10.CIFAR10_MD5 in message
    assert "Delete it" in message
    assert not isinstance(raised.value, DatasetUnavailable)


def test_truncated_archive_names_the_file(data_dir):
    archive = data_dir / ARCHIVE_NAME
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="truncated") as raised:
        load_cifar10(data_dir, download=False, md5=None)
    assert str(archive) in str(raised.value)
    assert "Delete it" in str(raised.value)
    assert not (data_dir / CACHE_DIR_NAME / "dataset.json").exists()


def test_missing_archive_says_where_to_put_it(tmp_path, user_cache, monkeypatch):
    explicit, environment = tmp_path / "explicit", tmp_path / "environment"
    monkeypatch.setenv("CIFAR10_DIR", str(environment))
    with pytest.raises(DatasetUnavailable) as raised:
        load_cifar10(explicit, download=False)
    message = str(raised.value)
    for expected in (
        str(explicit),
        str(environment),
        str(user_cache),
        ARCHIVE_NAME,
        "--data-dir",
        "$CIFAR10_DIR",
        cifar10.CIFAR10_MD5,
    ):
        assert expected in message


def test_download_from_a_file_url(tmp_path, source):
    target = tmp_path / "download"
    path = download_archive(target, url=source.as_uri(), md5=file_md5(source), progress=False)
    assert path == target / ARCHIVE_NAME
    assert path.read_bytes() == source.read_bytes()
    assert no_partial_files(target)


def test_load_downloads_into_the_first_searched_directory(tmp_path, source):
    target = tmp_path / "fresh"
    dataset = load_cifar10(target, url=source.as_uri(), md5=file_md5(source), progress=False)
    assert_same(dataset, small_dataset())
    assert (target / ARCHIVE_NAME).is_file()


def test_download_with_wrong_md5_leaves_nothing(tmp_path, source):
    target = tmp_path / "download"
    with pytest.raises(DatasetUnavailable, match="md5") as raised:
        load_cifar10(target, url=source.as_uri(), md5="0" * 32, progress=False)
    assert str(target) in str(raised.value)
    assert not (target / ARCHIVE_NAME).exists()
    assert no_partial_files(target)


def test_failed_download_is_unavailable(tmp_path):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    with pytest.raises(DatasetUnavailable, match="download") as raised:
        load_cifar10(tmp_path / "target", url=missing, progress=False)
    assert missing in str(raised.value)
    assert no_partial_files(tmp_path)


class InterruptedResponse(io.BytesIO):
    """Hands out one chunk, then behaves as if the user pressed Ctrl-C."""

    headers = {"Content-Length": "10000000"}

    def read(self, size=-1):
        if self.tell() > 0:
            raise KeyboardInterrupt
        return super().read(1000)


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "_open_url", lambda url: InterruptedResponse(b"x" * 5000))
    with pytest.raises(KeyboardInterrupt):
        download_archive(tmp_path, url="https://example.invalid/a.tar.gz", progress=False)
    assert not (tmp_path / ARCHIVE_NAME).exists()
    assert no_partial_files(tmp_path)


def test_concurrent_loaders_build_the_cache_once(data_dir, monkeypatch):
    writes = []
    write_cache = cifar10._write_cache

    def counting_write(*args, **kwargs):
        writes.append(threading.get_ident())
        write_cache(*args, **kwargs)

    monkeypatch.setattr(cifar10, "_write_cache", counting_write)
    archive, cache = data_dir / ARCHIVE_NAME, data_dir / CACHE_DIR_NAME
    start = threading.Barrier(4)
    results, errors = [], []

    def load():
        start.wait()
        try:
            results.append(load_archive(archive, cache, expected_md5=None, source="cifar10"))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(writes) == 1
    for dataset in results:
        assert_same(dataset, small_dataset())


def test_a_second_process_loading_at_the_same_time_agrees(data_dir):
    archive, cache = data_dir / ARCHIVE_NAME, data_dir / CACHE_DIR_NAME
    script = (
        "import sys, hashlib\n"
        "from grader.data.cifar10 import load_archive\n"
        "d = load_archive(sys.argv[1], sys.argv[2], expected_md5=None, source='cifar10')\n"
        "print(hashlib.sha256(d.train_images.tobytes()).hexdigest())\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(archive), str(cache)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    mine = load_archive(archive, cache, expected_md5=None, source="cifar10")
    theirs, _ = other.communicate(timeout=60)
    assert other.returncode == 0
    assert theirs.strip() == hashlib.sha256(mine.train_images.tobytes()).hexdigest()
    assert_same(read_cache(cache), small_dataset())
