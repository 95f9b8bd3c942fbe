"""What a gradient measured by finite differences costs at the sizes of the backward cost checks
(grader.checking.backward_cost), against the most time those checks ever allow.

A submission that measures its gradients runs its own forward pass twice per input element, as the
course's numeric gradient check does; its forward pass is vectorized (the reference's here), which is
the cheapest such a submission can be. Each case's cost is extrapolated from `--budget` seconds of
that loop per input, so the whole run takes a minute or two. A measured gradient must stay far above
the check's limit (LIMIT_S), also on a core several times faster than this one.
A submission that knows which elements share no output perturbs those together ("grouped": pairs of
forward passes times the forward pass's time); where a layer's elements group in a few (ReLU: one;
max pooling: four), no input size tells that from backpropagation by time.

    python benchmarks/bench_measured_gradients.py [--budget 1.0] [--assignment a1_fc_numpy,a2_cnn_torch]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from grader.checking import backward_cost  # noqa: E402
from grader.oracle.reference import load_reference_package  # noqa: E402

H = 1e-5


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(assignment: str, module: str) -> Any:
    """A module of the reference solution, imported as the grader imports it: over the assignment's
    provided files, as one package."""
    package = f"reference_{assignment}"
    if package not in sys.modules:
        load_reference_package(assignment, ROOT / "reference" / assignment, ROOT / "assignments" / assignment)
    return importlib.import_module(f"{package}.{module}")


def measured_seconds(f: Callable[[Any], Any], x: Any, dout: Any, budget_s: float) -> float:
    """Seconds the course's numeric gradient of f at x takes, extrapolated from budget_s of it."""
    flat = x.reshape(-1)  # a view: perturbing it perturbs x
    started, done = time.perf_counter(), 0
    while done < flat.shape[0] and time.perf_counter() - started < budget_s:
        old = float(flat[done])
        flat[done] = old + H
        pos = _copy(f(x))
        flat[done] = old - H
        neg = _copy(f(x))
        flat[done] = old
        float(((pos - neg) * dout).sum()) / (2 * H)
        done += 1
    return (time.perf_counter() - started) / done * flat.shape[0]


def _copy(value: Any) -> Any:
    """A copy of a forward pass's output, as the course's numeric gradient takes one."""
    return value.clone() if hasattr(value, "clone") else np.array(value, dtype=float)


def case_cost(forward: Callable[..., Any], args: list[Any], budget_s: float, rng: np.random.Generator) -> tuple[float, float]:
    """(forward seconds, measured-gradient seconds over every array argument) of one cost case; the
    forward pass's time is the least of three (the first pays for warming up)."""
    forward_s = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        out = forward(*args)
        forward_s = min(forward_s, time.perf_counter() - started)
    out = out[0] if isinstance(out, tuple) else out
    dout = rng.standard_normal(tuple(out.shape)) if hasattr(out, "shape") else 1.0
    if not isinstance(out, np.ndarray) and hasattr(out, "new_tensor"):
        dout = out.new_tensor(dout)
    total = 0.0
    for position, value in enumerate(args):
        if not hasattr(value, "shape") or "int" in str(value.dtype):
            continue  # parameters' dictionaries and labels: no gradient

        def f(v, position=position):
            changed = list(args)
            changed[position] = v
            result = forward(*changed)
            return result[0] if isinstance(result, tuple) else result
        total += measured_seconds(f, value.copy() if isinstance(value, np.ndarray) else value.clone(), dout, budget_s)
    return forward_s, total


def groups(task: str, args: list[Any]) -> int:
    """How many pairs of forward passes a measured gradient takes where it perturbs together the
    elements that share no output (all of ReLU's at once, one element per column of batch
    normalization): the fewest a measuring submission can get by with, knowing the layer's structure."""
    layer = task.split(".")[0]
    shape = tuple(args[0].shape)
    if layer in ("affine", "linear", "linear_relu"):
        features = int(np.prod(shape[1:]))
        return 2 * features + 1          # x: one per row; w: one per column of w; b: all at once
    if layer in ("relu", "sigmoid", "dropout"):
        return 1
    if layer == "batchnorm":
        return shape[0] + 2              # x: one per column, coupled along the batch
    if layer == "layernorm":
        return shape[1] + 2
    if layer == "conv":
        channels, height, width = tuple(args[1].shape)[1:]
        return 2 * channels * height * width + 1   # x: its receptive footprint; w: one per filter
    if layer == "max_pool":
        return 4                         # one per position in a 2 x 2 window
    if layer == "spatial_batchnorm":
        return shape[0] * shape[2] * shape[3] + 2
    if layer == "spatial_groupnorm":
        return shape[1] // args[3] * shape[2] * shape[3] + 2
    if layer in ("softmax_loss", "svm_loss"):
        return shape[1]                  # one per class, across the rows at once
    raise ValueError(f"no grouping known for {task}")


def cases(assignment: str) -> list[tuple[str, Callable[..., Any], Callable[[np.random.Generator], list[Any]]]]:
    """(task, vectorized forward, input builder) of every backward and loss cost check of `assignment`."""
    checks = load(ROOT / "assignments" / assignment / "checks" / "test_layers.py", f"{assignment}_checks")
    layers = reference(assignment, "layers")
    found = []
    for param in checks.cost_cases():
        task = param.id
        if assignment.startswith("a1"):
            forward_name, _, make, _ = param.values
            forward = getattr(layers, forward_name)
        else:
            layer, _, make, _ = param.values
            forward = getattr(layers, layer).forward
        found.append((task, forward, make))
    wrap = (lambda a: a) if assignment.startswith("a1") else _tensor
    for loss in ("softmax_loss", "svm_loss"):
        def make(rng, wrap=wrap):  # the loss cost check's inputs (test_loss_gradient_costs_about_what_the_loss_costs)
            return [wrap(rng.standard_normal((2, 50000))), wrap(rng.integers(0, 50000, 2))]
        found.append((f"{loss}.gradient", getattr(layers, loss), make))
    return found


def model_cost(assignment: str, name: str, budget_s: float) -> tuple[float, float]:
    """(scores seconds, measured-gradient seconds over every parameter) of a model cost check's model."""
    models = reference(assignment, "models")
    wrap = (lambda a: a) if assignment.startswith("a1") else _tensor
    D, H, C, N = 1000, 200, 10, 2  # the model cost check's sizes
    extra = {} if assignment.startswith("a1") and name == "TwoLayerNet" else {"dtype": _float64(assignment)}
    model = (models.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=5e-2, reg=0.1, **extra)
             if name == "TwoLayerNet" else
             models.FullyConnectedNet([H, H], input_dim=D, num_classes=C, weight_scale=5e-2, reg=0.1, **extra))
    rng = np.random.default_rng(0)
    X, y = wrap(rng.standard_normal((N, D))), wrap(rng.integers(0, C, N))
    started = time.perf_counter()
    model.loss(X)
    scores_s = time.perf_counter() - started
    total = sum(measured_seconds(lambda _: model.loss(X, y)[0], value, 1.0, budget_s)
                for value in model.params.values())
    return scores_s, total


def _float64(assignment: str) -> Any:
    if assignment.startswith("a1"):
        return np.float64
    import torch
    return torch.float64


def _tensor(array: np.ndarray) -> Any:
    import torch
    return torch.from_numpy(np.ascontiguousarray(array))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of measuring per input (default 1)")
    parser.add_argument("--assignment", default="a1_fc_numpy,a2_cnn_torch")
    options = parser.parse_args()
    limit = backward_cost.LIMIT_S
    print(describe_machine())
    print(f"what a backward cost check allows: {limit:.0f} s")
    print(f"{'task':34s} {'forward':>10s} {'measured':>10s} {'x limit':>10s} {'grouped':>10s} {'x limit':>10s}")
    lowest, by_time_alone = float("inf"), []
    for assignment in options.assignment.split(","):
        for task, forward, make in cases(assignment):
            args = make(np.random.default_rng(0))
            forward_s, measured_s = case_cost(forward, args, options.budget, np.random.default_rng(1))
            grouped_s = 2 * groups(task, args) * forward_s
            lowest = min(lowest, measured_s / limit)
            if grouped_s < limit:
                by_time_alone.append(f"{assignment[:2]} {task}")
            print(f"{assignment[:2]} {task:31s} {forward_s * 1e3:8.2f}ms {measured_s:9.0f}s {measured_s / limit:9.1f}x "
                  f"{grouped_s:9.1f}s {grouped_s / limit:9.2f}x", flush=True)
        for name in ("TwoLayerNet", "FullyConnectedNet"):
            scores_s, measured_s = model_cost(assignment, name, options.budget)
            lowest = min(lowest, measured_s / limit)
            print(f"{assignment[:2]} {name + '.loss':31s} {scores_s * 1e3:8.2f}ms {measured_s:9.0f}s "
                  f"{measured_s / limit:9.1f}x", flush=True)
    print(f"lowest: a measured gradient takes {lowest:.1f} times the most a check allows")
    print(f"measured in groups, within the most a check allows: {', '.join(by_time_alone) or 'none'}")


if __name__ == "__main__":
    main()
