"""A CIFAR-like stand-in for CIFAR-10, generated from a seed.

Ten classes of 3x32x32 images. Each image shows one class-specific pattern (stripes at one of
four orientations, a checkerboard, a ring, a plus, a cross, a square frame, a grid of dots) at a
random size, pitch and slight tilt, in a random colour, over a mottled background with pixel
noise; the pattern sits near the centre in 30 % of the images and anywhere in the rest. What
tells the classes apart is local shape wherever it sits: a linear model sees little of it (only a
weak class tint of the background), a two-layer network the centred part and some of the rest, a
small convnet nearly all (docs/synthetic_data.md has the measured numbers).

The archive is written in the `cifar-10-python.tar.gz` format and loaded through the same reader
and uint8 cache as CIFAR-10. Generation uses only numpy's `default_rng(seed)` and arithmetic
that IEEE 754 rounds exactly (no sin/exp, whose last bit varies between CPUs), so a seed gives
the same images on every machine.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import platformdirs
from filelock import FileLock

from grader.data.cifar10 import CACHE_DIR_NAME, load_archive, read_cache
from grader.data.cifar_archive import ARCHIVE_NAME, ImageDataset, write_archive

# Bump when the images a seed produces change, so old caches are not reused.
GENERATOR_VERSION = 2

CLASS_NAMES = (
    "hstripes",
    "vstripes",
    "diagonals",
    "antidiagonals",
    "checkers",
    "ring",
    "plus",
    "cross",
    "frame",
    "dots",
)
SIZE = 32
_CHUNK = 1000  # images rendered at once: keeps the (chunk, 32, 32) temporaries in cache

# Pattern half-size in pixels, how far its centre may sit from the image centre (pixels, and
# never so far that it leaves the image; closer for the centred fraction, which a two-layer
# network learns from fewer examples), and how far it may tilt (tangent of the angle).
_HALF_SIZE = (4.5, 8.0)
_MAX_OFFSET = 10.0
_CENTRED_FRACTION = 0.3
_CENTRED_OFFSET = 2.0
_MAX_TILT = 0.2
# Period of the repeating patterns and width of the strokes, relative to the class's own.
_PITCH = (0.9, 1.1)
# Background: a base colour, partly pulled towards a class colour, plus smooth mottling
# (random profiles of _MOTTLE_GRID knots, one down and one across the image).
_BACKGROUND_TINT = 0.35
_MOTTLE_GRID = 5
_MOTTLE = 0.15
# Pattern colour: brighter than the background with this probability, else darker.
_BRIGHTER = 0.8
_OPACITY = (0.8, 1.0)
_NOISE = 0.06

_CLASS_BACKGROUND = np.array(
    [
        [0.8, 0.3, 0.3],
        [0.3, 0.8, 0.3],
        [0.3, 0.3, 0.8],
        [0.8, 0.8, 0.3],
        [0.8, 0.3, 0.8],
        [0.3, 0.8, 0.8],
        [0.6, 0.6, 0.6],
        [0.4, 0.4, 0.4],
        [0.8, 0.55, 0.3],
        [0.3, 0.55, 0.8],
    ],
    dtype=np.float32,
)
_HALF_SQRT2 = np.float32(0.7071067811865476)


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _stripes(w: np.ndarray, period: np.ndarray) -> np.ndarray:
    # Signed distance to the nearest bar of a square wave along w (negative inside a bar).
    return np.abs(_frac(w / period) - 0.5) * period - period / 4


def _pattern_distance(label: int, u: np.ndarray, v: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Signed distance (pattern units, negative inside) to the pattern of class `label`.

    (u, v) are pattern coordinates: the pattern fills the square [-1, 1]^2. `pitch` scales the
    period of the repeating patterns (stripes, checks, dots) and the stroke width of the others.
    """
    au, av = np.abs(u), np.abs(v)
    square = np.maximum(au, av) - 1
    stripe, cell, width = 0.5 * pitch, 0.67 * pitch, 0.22 * pitch
    if label == 0:  # horizontal stripes
        return np.maximum(square, _stripes(v, stripe))
    if label == 1:  # vertical stripes
        return np.maximum(square, _stripes(u, stripe))
    if label == 2:  # diagonal stripes
        return np.maximum(square, _stripes((u + v) * _HALF_SQRT2, stripe))
    if label == 3:  # anti-diagonal stripes
        return np.maximum(square, _stripes((u - v) * _HALF_SQRT2, stripe))
    if label == 4:  # checkerboard
        a, b = _frac(u / cell) - 0.5, _frac(v / cell) - 0.5
        edge = np.minimum(np.abs(a), np.abs(b)) * cell
        return np.maximum(square, np.where(a * b > 0, -edge, edge))
    if label == 5:  # ring
        return np.abs(np.sqrt(u * u + v * v) - 0.72) - width
    if label == 6:  # plus
        return np.maximum(np.minimum(au, av) - width, square)
    if label == 7:  # diagonal cross
        a, b = np.abs(u + v) * _HALF_SQRT2, np.abs(u - v) * _HALF_SQRT2
        return np.maximum(np.minimum(a, b) - width, np.sqrt(u * u + v * v) - 1.1)
    if label == 8:  # square frame
        return np.abs(np.maximum(au, av) - 0.78) - width
    if label == 9:  # grid of dots
        a, b = (_frac(u / cell + 0.5) - 0.5) * cell, (_frac(v / cell + 0.5) - 0.5) * cell
        return np.maximum(square + 0.1, np.sqrt(a * a + b * b) - 0.3 * cell)
    raise ValueError(f"no pattern for class {label}")


def _profile(knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of (..., g) knots over 32 pixels: (..., 32)."""
    g = knots.shape[-1]
    position = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * (g - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, g - 1)
    weight = position - low.astype(np.float32)  # (32,)
    return knots[..., low] * (1 - weight) + knots[..., high] * weight


def _blend(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """image * (1 - alpha) + colour * alpha, in place. colour (n, 3), alpha (n, 1, 32, 32)."""
    blend = colour[:, :, None, None] - image
    blend *= alpha
    image += blend


def _render(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Images (n, 3, 32, 32) uint8 for `labels`, drawing everything random from `rng`."""
    n = len(labels)
    f32 = np.float32
    # Every draw has a fixed size and order, whatever the labels are.
    half = rng.uniform(*_HALF_SIZE, n).astype(f32)
    centred = rng.random(n) < _CENTRED_FRACTION
    reach = np.minimum(f32(SIZE / 2) - half * f32(0.9), f32(_MAX_OFFSET))
    reach = np.where(centred, np.minimum(reach, f32(_CENTRED_OFFSET)), reach)
    centre_x = f32(SIZE / 2) + (rng.random(n, dtype=f32) * 2 - 1) * reach
    centre_y = f32(SIZE / 2) + (rng.random(n, dtype=f32) * 2 - 1) * reach
    tilt = rng.uniform(-_MAX_TILT, _MAX_TILT, n).astype(f32)
    pitch = rng.uniform(*_PITCH, n).astype(f32)
    base = rng.uniform(0.15, 0.85, (n, 3)).astype(f32)
    mottle = rng.uniform(-_MOTTLE, _MOTTLE, (2, n, 3, _MOTTLE_GRID)).astype(f32)
    brighter = rng.random(n) < _BRIGHTER
    contrast = rng.uniform(0.3, 0.6, n).astype(f32)
    hue = rng.uniform(-0.2, 0.2, (n, 3)).astype(f32)
    opacity = rng.uniform(*_OPACITY, n).astype(f32)
    noise = rng.random((n, 3, SIZE, SIZE), dtype=f32)

    # Rotation by the tilt angle: (cos, sin) = (1, t) / sqrt(1 + t^2).
    cos = 1 / np.sqrt(1 + tilt * tilt)
    sin = tilt * cos
    pixel = np.arange(SIZE, dtype=f32) + f32(0.5)
    dx = pixel[None, None, :] - centre_x[:, None, None]  # (n, 1, 32)
    dy = pixel[None, :, None] - centre_y[:, None, None]  # (n, 32, 1)
    scale = (1 / half)[:, None, None]
    u = (dx * cos[:, None, None] + dy * sin[:, None, None]) * scale  # (n, 32, 32)
    v = (dy * cos[:, None, None] - dx * sin[:, None, None]) * scale
    coverage = np.empty((n, SIZE, SIZE), dtype=f32)
    for label in range(len(CLASS_NAMES)):
        chosen = labels == label
        distance = _pattern_distance(label, u[chosen], v[chosen], pitch[chosen][:, None, None])
        # Anti-aliased: the fraction of a pixel (1/half pattern units wide) inside the shape.
        coverage[chosen] = np.clip(0.5 - distance / scale[chosen], 0, 1)

    background = base * (1 - _BACKGROUND_TINT) + _CLASS_BACKGROUND[labels] * _BACKGROUND_TINT
    sign = np.where(brighter, f32(1), f32(-1))
    foreground = np.clip(background + (sign * contrast)[:, None] + hue, 0, 1)
    alpha = coverage[:, None]  # (n, 1, 32, 32)
    alpha *= opacity[:, None, None, None]
    # In place from here on: these are the largest arrays, and fresh ones cost page faults.
    # Mottled background: a smooth random profile down plus one across, per channel.
    down, across = _profile(mottle)  # (n, 3, 32) each
    down += background[:, :, None]
    image = down[:, :, :, None] + across[:, :, None, :]  # (n, 3, 32, 32)
    _blend(image, foreground, alpha)
    # Quantise to 0..255 with uniform noise of +-_NOISE added.
    noise *= f32(2 * _NOISE * 256)
    image *= f32(256)
    image += noise
    image -= f32(_NOISE * 256)
    np.floor(image, out=image)
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def generate_split(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images (count, 3, 32, 32) uint8 and balanced labels (count,) int64."""
    labels = rng.permutation(np.arange(count, dtype=np.int64) % len(CLASS_NAMES))
    images = np.empty((count, 3, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, count, _CHUNK):
        images[start : start + _CHUNK] = _render(rng, labels[start : start + _CHUNK])
    return images, labels


def generate_synthetic(seed: int, num_train: int, num_test: int) -> ImageDataset:
    """The stand-in dataset for `seed`, in memory. The test split does not depend on num_train."""
    train_rng, test_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2)
    )
    train_images, train_labels = generate_split(train_rng, num_train)
    test_images, test_labels = generate_split(test_rng, num_test)
    return ImageDataset(
        train_images, train_labels, test_images, test_labels, CLASS_NAMES, "synthetic"
    )


def with_test_split(dataset: ImageDataset, seed: int) -> ImageDataset:
    """`dataset` with as many test images as it has, drawn afresh from `seed` (as `generate_synthetic`
    draws its test split), in memory only: official grading's held-out images from a secret seed,
    which no cache on disk may reveal."""
    test_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    test_images, test_labels = generate_split(test_rng, len(dataset.test_labels))
    return dataclasses.replace(dataset, test_images=test_images, test_labels=test_labels)


def write_synthetic_archive(
    path: str | os.PathLike, seed: int = 0, num_train: int = 10_000, num_test: int = 2_000
) -> Path:
    """Write the stand-in for `seed` as a `cifar-10-python.tar.gz`-format archive at `path`."""
    # Stored, not compressed: noisy pixels shrink by 6 % at level 1, which takes longer than
    # generating them.
    return write_archive(path, generate_synthetic(seed, num_train, num_test), compresslevel=0)


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("grader")) / "synthetic"


def load_synthetic(
    seed: int = 0,
    num_train: int = 10_000,
    num_test: int = 2_000,
    cache_dir: str | os.PathLike | None = None,
    *,
    mmap: bool = False,
) -> ImageDataset:
    """The stand-in for (seed, num_train, num_test), generated into `cache_dir` on first use.

    The archive and its uint8 cache live in a directory of their own under `cache_dir` (default:
    the user cache directory), and load through the same code as CIFAR-10.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / f"v{GENERATOR_VERSION}-seed{seed}-train{num_train}-test{num_test}"
    dataset = read_cache(directory / CACHE_DIR_NAME, mmap=mmap)
    if dataset is not None:
        return dataset
    archive = directory / ARCHIVE_NAME
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(directory / f"{ARCHIVE_NAME}.lock"):
        if not archive.is_file():
            write_synthetic_archive(archive, seed, num_train, num_test)
    return load_archive(
        archive,
        directory / CACHE_DIR_NAME,
        expected_md5=None,
        source="synthetic",
        mmap=mmap,
        remedy=f"Delete {directory} and run again: it is regenerated from the seed.",
    )
