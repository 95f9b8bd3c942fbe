"""Training throughput of the reference residual network in the provided Trainer: float32 against
channels_last and bfloat16 autocast, same network, same batch, same device, in one run; and how
long the reference's `create_resnet_trainer_instance` takes to reach the synthetic target when
trained the way the grader trains it.

    python benchmarks/bench_resnet.py [--device cuda|cpu] [--steps 20] [--batch N] [--skip-target]

The network is the one the reference's entry builds for the device (a small one on a CPU).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from grader.assignment import load_assignment  # noqa: E402
from grader.boundary.packages import install_package  # noqa: E402

ASSIGNMENT = "a3_resnet_pytorch"
PACKAGE = "reference_a3"
CIFAR10_TRAIN_IMAGES = 49_000
VARIANTS = [  # (name, channels_last, autocast dtype)
    ("float32", False, None),
    ("float32, channels_last", True, None),
    ("bfloat16 autocast", False, torch.bfloat16),
    ("bfloat16 autocast, channels_last", True, torch.bfloat16),
]


def load_reference():
    install_package(PACKAGE, [ROOT / "reference" / ASSIGNMENT, ROOT / "assignments" / ASSIGNMENT])
    return importlib.import_module(f"{PACKAGE}.models"), importlib.import_module(f"{PACKAGE}.trainer")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def random_data(n: int, device: str) -> dict[str, torch.Tensor]:
    X = 60 * torch.randn(n, 3, 32, 32, device=device)
    y = torch.randint(10, (n,), device=device)
    return {"X_train": X, "y_train": y, "X_val": X[:100], "y_val": y[:100]}


def entry_trainer(models, data, device):
    """The reference entry's Trainer for this device: its network, optimizer and options."""
    return models.create_resnet_trainer_instance(data, torch.float32, device)


def step_times(models, trainer_module, device, batch, steps, channels_last, autocast_dtype) -> list[float]:
    """Seconds per training step (augmentation, forward, backward, update, the loss read back) of the
    entry's network in the Trainer with the given layout and precision; warm-up steps excluded."""
    torch.manual_seed(0)
    data = random_data(batch * 4, device)
    network = entry_trainer(models, data, device).network
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    trainer = trainer_module.Trainer(network, optimizer, data, batch_size=batch, random_crop=4,
                                     channels_last=channels_last, autocast_dtype=autocast_dtype, verbose=False,
                                     device=device)
    times = []
    for step in range(steps + 3):
        batch_indices = torch.randperm(len(data["X_train"]), device=device)[:batch]
        synchronize(device)
        start = time.perf_counter()
        trainer._step(batch_indices)  # reads the loss back, so the GPU's work is inside the timing
        synchronize(device)
        if step >= 3:
            times.append(time.perf_counter() - start)
    return times


def time_to_synthetic_target(models, device: str, target: float, limit_s: float):
    """The reference entry on the synthetic stand-in, prepared and timed as the grader does it:
    seconds until the validation accuracy first reached the target (None if never), the accuracy on
    the held-out images, the seconds of training and prediction under the task's limit, and the
    Trainer (for its histories)."""
    from grader.data import load_synthetic
    from grader.engine.training import prepare_training_data

    dataset = load_synthetic(seed=0, num_train=11_000, num_test=2_000)
    data = prepare_training_data(dataset, np.random.default_rng(0), num_val=1000, train_subset=None)
    tensors = {k: torch.from_numpy(v).to(device) for k, v in data.data_dict.items()}
    torch.manual_seed(0)
    start = time.perf_counter()
    trainer = entry_trainer(models, tensors, device)
    trainer.train(time_limit=limit_s)
    held_out = torch.from_numpy(data.held_out_images).to(device)
    predictions = torch.cat([trainer.model.loss(held_out[i:i + 500]).argmax(dim=1)
                             for i in range(0, len(held_out), 500)]).cpu().numpy()
    seconds = time.perf_counter() - start
    reached = next((s for s, acc in zip(trainer.check_seconds, trainer.val_acc_history) if acc >= target), None)
    return reached, float(np.mean(predictions == data.held_out_labels)), seconds, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: the batch size of the reference's entry")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-target", action="store_true")
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "none"
    print(f"machine: {describe_machine()}, torch {torch.__version__}, device {args.device} (GPU: {gpu})")
    models, trainer_module = load_reference()
    batch = args.batch or entry_trainer(models, random_data(8, args.device), args.device).batch_size
    print(f"| reference entry's network (batch {batch}, {args.device}) | images/s | relative | "
          f"CIFAR-10 epochs in 60 s |")
    print("|---|---|---|---|")
    baseline = None
    for name, channels_last, autocast_dtype in VARIANTS:
        seconds = statistics.median(step_times(models, trainer_module, args.device, batch, args.steps,
                                               channels_last, autocast_dtype))
        baseline = baseline or seconds
        rate = batch / seconds
        print(f"| {name} | {rate:,.0f} | {baseline / seconds:.2f} x | {60 * rate / CIFAR10_TRAIN_IMAGES:.1f} |")
    if not args.skip_target:
        task = load_assignment(ASSIGNMENT, ROOT).spec.task("resnet.cifar10").training
        target, limit = task.target["synthetic"], task.time_limit_s
        reached, accuracy, seconds, trainer = time_to_synthetic_target(models, args.device, target, limit)
        when = f"after {reached:.1f} s" if reached is not None else "never"
        print(f"reference create_resnet_trainer_instance on the synthetic stand-in ({args.device}): validation "
              f"accuracy reached the target {target:.0%} {when}; {accuracy:.1%} on the held-out images after "
              f"{seconds:.1f} s of training and prediction (limit {limit:g} s)")
        history = ", ".join(f"{acc:.3f} at {s:.1f} s" for acc, s in zip(trainer.val_acc_history, trainer.check_seconds))
        print(f"epochs {trainer.epoch} of {trainer.num_epochs} (stopped early: {trainer.stopped_early}); "
              f"validation accuracy: {history}")


if __name__ == "__main__":
    main()
