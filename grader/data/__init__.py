"""Datasets for training tasks: CIFAR-10 and its seeded synthetic stand-in, one result type."""

from grader.data.cifar10 import (
    CIFAR10_MD5,
    CIFAR10_URL,
    DatasetUnavailable,
    download_archive,
    load_cifar10,
)
from grader.data.cifar_archive import (
    DatasetError,
    ImageDataset,
    UnsafeArchiveError,
    read_archive,
    write_archive,
)
from grader.data.synthetic import generate_synthetic, load_synthetic, with_test_split, write_synthetic_archive

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DatasetError",
    "DatasetUnavailable",
    "ImageDataset",
    "UnsafeArchiveError",
    "download_archive",
    "generate_synthetic",
    "load_cifar10",
    "load_synthetic",
    "read_archive",
    "with_test_split",
    "write_archive",
    "write_synthetic_archive",
]
