"""The fixed workload a device is timed on to calibrate training time limits (grader.engine.calibration).

Run as a script in a fresh interpreter (`python -I calibration_workload.py FRAMEWORK DEVICE MIN_REPEATS
MIN_SECONDS`), pinned and threaded as the training worker is, so that it sees the device as a
student's training does. It imports nothing of the grader. It prints one JSON line: the seconds of
each repeat (after a warm-up) and the device's model.

The workload is a training step mix close to the courses' own: for NumPy assignments, steps of a
two-layer fully connected network on CIFAR-sized inputs (matrix products, ReLU, softmax, SGD); for
torch ones, steps of a small convolutional network (convolutions, pooling, a linear layer, cross-entropy,
SGD), written with torch's functional operations on plain tensors, as the courses' layers are. A
repeat is the same fixed number of steps on every device, so that the times of two devices compare.
Changing the workload changes its name (WORKLOADS), which makes every stored calibration stale.
"""

from __future__ import annotations

import json
import platform
import sys
import time

WORKLOADS = {"numpy": "numpy-fc-v1", "torch": "torch-conv-v1"}
NUMPY_STEPS = 10
TORCH_STEPS = 4


def numpy_repeat(state: dict) -> None:
    import numpy as np

    X, y, W1, W2 = state["X"], state["y"], state["W1"], state["W2"]
    for _ in range(NUMPY_STEPS):
        hidden = np.maximum(X @ W1, 0.0)
        scores = hidden @ W2
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        probabilities[np.arange(len(y)), y] -= 1.0
        d_scores = probabilities / len(y)
        d_hidden = (d_scores @ W2.T) * (hidden > 0)
        W2 -= 1e-3 * (hidden.T @ d_scores)
        W1 -= 1e-3 * (X.T @ d_hidden)


def numpy_state() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    return {"X": rng.standard_normal((200, 3072)), "y": rng.integers(0, 10, 200),
            "W1": 1e-3 * rng.standard_normal((3072, 100)), "W2": 1e-3 * rng.standard_normal((100, 10))}


def torch_state(device: str) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)

    def tensor(*shape: int, scale: float = 1.0) -> "torch.Tensor":
        return (scale * torch.randn(*shape, generator=generator)).to(device).requires_grad_(scale != 1.0)

    return {"X": tensor(64, 3, 32, 32), "y": torch.randint(0, 10, (64,), generator=generator).to(device),
            "weights": [tensor(32, 3, 3, 3, scale=0.1), tensor(64, 32, 3, 3, scale=0.05),
                        tensor(10, 64 * 8 * 8, scale=0.01)], "device": device}


def torch_repeat(state: dict) -> None:
    import torch
    import torch.nn.functional as F

    X, y, (w1, w2, w3) = state["X"], state["y"], state["weights"]
    for _ in range(TORCH_STEPS):
        hidden = F.max_pool2d(F.relu(F.conv2d(X, w1, padding=1)), 2)
        hidden = F.max_pool2d(F.relu(F.conv2d(hidden, w2, padding=1)), 2)
        loss = F.cross_entropy(hidden.flatten(1) @ w3.T, y)
        loss.backward()
        with torch.no_grad():
            for weight in (w1, w2, w3):
                weight -= 1e-3 * weight.grad
                weight.grad = None
    if state["device"] == "cuda":
        torch.cuda.synchronize()


def device_model(framework: str, device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return cpu_model()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def main(framework: str, device: str, min_repeats: int, min_seconds: float) -> dict:
    if framework == "numpy":
        state, repeat = numpy_state(), numpy_repeat
    else:
        state, repeat = torch_state(device), torch_repeat
    repeat(state)  # warm-up: allocations, kernels chosen, caches filled
    seconds: list[float] = []
    start = time.perf_counter()
    while len(seconds) < min_repeats or time.perf_counter() - start < min_seconds:
        began = time.perf_counter()
        repeat(state)
        seconds.append(time.perf_counter() - began)
    return {"workload": WORKLOADS[framework], "seconds": seconds, "device_model": device_model(framework, device)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
