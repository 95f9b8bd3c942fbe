"""Training tasks: the student's entry builds a Solver in the worker, the grader times the training
with its own clock and computes the accuracy from predictions on images it sends only afterwards.

Held-out images are the dataset's test split with per-run noise, so no table of answers can match
them; their labels never leave the grader. A worker killed by a signal the grader did not send
(`WorkerLost`) costs nothing: the task is trained again, once, in a fresh worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from grader import notes
from grader.assignment import TaskSpec
from grader.compare import CheckFailed, as_array
from grader.remote import StudentProxy, WorkerSession
from grader.results import Outcome, TaskResult, TrainingMeasurement
from grader.worker_process import StudentException, WorkerFailure, WorkerLost, WorkerTimeout

# Training may run over its limit by this much (the Solver stops *before* an iteration that would
# cross it, but the last iteration and the process's start-up noise need a margin).
OVERRUN_FRACTION = 0.10
OVERRUN_SECONDS = 2.0
PREDICTION_BATCH = 500
# Per-pixel noise added to held-out images each run (uint8 steps).
HELD_OUT_NOISE = 2


@dataclass(frozen=True)
class TrainingData:
    """Images prepared as the course's notebooks prepare them (float32, mean image subtracted)."""

    source: str                 # cifar10 | synthetic
    data_dict: dict[str, np.ndarray]
    held_out_images: np.ndarray
    held_out_labels: np.ndarray


def prepare_training_data(dataset: Any, rng: np.random.Generator, *, num_val: int,
                          train_subset: Optional[int], validate_on_train: bool = False,
                          dtype: type = np.float32) -> TrainingData:
    """`validate_on_train`: for tasks scored on the training images (overfitting a few of them), the
    validation split is those same images, so the Solver's "best parameters" are the best on what is
    scored, not an earlier epoch that happened to guess the unrelated validation images better."""
    train_images, train_labels = dataset.train_images, dataset.train_labels
    num_train = len(train_images) - num_val
    X_train, y_train = train_images[:num_train], train_labels[:num_train]
    X_val, y_val = train_images[num_train:], train_labels[num_train:]
    if train_subset is not None:
        X_train, y_train = X_train[:train_subset], y_train[:train_subset]
    mean_image = X_train.astype(np.float64).mean(axis=0)
    noisy = dataset.test_images.astype(np.int16) + rng.integers(-HELD_OUT_NOISE, HELD_OUT_NOISE + 1,
                                                                size=dataset.test_images.shape, dtype=np.int16)
    held_out = np.clip(noisy, 0, 255)

    def preprocess(images: np.ndarray) -> np.ndarray:
        return (images.astype(np.float64) - mean_image).astype(dtype)

    if validate_on_train:
        X_val, y_val = X_train, y_train
    data_dict = {"X_train": preprocess(X_train), "y_train": y_train.astype(np.int64),
                 "X_val": preprocess(X_val), "y_val": y_val.astype(np.int64)}
    return TrainingData(dataset.source, data_dict, preprocess(held_out), dataset.test_labels.astype(np.int64))


def score_for(accuracy: float, target: float, floor: Optional[float], max_points: float) -> float:
    if accuracy >= target:
        return max_points
    if floor is None or accuracy < floor:
        return 0.0
    return round(max_points * (accuracy - floor) / (target - floor), 4)


def _framework_value(value: np.ndarray, framework: str, dtype: str) -> Any:
    """What the student's code expects: NumPy arrays, or tensors (floats in the task's dtype)."""
    if framework != "torch":
        return value
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(value))
    return tensor.to(getattr(torch, dtype)) if tensor.is_floating_point() else tensor


def run_training_task(session: WorkerSession, task: TaskSpec, data: TrainingData, device: str,
                      framework: str) -> TaskResult:
    spec = task.training
    assert spec is not None
    target = spec.target[data.source]
    floor = spec.partial_credit_from.get(data.source)
    lost: list[str] = []  # the signal a first worker was lost to, when the task had to be trained again

    def result(outcome: Outcome, message: str, points: float = 0.0, accuracy: Optional[float] = None,
               seconds: Optional[float] = None, detail: str = "") -> TaskResult:
        if lost:
            note = notes.ran_again_after_loss(lost[0], "the training was run again from the start in a fresh worker")
            detail = f"note: {note}" + (f"\n{detail}" if detail else "")
        measurement = TrainingMeasurement(accuracy, seconds, device, data.source, target, floor)
        return TaskResult(task.id, task.title, task.points, points, outcome, message, kind="training",
                          visibility=task.visibility, detail=detail, training=measurement)

    if spec.evaluate_on == "train":
        images, labels = data.data_dict["X_train"], data.data_dict["y_train"]
    else:
        images, labels = data.held_out_images, data.held_out_labels
    worker_device = device if framework == "torch" else None

    def hold(value: Any, timeout_s: float) -> Any:
        return session.hold(_framework_value(value, framework, spec.dtype), device=worker_device, timeout_s=timeout_s)

    module, function = spec.entry.split(".")
    limit = spec.time_limit_s
    hard_limit = limit * (1 + OVERRUN_FRACTION) + OVERRUN_SECONDS
    stage = "training"  # what the student's code was doing when it failed, for the messages below

    def train_and_predict() -> tuple[np.ndarray, float]:
        """Predictions on `images` and the seconds from the entry's call to the last prediction."""
        nonlocal stage
        stage = "training"
        # The data crosses (and reaches the device, whole) before the clock starts.
        data_handle = session.hold({k: _framework_value(v, framework, spec.dtype) for k, v in data.data_dict.items()},
                                   device=worker_device, timeout_s=300)
        entry = getattr(getattr(StudentProxy(session), module), function)
        entry_args = (data_handle,) if framework != "torch" else (data_handle, _torch_dtype(spec.dtype), device)

        def time_left() -> float:
            left = hard_limit - (time.perf_counter() - start)
            if left <= 0:
                raise WorkerTimeout("over the limit")
            return left

        start = time.perf_counter()
        solver = entry._call(entry_args, {}, keep=True, timeout_s=hard_limit)
        solver.train._call((), {"time_limit": max(limit - (time.perf_counter() - start), 0.0)}, timeout_s=time_left())
        # The clock runs until the last prediction is back: GPU work the training queued and did not
        # wait for, or training that goes on in a thread, has to finish (or is cut off) inside it.
        stage = "predicting"
        predictions = _predict(solver.model, images, hold, time_left)
        return predictions, time.perf_counter() - start

    try:
        try:
            predictions, seconds = train_and_predict()
        except WorkerLost as first:
            # Killed from outside (an operator, the out-of-memory killer): the machine's failure, not
            # the student's, so the task is trained again from the start; the session starts a fresh
            # worker after a failure, and the data crosses again.
            lost.append(first.signal_name)
            predictions, seconds = train_and_predict()
    except WorkerLost as second:  # the second try's: the first is handled above
        return result(Outcome.ERROR, notes.lost_twice(lost[0], second.signal_name))
    except StudentException as exc:
        if exc.is_not_implemented:
            return result(Outcome.NOT_IMPLEMENTED, f"not implemented yet: {exc.message}")
        return result(Outcome.ERROR, f"{stage} raised {exc.type_name}: {exc.message}", detail=exc.traceback)
    except WorkerTimeout:
        return result(Outcome.TIMEOUT, f"training did not finish within {hard_limit:.0f} s (limit {limit:g} s plus "
                                       "margin); the worker was stopped")
    except WorkerFailure as exc:
        return result(Outcome.ERROR, f"{stage} stopped: {exc}")
    except CheckFailed as exc:
        return result(Outcome.FAILED, exc.message)
    if seconds > hard_limit:
        return result(Outcome.FAILED, f"training took {seconds:.1f} s, over the {limit:g} s limit", seconds=seconds)
    accuracy = float(np.mean(predictions == labels))
    points = score_for(accuracy, target, floor, task.points)
    split = "training images" if spec.evaluate_on == "train" else "held-out images"
    message = (f"{accuracy:.1%} accuracy on {len(labels)} {split} ({data.source}, {device}) after {seconds:.1f} s "
               f"of training and prediction; "
               f"target {target:.0%}" + (f", partial credit from {floor:.0%}" if floor is not None else ""))
    outcome = Outcome.PASSED if points >= task.points else Outcome.FAILED
    return result(outcome, message, points=points, accuracy=accuracy, seconds=seconds)


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _predict(model: Any, images: np.ndarray, hold: Any, time_left: Any) -> np.ndarray:
    """The classes the model predicts, batch by batch: the model's scores come back and the grader
    takes the argmax; the labels never leave the grader."""
    predictions = []
    for start in range(0, len(images), PREDICTION_BATCH):
        batch = images[start:start + PREDICTION_BATCH]
        scores = as_array(model.loss._call((hold(batch, time_left()),), {}, timeout_s=time_left()),
                          "scores of model.loss(X)")
        if scores.ndim != 2 or scores.shape[0] != len(batch):
            raise CheckFailed(f"model.loss(X) returned scores of shape {scores.shape} for {len(batch)} images; "
                              f"expected ({len(batch)}, num_classes)")
        predictions.append(np.argmax(scores, axis=1))
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def load_training_dataset(options: Any) -> Any:
    """The dataset `--data` asks for; raises DatasetUnavailable when CIFAR-10 cannot be had."""
    from grader.data import load_cifar10, load_synthetic

    if options.data == "synthetic":
        return load_synthetic(seed=0, num_train=options.synthetic_train + options.validation_images,
                              num_test=options.synthetic_test)
    return load_cifar10(data_dir=options.data_dir, download=True)


def run_training_tasks(session: WorkerSession, tasks: list[TaskSpec], options: Any, seed: int,
                       framework: str) -> list[TaskResult]:
    from grader.data import DatasetError, DatasetUnavailable

    def skipped(task: TaskSpec, why: str) -> TaskResult:
        return TaskResult(task.id, task.title, task.points, 0.0, Outcome.SKIPPED, why, kind="training",
                          visibility=task.visibility)

    try:
        dataset = load_training_dataset(options)
    except DatasetUnavailable as exc:
        if options.data == "cifar10":
            raise
        return [skipped(t, f"skipped: CIFAR-10 is not available. {exc}") for t in tasks]
    except DatasetError:
        raise
    results = []
    for task in tasks:
        assert task.training is not None
        device = task.training.device if options.device == "auto" else options.device
        if device == "cuda" and not cuda_available():
            results.append(skipped(task, "skipped: this task trains on a GPU and CUDA is not available here "
                                         "(grade with --device cpu to run it on the CPU anyway)"))
            continue
        if dataset.source not in task.training.target:
            results.append(skipped(task, f"skipped: the task states no target for {dataset.source} data"))
            continue
        options.on_task_start(task.id)
        rng = np.random.default_rng([seed, len(results)])
        data = prepare_training_data(dataset, rng, num_val=min(options.validation_images, len(dataset.train_images) // 5),
                                     train_subset=task.training.train_subset,
                                     validate_on_train=task.training.evaluate_on == "train")
        results.append(run_training_task(session, task, data, device, framework))
    return results
