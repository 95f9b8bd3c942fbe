"""The CIFAR-10 python archive format: round trips, layout, and refusing unsafe archives."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import tarfile
from pathlib import Path

import numpy as np
import pytest

from grader.data.cifar_archive import (
    BATCH_DIR,
    META,
    TEST_BATCH,
    TRAIN_BATCHES,
    DatasetError,
    ImageDataset,
    UnsafeArchiveError,
    pickle_batch,
    read_archive,
    restricted_loads,
    write_archive,
)


def random_dataset(num_train: int = 53, num_test: int = 17, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    return ImageDataset(
        train_images=rng.integers(0, 256, (num_train, 3, 32, 32), dtype=np.uint8),
        train_labels=rng.integers(0, 10, num_train).astype(np.int64),
        test_images=rng.integers(0, 256, (num_test, 3, 32, 32), dtype=np.uint8),
        test_labels=rng.integers(0, 10, num_test).astype(np.int64),
        class_names=tuple(f"class{i}" for i in range(10)),
        source="synthetic",
    )


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def archive_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def assert_same(a: ImageDataset, b: ImageDataset) -> None:
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    np.testing.assert_array_equal(a.test_images, b.test_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert a.class_names == b.class_names


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip(tmp_path):
    dataset = random_dataset()
    path = write_archive(tmp_path / "cifar-10-python.tar.gz", dataset)
    loaded = read_archive(path, source="synthetic")
    assert_same(dataset, loaded)
    assert loaded.source == "synthetic"
    assert loaded.train_labels.dtype == np.int64


def test_layout_matches_the_official_archive(tmp_path):
    dataset = random_dataset(num_train=53)
    members = archive_members(write_archive(tmp_path / "a.tar.gz", dataset))
    expected = {f"{BATCH_DIR}/{name}" for name in (*TRAIN_BATCHES, TEST_BATCH, META)}
    assert set(members) == expected

    # Read the way every CIFAR-10 tutorial does: the plain unpickler with encoding="bytes".
    batches = [pickle.loads(members[f"{BATCH_DIR}/{n}"], encoding="bytes") for n in TRAIN_BATCHES]
    assert [len(b[b"labels"]) for b in batches] == [11, 11, 11, 10, 10]
    for batch in batches:
        assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
        assert all(type(label) is int for label in batch[b"labels"])
        assert isinstance(batch[b"batch_label"], bytes)
        assert all(isinstance(name, bytes) for name in batch[b"filenames"])
    # Rows are channel-major: the first 1024 values are the red plane.
    np.testing.assert_array_equal(batches[0][b"data"][0, :1024], dataset.train_images[0, 0].ravel())
    meta = pickle.loads(members[f"{BATCH_DIR}/{META}"], encoding="bytes")
    assert meta[b"label_names"] == [name.encode() for name in dataset.class_names]
    assert meta[b"num_vis"] == 3072 and meta[b"num_cases_per_batch"] == 11


def test_written_pickles_are_protocol_2_with_only_numpy_globals(tmp_path):
    members = archive_members(write_archive(tmp_path / "a.tar.gz", random_dataset()))
    for data in members.values():
        opcodes = list(pickletools.genops(data))
        assert opcodes[0][0].name == "PROTO" and opcodes[0][1] == 2
        assert max(op.proto for op, _, _ in opcodes) <= 2
        globals_ = {arg for op, arg, _ in opcodes if op.name == "GLOBAL"}
        assert globals_ <= {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def test_equal_data_gives_equal_bytes(tmp_path):
    first = write_archive(tmp_path / "first.tar.gz", random_dataset())
    second = write_archive(tmp_path / "second.tar.gz", random_dataset())
    assert first.read_bytes() == second.read_bytes()


def test_write_leaves_no_temporary_files(tmp_path):
    write_archive(tmp_path / "a.tar.gz", random_dataset())
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]


def test_restricted_unpickler_reads_plain_data_and_arrays():
    batch = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 300, 70000]}
    loaded = restricted_loads(pickle_batch(batch))
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"labels"] == [1, 300, 70000]


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeArchiveError, match="posix.system|os.system|nt.system"):
        restricted_loads(pickle.dumps(Evil(marker), protocol=2))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval, protocol=2),
        pickle.dumps(getattr, protocol=2),
        b"cbuiltins\nexec\n(Vprint(1)\ntR.",
        pickle.dumps(b"python 3 bytes at protocol 2 go through _codecs", protocol=2),
    ],
)
def test_restricted_unpickler_refuses_other_globals(payload):
    with pytest.raises(UnsafeArchiveError, match="refused"):
        restricted_loads(payload)


def test_archive_with_a_malicious_batch_is_refused(tmp_path):
    marker = tmp_path / "ran"
    members = archive_members(write_archive(tmp_path / "good.tar.gz", random_dataset()))
    members[f"{BATCH_DIR}/data_batch_3"] = pickle.dumps(Evil(marker), protocol=2)
    path = write_tar(tmp_path / "evil.tar.gz", members)
    with pytest.raises(UnsafeArchiveError) as raised:
        read_archive(path)
    assert str(path) in str(raised.value) and "data_batch_3" in str(raised.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["/etc/passwd", f"{BATCH_DIR}/../../escape", "../x"])
def test_members_outside_the_archive_are_refused(tmp_path, name):
    members = archive_members(write_archive(tmp_path / "good.tar.gz", random_dataset()))
    members[name] = b"x"
    path = write_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(UnsafeArchiveError, match="outside"):
        read_archive(path)


def test_links_are_refused(tmp_path):
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{BATCH_DIR}/{META}")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="link"):
        read_archive(path)


def test_truncated_archive_names_the_file(tmp_path):
    path = write_archive(tmp_path / "cifar-10-python.tar.gz", random_dataset())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated") as raised:
        read_archive(path)
    assert str(path) in str(raised.value)


def test_not_an_archive_names_the_file(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(DatasetError) as raised:
        read_archive(path)
    assert str(path) in str(raised.value)


def test_missing_batch_is_named(tmp_path):
    members = archive_members(write_archive(tmp_path / "good.tar.gz", random_dataset()))
    del members[f"{BATCH_DIR}/test_batch"]
    path = write_tar(tmp_path / "partial.tar.gz", members)
    with pytest.raises(DatasetError, match="test_batch"):
        read_archive(path)


@pytest.mark.parametrize(
    "batch, problem",
    [
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "not 3072"),
        ({b"labels": [0, 1]}, "b'data'"),
    ],
)
def test_malformed_batches_are_described(tmp_path, batch, problem):
    members = archive_members(write_archive(tmp_path / "good.tar.gz", random_dataset()))
    members[f"{BATCH_DIR}/data_batch_2"] = pickle_batch(batch)
    path = write_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(DatasetError, match=problem) as raised:
        read_archive(path)
    assert "data_batch_2" in str(raised.value)


def test_image_dataset_checks_shapes_and_types():
    good = random_dataset()
    with pytest.raises(ValueError, match="train_labels"):
        ImageDataset(
            good.train_images,
            good.train_labels.astype(np.int32),
            good.test_images,
            good.test_labels,
            good.class_names,
            "synthetic",
        )
    with pytest.raises(ValueError, match="test_images"):
        ImageDataset(
            good.train_images,
            good.train_labels,
            good.test_images.astype(np.float32),
            good.test_labels,
            good.class_names,
            "synthetic",
        )
