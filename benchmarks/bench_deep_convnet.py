"""Training throughput of the reference DeepConvNet built on the course's own layers (hand-written
backward passes around the fast convolution) against the same network written with torch.nn, same
batch, same device, in one run (budget: at least 0.8 x), and the time the reference's
`create_convolutional_solver_instance` takes to reach the synthetic target.

It first counts the kernels of one training step of each (any device: the count is the same on a
CPU). On a GPU a small network's step is bound by their launches, so the count explains the ratio:
the course's layers compute batch normalization and Adam in one operation per term of their formulas,
and the update rules take one parameter at a time, where torch.nn has one kernel per layer and updates
all parameters in a few fused kernels.

    python benchmarks/bench_deep_convnet.py [--device cuda|cpu] [--steps 20] [--skip-target]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from grader.boundary.packages import install_package  # noqa: E402

BUDGET_RATIO = 0.8
NUM_FILTERS, MAX_POOLS = [32, 64, 128, 256], [0, 1, 2, 3]


def load_reference():
    install_package("reference_a2", [ROOT / "reference" / "a2_cnn_torch", ROOT / "assignments" / "a2_cnn_torch"])
    import importlib

    return importlib.import_module("reference_a2.models"), importlib.import_module("reference_a2.optim")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def course_step(models, optim, device, batch):
    """One training step of the course layers' DeepConvNet with Adam, as the Solver takes it."""
    model = models.DeepConvNet(num_filters=NUM_FILTERS, max_pools=MAX_POOLS, batchnorm=True, weight_scale="kaiming",
                               dtype=torch.float32, device=device)
    configs = {name: {"learning_rate": 1e-3} for name in model.params}
    X = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(10, (batch,), device=device)

    def loss_and_gradients():
        return model.loss(X, y)[1]

    def update(grads):
        for name, value in model.params.items():
            model.params[name], configs[name] = optim.adam(value, grads[name], configs[name])

    return loss_and_gradients, update


def torch_nn_network() -> torch.nn.Module:
    layers, channels = [], 3
    for index, filters in enumerate(NUM_FILTERS):
        layers += [torch.nn.Conv2d(channels, filters, 3, padding=1), torch.nn.BatchNorm2d(filters), torch.nn.ReLU()]
        if index in MAX_POOLS:
            layers.append(torch.nn.MaxPool2d(2))
        channels = filters
    size = 32 // 2 ** len(MAX_POOLS)
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(channels * size * size, 10))


def torch_nn_step(device, batch, foreach=None):
    """The same step in torch.nn with torch.optim.Adam (one fused update over all parameters on a GPU:
    `foreach`, torch's default there)."""
    network = torch_nn_network().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3, foreach=foreach)
    X = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(10, (batch,), device=device)

    def loss_and_gradients():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(X), y).backward()

    def update(_):
        optimizer.step()

    return loss_and_gradients, update


def step_times(step, device, steps) -> list[float]:
    loss_and_gradients, update = step
    times = []
    for index in range(steps + 3):
        synchronize(device)
        start = time.perf_counter()
        update(loss_and_gradients())
        synchronize(device)
        if index >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    return times


class KernelCount(TorchDispatchMode):
    """Counts the operations that run a kernel: on a GPU each is a launch, whose host-side cost
    bounds a small network's step. Views, allocations and the profiler's markers run none."""

    NO_KERNEL = {"_unsafe_view", "empty", "empty_strided", "empty_like"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "aten" and not func.is_view and func.overloadpacket.__name__ not in self.NO_KERNEL:
            self.count += 1
        return func(*args, **(kwargs or {}))


def kernel_counts(step) -> tuple[int, int]:
    """Kernels of the forward and backward pass and of the update, counted on a step after the first
    (whose state is made then)."""
    loss_and_gradients, update = step
    update(loss_and_gradients())
    with KernelCount() as forward_backward:
        grads = loss_and_gradients()
    with KernelCount() as updating:
        update(grads)
    return forward_backward.count, updating.count


def time_to_synthetic_target(device: str, target: float, limit_s: float) -> tuple[float, float]:
    """Trains the reference's convolutional solver on the synthetic stand-in as the grader would
    prepare it, one epoch at a time, until the validation accuracy reaches the target."""
    import importlib

    from grader.data import load_synthetic
    from grader.engine.training import prepare_training_data

    dataset = load_synthetic(seed=0, num_train=11_000, num_test=2_000)
    data = prepare_training_data(dataset, np.random.default_rng(0), num_val=1000, train_subset=None)
    tensors = {k: torch.from_numpy(v).to(device) for k, v in data.data_dict.items()}
    models = importlib.import_module("reference_a2.models")
    solver = models.create_convolutional_solver_instance(tensors, torch.float32, device)
    start = time.perf_counter()
    accuracy = 0.0
    while time.perf_counter() - start < limit_s:
        solver.num_epochs = 1
        solver.train()
        accuracy = float(solver.check_accuracy(tensors["X_val"], tensors["y_val"]))
        if accuracy >= target:
            break
    return time.perf_counter() - start, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-target", action="store_true")
    parser.add_argument("--target", type=float, default=0.80)
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "none"
    print(f"machine: {describe_machine()}, torch {torch.__version__}, device {args.device} (GPU: {gpu})")
    models, optim = load_reference()
    counts = {"course": kernel_counts(course_step(models, optim, args.device, 4)),
              "torch.nn": kernel_counts(torch_nn_step(args.device, 4, foreach=True))}
    print("| kernels per training step | forward + backward | update | total |")
    print("|---|---|---|---|")
    for name, (forward_backward, updating) in counts.items():
        print(f"| {name} | {forward_backward} | {updating} | {forward_backward + updating} |")
    course = statistics.median(step_times(course_step(models, optim, args.device, args.batch), args.device, args.steps))
    native = statistics.median(step_times(torch_nn_step(args.device, args.batch), args.device, args.steps))
    ratio = native / course
    print("| network (batch %d, %s) | images/s | relative |" % (args.batch, args.device))
    print("|---|---|---|")
    print(f"| DeepConvNet on the course layers | {args.batch / course:,.0f} | {ratio:.2f} x |")
    print(f"| the same network in torch.nn | {args.batch / native:,.0f} | 1.00 x |")
    print(f"budget: course layers >= {BUDGET_RATIO} x torch.nn: {'within' if ratio >= BUDGET_RATIO else 'OVER'}")
    if not args.skip_target:
        seconds, accuracy = time_to_synthetic_target(args.device, args.target, limit_s=600)
        print(f"reference create_convolutional_solver_instance on the synthetic stand-in: "
              f"{accuracy:.1%} validation accuracy after {seconds:.1f} s (target {args.target:.0%})")


if __name__ == "__main__":
    main()
