"""Dataset timings: synthetic archive generation, first load (archive -> uint8 cache), cached load
into memory (budget 0.1 s) and onto the GPU (budget 1 s), on a CIFAR-10-sized synthetic set.

    python benchmarks/bench_data.py [--num-train 50000] [--num-test 10000] [--runs 5] [--cifar10]
    python benchmarks/bench_data.py --learnability [--num-train 10000] [--num-test 2000]

--cifar10 also times the real CIFAR-10 cache when one is found (no download). --learnability
trains a linear classifier, a two-layer network and a small convnet on the synthetic set (CPU)
and prints their test accuracies: the numbers docs/synthetic_data.md records.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import describe_machine  # noqa: E402

from grader.data.cifar10 import CACHE_DIR_NAME, load_archive, load_cifar10, read_cache  # noqa: E402
from grader.data.cifar_archive import ARCHIVE_NAME, DatasetError, ImageDataset  # noqa: E402
from grader.data.synthetic import generate_synthetic, write_synthetic_archive  # noqa: E402

MEMORY_BUDGET_S = 0.1
GPU_BUDGET_S = 1.0


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def describe_accelerators() -> str:
    torch = torch_or_none()
    if torch is None:
        return "torch not installed"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"torch {torch.__version__}, {cuda}"


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def median_time(function, runs: int) -> float:
    return statistics.median(timed(function)[0] for _ in range(runs))


def to_gpu(cache: Path) -> None:
    torch = torch_or_none()
    dataset = read_cache(cache)
    images = torch.from_numpy(dataset.train_images).to("cuda")
    labels = torch.from_numpy(dataset.train_labels).to("cuda")
    torch.cuda.synchronize()
    del images, labels


def row(what: str, seconds: float, budget: float | None = None) -> str:
    verdict = ""
    if budget is not None:
        verdict = f"{budget:g} s ({'within' if seconds <= budget else 'OVER'})"
    return f"| {what} | {seconds:.3f} s | {verdict} |"


def bench_loading(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / ARCHIVE_NAME
        cache = Path(scratch) / CACHE_DIR_NAME
        seconds, _ = timed(
            lambda: write_synthetic_archive(archive, 0, args.num_train, args.num_test)
        )
        size = f"{args.num_train} + {args.num_test} images"
        rows.append(
            row(f"generate synthetic archive ({size}, {archive.stat().st_size >> 20} MiB)", seconds)
        )
        seconds, _ = timed(
            lambda: load_archive(archive, cache, expected_md5=None, source="synthetic")
        )
        rows.append(row("first load: archive -> uint8 cache", seconds))
        rows.append(
            row(
                "cached load into memory (median)",
                median_time(lambda: read_cache(cache), args.runs),
                MEMORY_BUDGET_S,
            )
        )
        rows.append(
            row(
                "cached load, memory-mapped (median)",
                median_time(lambda: read_cache(cache, mmap=True), args.runs),
            )
        )
        torch = torch_or_none()
        if torch is not None and torch.cuda.is_available():
            to_gpu(cache)  # CUDA context creation is not the dataset's cost
            rows.append(
                row(
                    "cached load onto the GPU, train set (median)",
                    median_time(lambda: to_gpu(cache), args.runs),
                    GPU_BUDGET_S,
                )
            )
        else:
            rows.append("| cached load onto the GPU | skipped: no CUDA device | |")
    if args.cifar10:
        try:
            load_cifar10(download=False)
            rows.append(
                row(
                    "CIFAR-10 cached load into memory (median)",
                    median_time(lambda: load_cifar10(download=False), args.runs),
                    MEMORY_BUDGET_S,
                )
            )
        except DatasetError as error:
            rows.append(f"| CIFAR-10 cached load | skipped: {str(error).splitlines()[0]} | |")
    print("| what | time | budget |\n|---|---|---|")
    print("\n".join(rows))


# --- learnability -------------------------------------------------------------------------------


def preprocess(dataset: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
    """CS231n-style: float32, minus the per-pixel training mean (flattened, scaled to unit-ish)."""
    train = dataset.train_images.reshape(len(dataset.train_images), -1).astype(np.float32)
    test = dataset.test_images.reshape(len(dataset.test_images), -1).astype(np.float32)
    mean = train.mean(axis=0)
    return (train - mean) / 64, (test - mean) / 64


def train_linear(
    x_train, y_train, x_test, y_test, epochs: int, lr: float = 1e-3
) -> tuple[float, float]:
    """Softmax regression in numpy with Adam on minibatches of 100: (train, test) accuracy."""
    rng = np.random.default_rng(0)
    w = np.zeros((x_train.shape[1], 10), np.float32)
    b = np.zeros(10, np.float32)
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in (w, b)]
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x_train)), len(x_train) // 100):
            scores = x_train[batch] @ w + b
            scores -= scores.max(axis=1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=1, keepdims=True)
            probs[np.arange(len(batch)), y_train[batch]] -= 1
            grads = (x_train[batch].T @ probs / len(batch), probs.mean(axis=0))
            step += 1
            for param, grad, (m, v) in zip((w, b), grads, moments):
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                param -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)

    def accuracy(x, y):
        return float(((x @ w + b).argmax(axis=1) == y).mean())

    return accuracy(x_train, y_train), accuracy(x_test, y_test)


def train_torch(
    model, x_train, y_train, x_test, y_test, epochs: int, lr: float = 1e-3
) -> tuple[float, float]:
    import torch

    x_train, x_test = torch.from_numpy(x_train), torch.from_numpy(x_test)
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for batch in torch.randperm(len(x_train)).split(50):
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def accuracy(x, y):
        with torch.no_grad():
            return float(
                torch.cat([model(part).argmax(dim=1) for part in x.split(1000)])
                .eq(y)
                .float()
                .mean()
            )

    return accuracy(x_train, y_train), accuracy(x_test, y_test)


def bench_learnability(args: argparse.Namespace) -> None:
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    dataset = generate_synthetic(args.seed, args.num_train, args.num_test)
    x_train, x_test = preprocess(dataset)
    y_train, y_test = dataset.train_labels, dataset.test_labels
    models = [
        (
            "linear softmax (numpy, Adam)",
            args.linear_epochs,
            lambda: train_linear(x_train, y_train, x_test, y_test, args.linear_epochs),
        ),
        (
            f"two-layer net, {args.hidden} hidden (torch, Adam)",
            args.mlp_epochs,
            lambda: train_torch(
                nn.Sequential(nn.Linear(3072, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)),
                x_train,
                y_train,
                x_test,
                y_test,
                args.mlp_epochs,
            ),
        ),
        (
            "convnet conv5-16/pool/conv3-32/pool/linear (torch, Adam)",
            args.conv_epochs,
            lambda: train_torch(
                nn.Sequential(
                    nn.Unflatten(1, (3, 32, 32)),
                    nn.Conv2d(3, 16, 5, padding=2),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                    nn.Conv2d(16, 32, 3, padding=1),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Linear(32 * 8 * 8, 10),
                ),
                x_train,
                y_train,
                x_test,
                y_test,
                args.conv_epochs,
            ),
        ),
    ]
    print(
        f"synthetic seed {args.seed}: {args.num_train} train, {args.num_test} test images; "
        f"CPU, {args.threads} torch thread(s)"
    )
    print("| model | epochs | train s | train acc | test acc |\n|---|---|---|---|---|")
    for name, epochs, train in models:
        seconds, (train_accuracy, test_accuracy) = timed(train)
        print(
            f"| {name} | {epochs} | {seconds:.1f} | {train_accuracy:.1%} | {test_accuracy:.1%} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learnability", action="store_true")
    parser.add_argument("--num-train", type=int)
    parser.add_argument("--num-test", type=int)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cifar10", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--linear-epochs", type=int, default=10)
    parser.add_argument("--mlp-epochs", type=int, default=10)
    parser.add_argument("--conv-epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}; {describe_accelerators()}")
    if args.learnability:
        args.num_train = args.num_train or 10_000
        args.num_test = args.num_test or 2_000
        bench_learnability(args)
    else:
        args.num_train = args.num_train or 50_000
        args.num_test = args.num_test or 10_000
        bench_loading(args)


if __name__ == "__main__":
    main()
