"""Training tasks: the student's entry builds the provided Solver in a fresh worker, the grader's own
clock times everything the submission's code does from the import of its modules to the last
prediction, and the grader computes the accuracy from predictions on images the worker first sees
after training; their labels never leave the grader.

- Hand-off: the training data crosses into a fresh worker before any of the submission's code has
  run there, so nothing of the submission's can watch it arrive. The clock starts after it and covers
  importing the entry's modules (their import-time work included), the entry, `train()` and the
  predictions.
- The solver: the entry must return the provided Solver (`solver.Solver`; `trainer.Trainer` where an
  assignment provides a Trainer) over the model it built. The worker imports the provided module and
  keeps (pins) its class before any of the submission's modules is imported; the provided modules
  import the student's ones only inside the functions that use them (the Solver's update rules), so
  the pin runs none of the submission's code, and none of it can make the class the worker keeps. The
  fresh worker starts in a scratch directory written afresh (`PreparedSubmission.renew`), so a
  provided file that code run at check time rewrote (or a `.pyc` it planted) is not the one pinned.
  At the pin the worker records what defines the class, each part as the objects it is: the namespace
  of the class, of its bases in the package and of the other classes of its module, its bases and
  metaclass, the globals of its module, and for each function there its code, defaults, keyword
  defaults and closure. When the entry returns, and again when train() returns (before the
  predictions), the grader asks whether the object's type is exactly the pinned class, none of those
  parts changed, and the object holds none of the class's methods as its own attribute. Anything else
  (a subclass, a class of the same name, another object, or the provided class changed: a method
  replaced, its code or defaults, a global of its module) is trained and measured as asked, and
  scores nothing, with a message naming what changed.
- What that check guarantees, and what it does not: a submission that keeps to the course's rule
  trains in the provided loop, and one that breaks it with the ordinary means (its own Solver, a
  subclass, a patched method, class creation hooked while the provided file is imported) is named
  and scores nothing. It does not make the loop's work honest: the submission's model (its `loss`
  and `params`) and update rule run inside the loop, with the Solver's state at hand, and can do
  anything there (train on anything for as long as they like, reach the Solver through its frames,
  change the libraries it calls: torch, NumPy, `time` and the builtins are shared with the
  submission and not recorded); and the check itself runs in the worker, in the same process as the
  submission's code, which can rewrite it. What bounds a submission's score, whatever it does, is the
  grader's clock (everything from the import of its modules to the last prediction) and the
  held-out images, sent after training, whose labels never leave the grader.
- Held-out tasks are scored on the dataset's test split with every pixel moved by up to
  HELD_OUT_NOISE steps per run. In official mode the synthetic test split is drawn from a secret seed
  per run (`secrets.randbits`: neither recorded nor sent to the worker) and the noise from another;
  public mode keeps the fixed seed of the cached stand-in (a student's machine can regenerate it
  anyway) and noise from the run's public seed.
- Overfit tasks ("overfit 50 images to 100 %") ask for a network that answers right on the images it
  was trained on. They are scored on those images as the grader holds them, sent after training, each
  with one pixel (drawn per run, secret in official mode) moved by one step: a network that has fit
  the images answers exactly as before (noise over every pixel would flip an honest deep network's
  answer on one image in ten runs), while a table keyed on the arrays the entry was handed matches
  none of them. A model that memorizes by nearest neighbour would pass: telling it from a network
  would take naming the model class a task expects.
- Scores must be an (N, classes) array of real numbers without NaN; anything else costs the task, with
  a message, and nothing else.

A worker killed by a signal the grader did not send (`WorkerLost`) costs nothing: the task is trained
again, once, from the hand-off in a fresh worker.

The limit is the written one scaled to the device the task trains on (grader.engine.calibration),
timed before the hand-off with nothing of the submission's running; the run may pass it by a grace
(OVERRUN_*) for the last iteration and sending the predictions back, which every message states.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from grader.checking import notes

from grader.assignment import CalibrationSpec, TaskSpec
from grader.boundary import protocol, wire
from grader.checking.compare import CheckFailed
from grader.checking.proxies import fetch
from grader.engine.calibration import PROCESS_CALIBRATIONS, CalibrationError, ScaledLimit, scaled_limit
from grader.engine.calibration_workload import cpu_model
from grader.engine.training_place import TrainingPlace, describe_cores
from grader.engine.training_history import TrainingHistory, TrainingProgress, diagnosis, history_from
from grader.results import Outcome, TaskResult, TrainingMeasurement
from grader.sandbox import remote
from grader.sandbox.errors import BudgetSpent, EarlierTimeout
from grader.sandbox.errors import StudentException, WorkerFailure, WorkerLost, WorkerTimeout
from grader.sandbox.remote import RemoteObject, StudentProxy, WorkerSession

# What the provided Solver and Trainer record as they train (see their docstrings).
HISTORY_ATTRIBUTES = ("loss_history", "train_acc_history", "val_acc_history")
# Training may run over its limit by this much (the Solver stops *before* an iteration that would
# cross it, but the last iteration and the process's start-up noise need a margin).
OVERRUN_FRACTION = 0.10
OVERRUN_SECONDS = 2.0
PREDICTION_BATCH = 500
# Per-pixel noise added to the held-out images each run (uint8 steps).
HELD_OUT_NOISE = 2
# The data's crossing into the fresh worker (and onto its device), before the clock starts.
HAND_OFF_TIMEOUT_S = 300.0
# The provided class a training entry returns, by the provided file that defines it: an assignment
# provides one of these.
PROVIDED_TRAINERS = (("solver", "Solver"), ("trainer", "Trainer"))


@dataclass(frozen=True)
class TrainingData:
    """Images prepared as the course's notebooks prepare them (float32, mean image subtracted)."""

    source: str                      # cifar10 | synthetic
    data_dict: dict[str, np.ndarray]  # what the student's entry receives
    held_out_images: np.ndarray      # the test split, perturbed this run
    held_out_labels: np.ndarray
    evaluation_images: np.ndarray    # what the task is scored on: held_out_images, or nudged training images
    evaluation_labels: np.ndarray
    num_classes: int


def prepare_training_data(dataset: Any, rng: np.random.Generator, *, num_val: int,
                          train_subset: Optional[int], evaluate_on: str = "held_out",
                          dtype: type = np.float32) -> TrainingData:
    """`rng` draws the per-run noise. `evaluate_on="train"`: for tasks scored on the training images
    (overfitting a few of them), the validation split is those same images, so the Solver's "best
    parameters" are the best on what is scored, not an earlier epoch that happened to guess the
    unrelated validation images better."""
    train_images, train_labels = dataset.train_images, dataset.train_labels
    num_train = len(train_images) - num_val
    X_train, y_train = train_images[:num_train], train_labels[:num_train]
    X_val, y_val = train_images[num_train:], train_labels[num_train:]
    if train_subset is not None:
        X_train, y_train = X_train[:train_subset], y_train[:train_subset]
    mean_image = X_train.astype(np.float64).mean(axis=0)

    def preprocess(images: np.ndarray) -> np.ndarray:
        return (images.astype(np.float64) - mean_image).astype(dtype)

    held_out = preprocess(perturbed(dataset.test_images, rng))
    held_out_labels = dataset.test_labels.astype(np.int64)
    if evaluate_on == "train":
        X_val, y_val = X_train, y_train
        evaluation, evaluation_labels = preprocess(nudged(X_train, rng)), y_train.astype(np.int64)
    else:
        evaluation, evaluation_labels = held_out, held_out_labels
    data_dict = {"X_train": preprocess(X_train), "y_train": y_train.astype(np.int64),
                 "X_val": preprocess(X_val), "y_val": y_val.astype(np.int64)}
    return TrainingData(dataset.source, data_dict, held_out, held_out_labels, evaluation, evaluation_labels,
                        len(dataset.class_names))


def perturbed(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 images with every pixel moved by up to HELD_OUT_NOISE steps, at random."""
    noise = rng.integers(-HELD_OUT_NOISE, HELD_OUT_NOISE + 1, size=images.shape, dtype=np.int16)
    return np.clip(images.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def nudged(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 images (N, ...) with one pixel of each, drawn at random, moved by one step (down from 255)."""
    flat = images.reshape(len(images), -1).copy()
    rows, columns = np.arange(len(flat)), rng.integers(0, flat.shape[1], size=len(flat))
    values = flat[rows, columns].astype(np.int16)
    step = np.where(values == 255, -1, rng.choice([-1, 1], size=len(flat)))
    flat[rows, columns] = np.where(values == 0, 1, values + step)
    return flat.reshape(images.shape)


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


def provided_trainer(package: Path) -> tuple[str, str]:
    """(module, class) of the provided class the assignment's training entries return."""
    for module, name in PROVIDED_TRAINERS:
        if (package / f"{module}.py").is_file():
            return module, name
    return PROVIDED_TRAINERS[0]


class Clock:
    """The grader's clock of one training run: started once the data is in the worker."""

    def __init__(self, hard_limit_s: float):
        self.hard_limit_s = hard_limit_s
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        """The time the next request may take; WorkerTimeout once there is none."""
        left = self.hard_limit_s - self.elapsed()
        if left <= 0:
            raise WorkerTimeout("over the limit")
        return left


@dataclass(frozen=True)
class TrainingRun:
    predictions: np.ndarray
    seconds: float          # from the clock's start to the last prediction
    provided: bool          # whether the entry returned the provided class, as provided, before and after train()
    history: Optional[TrainingHistory] = None  # as the solver recorded it, read after the clock stopped


def run_training_task(session: WorkerSession, task: TaskSpec, data: TrainingData, device: str,
                      framework: str, place: Optional[TrainingPlace] = None,
                      scaled: Optional[ScaledLimit] = None, device_model: Optional[str] = None) -> TaskResult:
    """`scaled`: the task's limit on this device (grader.engine.calibration); the written one by default."""
    spec = task.training
    assert spec is not None
    place = place or TrainingPlace()
    scaled = scaled or ScaledLimit(spec.time_limit_s, spec.time_limit_s)
    span: list[float] = []  # the clock's start and end, in seconds since the epoch
    target = spec.target[data.source]
    floor = spec.partial_credit_from.get(data.source)
    lost: list[str] = []  # the signal a first worker was lost to, when the task had to be trained again

    def result(outcome: Outcome, message: str, points: float = 0.0, accuracy: Optional[float] = None,
               seconds: Optional[float] = None, detail: str = "",
               history: Optional[TrainingHistory] = None) -> TaskResult:
        if lost:
            note = notes.ran_again_after_loss(lost[0], "the training was run again from the start in a fresh worker")
            detail = f"note: {note}" + (f"\n{detail}" if detail else "")
        measurement = TrainingMeasurement(
            accuracy, seconds, device, data.source, target, floor, history=history, time_limit_s=limit,
            grace_s=hard_limit - limit, written_limit_s=scaled.written_s, limit_factor=scaled.factor,
            limit_factor_spread=scaled.spread, reference_device=scaled.reference_device, device_model=device_model,
            cores=place.cores, alongside=place.alongside, started_at=span[0] if span else None,
            ended_at=span[1] if len(span) > 1 else None)
        return TaskResult(task.id, task.title, task.points, points, outcome, message, kind="training",
                          visibility=task.visibility, detail=detail, training=measurement)

    worker_device = device if framework == "torch" else None

    def keep(value: Any, timeout_s: float) -> Any:
        return session.keep(_framework_value(value, framework, spec.dtype), device=worker_device, timeout_s=timeout_s)

    module, function = spec.entry.split(".")
    trainer_module, trainer_class = provided_trainer(session.submission_dir)
    limit = scaled.limit_s
    hard_limit = limit * (1 + OVERRUN_FRACTION) + OVERRUN_SECONDS
    allowed = f"{scaled.describe()}, grace {hard_limit - limit:.1f} s for the last iteration and sending predictions back"
    stage = "training"  # what the student's code was doing when it failed, for the messages below
    refused = ""        # why what the entry returned does not count, once known

    def train_and_predict() -> TrainingRun:
        nonlocal stage, refused
        stage, refused = "training", ""
        session.fresh_worker()
        # None of the submission's code has run in the fresh worker: nothing watches the data cross
        # (and reach the device, whole) before the clock starts.
        data_handle = session.keep({k: _framework_value(v, framework, spec.dtype) for k, v in data.data_dict.items()},
                                   device=worker_device, timeout_s=HAND_OFF_TIMEOUT_S)
        clock = Clock(hard_limit)
        span[:] = [time.time()]
        session.pin_class(trainer_module, trainer_class, clock.left())
        session.import_module(module, clock.left())
        entry = getattr(getattr(StudentProxy(session), module), function)
        entry_args = (data_handle,) if framework != "torch" else (data_handle, _torch_dtype(spec.dtype), device)
        solver = remote.call(entry, entry_args, {}, keep=True, timeout_s=clock.left())
        refused = not_provided(session.is_pinned_class(solver, trainer_module, trainer_class, clock.left()),
                               remote.type_name(solver) or "object")
        if not refused:  # its progress lines feed the live display (printing costs the run microseconds)
            solver.verbose = True
        remote.call(solver.train, (), {"time_limit": max(limit - clock.elapsed(), 0.0)}, timeout_s=clock.left())
        if not refused:  # the submission's model and update rule ran inside train(): asked again
            refused = not_provided(session.is_pinned_class(solver, trainer_module, trainer_class, clock.left()),
                                   "", after_training=True)
        # The clock runs until the last prediction is back: GPU work the training queued and did not
        # wait for, or training that goes on in a thread, has to finish (or is cut off) inside it.
        stage = "predicting"
        predictions = _predict(solver.model, data.evaluation_images, keep, clock.left, data.num_classes)
        seconds = clock.elapsed()
        span.append(time.time())
        return TrainingRun(predictions, seconds, not refused, _read_history(solver))

    def not_provided(check: protocol.PinCheck, returned: str, after_training: bool = False) -> str:
        """Why the object the entry returned does not count ("" where it does)."""
        if check.provided:
            return ""
        as_provided = f"the provided {trainer_class} must be used as provided"
        if check.same_type:
            when = "; found after train() returned" if after_training else ""
            return (f"the {trainer_class} of {trainer_module}.py was changed after the grader loaded it "
                    f"({', '.join(check.changed)}{when}): {as_provided}")
        if after_training:
            return (f"the {trainer_class} that {function} returned had its class replaced during training: "
                    f"{as_provided}")
        return (f"{function} returned {_article(returned)} {returned}, not the provided {trainer_class} of "
                f"{trainer_module}.py (a subclass or a class of your own does not count): build the "
                f"{trainer_class} with {trainer_class}(...) and return it untrained")

    try:
        try:
            run = train_and_predict()
        except WorkerLost as first:
            # Killed from outside (an operator, the out-of-memory killer): the machine's failure, not
            # the student's, so the task is trained again from the start in a fresh worker.
            lost.append(first.signal_name)
            run = train_and_predict()
    except WorkerLost as second:  # the second try's: the first is handled above
        return result(Outcome.ERROR, notes.lost_twice(lost[0], second.signal_name))
    except StudentException as exc:
        if exc.is_not_implemented:
            return result(Outcome.NOT_IMPLEMENTED, f"not implemented yet: {exc.message}")
        also = f" ({refused})" if refused else ""
        return result(Outcome.ERROR, f"{stage} raised {exc.type_name}: {exc.message}{also}", detail=exc.traceback)
    except EarlierTimeout as exc:
        return result(Outcome.TIMEOUT, f"{stage} stopped: {exc}")
    except BudgetSpent:
        return result(Outcome.TIMEOUT, "not trained: the submission used up its time budget before this task")
    except WorkerTimeout:
        return result(Outcome.TIMEOUT, f"training did not finish within {hard_limit:.1f} s ({allowed}); the worker "
                                       "was stopped")
    except WorkerFailure as exc:
        return result(Outcome.ERROR, f"{stage} stopped: {exc}")
    except CheckFailed as exc:
        return result(Outcome.FAILED, exc.message)
    except wire.WireError as exc:
        return result(Outcome.FAILED, f"{stage}: the code returned something that cannot be graded: {exc}")
    if run.seconds > hard_limit:
        return result(Outcome.FAILED, f"training took {run.seconds:.1f} s, over {hard_limit:.1f} s ({allowed})",
                      seconds=run.seconds)
    labels = data.evaluation_labels
    accuracy = float(np.mean(run.predictions == labels))
    split = "training images (one pixel of each nudged)" if spec.evaluate_on == "train" else "held-out images"
    measured = (f"{accuracy:.1%} accuracy on {len(labels)} {split} ({data.source}, {device}) after "
                f"{run.seconds:.1f} s of training and prediction ({allowed})")
    if not run.provided:
        return result(Outcome.FAILED, f"{refused}; its model's {measured} is not scored",
                      accuracy=accuracy, seconds=run.seconds)
    points = score_for(accuracy, target, floor, task.points)
    message = (f"{measured}; target {target:.0%}" + (f", partial credit from {floor:.0%}" if floor is not None else ""))
    if run.seconds > limit:  # within the grace, or it would have failed above: say why it counts
        message += f"; {run.seconds - limit:.1f} s over the limit, inside the grace"
    outcome = Outcome.PASSED if points >= task.points else Outcome.FAILED
    if outcome is Outcome.FAILED and (why := diagnosis(run.history)):
        message += f"; {why}"
    return result(outcome, message, points=points, accuracy=accuracy, seconds=run.seconds, history=run.history)


def stop_student_code(session: WorkerSession) -> None:
    """Ends the session's worker (the checks' one, or the last task's), with whatever the submission's
    code left running in it: a thread that burns CPU while the device is timed would make it look slow
    and buy the training more seconds. The training starts a fresh worker anyway."""
    session.close()


def limit_here(task: TaskSpec, framework: str, device: str, place: TrainingPlace,
               calibration: Optional[CalibrationSpec]) -> tuple[ScaledLimit, Optional[str], str]:
    """The task's limit on the device it trains on, the device's model where known, and why the limit
    is as written where it should have been scaled and could not be."""
    spec = task.training
    assert spec is not None
    written = ScaledLimit(spec.time_limit_s, spec.time_limit_s)
    cpu = f"{cpu_model()} on {describe_cores(place.cores)}" if place.cores else cpu_model()
    fallback_model = cpu if device == "cpu" else None
    if calibration is None or not spec.calibrated:
        return written, fallback_model, ""
    try:
        timing = PROCESS_CALIBRATIONS.timing(framework, device, place)
    except CalibrationError as exc:
        return written, fallback_model, f"the time limit is as written: this device could not be calibrated ({exc})"
    return scaled_limit(spec.time_limit_s, timing, calibration), timing.device_model, ""


def with_check_times(result: TaskResult, progress: TrainingProgress) -> TaskResult:
    """`result` with the grader's time of each accuracy check in its history, where the run printed
    as many checks as the history holds (a run trained again after a lost worker printed more)."""
    measured = result.training
    history = measured.history if measured is not None else None
    if history is None or len(progress.epoch_times_s) < len(history.val_accuracy) or not history.val_accuracy:
        return result
    times = tuple(progress.epoch_times_s[-len(history.val_accuracy):])
    return dataclasses.replace(result, training=dataclasses.replace(
        measured, history=dataclasses.replace(history, check_times_s=times)))


def _read_history(solver: RemoteObject) -> Optional[TrainingHistory]:
    """The curves the solver recorded, or None where they cannot be read (they explain a result and
    never decide one, so nothing is lost without them)."""
    try:
        return history_from(*(fetch(getattr(solver, name)) for name in HISTORY_ATTRIBUTES))
    except (StudentException, WorkerFailure, wire.WireError, CheckFailed, BudgetSpent, EarlierTimeout):
        return None


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _predict(model: Any, images: np.ndarray, keep: Callable[[Any, float], Any], time_left: Callable[[], float],
             num_classes: int) -> np.ndarray:
    """The classes the model predicts, batch by batch: the model's scores come back and the grader
    takes the argmax; the labels never leave the grader."""
    predictions = []
    for start in range(0, len(images), PREDICTION_BATCH):
        batch = images[start:start + PREDICTION_BATCH]
        scores = remote.call(model.loss, (keep(batch, time_left()),), {}, timeout_s=time_left())
        predictions.append(predicted_classes(scores, len(batch), num_classes))
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def predicted_classes(scores: Any, count: int, num_classes: int) -> np.ndarray:
    """The class each row of `scores` (what model.loss(X) returned for `count` images) picks; CheckFailed,
    saying what is wrong, for anything but a (count, num_classes) array of real numbers without NaN."""
    array = _real_array(scores)
    if array.shape != (count, num_classes):
        raise CheckFailed(f"model.loss(X) returned scores of shape {tuple(array.shape)} for {count} images; "
                          f"expected ({count}, {num_classes}): one score per class")
    nan_rows = int(np.isnan(array).any(axis=1).sum()) if array.dtype.kind == "f" else 0
    if nan_rows:
        raise CheckFailed(f"model.loss(X) returned NaN scores for {nan_rows} of {count} images (did the training "
                          "diverge? a smaller learning rate or weight scale may help)")
    return np.argmax(array, axis=1)


def _real_array(value: Any) -> np.ndarray:
    """`value` as a NumPy array of real numbers (bfloat16 and float16 widened); CheckFailed otherwise."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise CheckFailed(f"model.loss(X) returned scores of dtype {value.dtype}; expected real numbers")
        wide = torch.float64 if value.is_floating_point() else torch.int64
        return value.detach().to("cpu", wide).numpy()
    if not isinstance(value, np.ndarray):
        kind = remote.type_name(value) if isinstance(value, RemoteObject) else type(value).__name__
        raise CheckFailed(f"model.loss(X) returned {_article(kind)} {kind}, not an array of class scores")
    if value.dtype.kind not in "fiu":
        raise CheckFailed(f"model.loss(X) returned scores of dtype {value.dtype}; expected real numbers")
    return value


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def load_training_dataset(options: Any) -> Any:
    """The dataset `--data` asks for; raises DatasetUnavailable when CIFAR-10 cannot be had. The
    synthetic stand-in is the cached one of seed 0 (see `secret_held_out` for official grading)."""
    from grader.data import load_synthetic

    if options.data == "synthetic":
        return load_synthetic(seed=0, num_train=options.synthetic_train + options.validation_images,
                              num_test=options.synthetic_test)
    from grader.data import load_cifar10

    return load_cifar10(data_dir=options.data_dir, download=True)


def secret_held_out(dataset: Any, mode: str) -> Any:
    """Official grading on the synthetic stand-in: its test split drawn afresh, in memory, from a secret
    seed, so that nothing in the sandbox can regenerate it. CIFAR-10's test split is what it is."""
    if mode != "official" or dataset.source != "synthetic":
        return dataset
    from grader.data import with_test_split

    return with_test_split(dataset, secrets.randbits(64))


def noise_generator(mode: str, seed: int, index: int) -> np.random.Generator:
    """The per-run noise of task `index`: secret in official grading, from the run's seed in public mode."""
    return np.random.default_rng(secrets.randbits(128) if mode == "official" else [seed, index])


def run_training_tasks(session: WorkerSession, tasks: list[TaskSpec], options: Any, seed: int,
                       framework: str, place: Optional[TrainingPlace] = None,
                       calibration: Optional[CalibrationSpec] = None) -> list[TaskResult]:
    """`place`: where the session's workers train (the caller started the session there);
    `calibration`: the assignment's, which each calibrated task's limit is scaled by."""
    place = place or TrainingPlace()
    from grader.data import DatasetError, DatasetUnavailable

    def skipped(task: TaskSpec, why: str, detail: str = "") -> TaskResult:
        return TaskResult(task.id, task.title, task.points, 0.0, Outcome.SKIPPED, why, kind="training",
                          visibility=task.visibility, detail=detail)

    try:
        dataset = load_training_dataset(options)
    except DatasetUnavailable as exc:
        if options.data == "cifar10":
            raise
        # The table's line says it short; the detail says the rest, without saying it twice.
        rest = str(exc).removeprefix("CIFAR-10 is not available: ")
        return [skipped(t, exc.summary, detail=rest[:1].upper() + rest[1:]) for t in tasks]
    except DatasetError:
        raise
    dataset = secret_held_out(dataset, options.mode)
    results = []
    for task in tasks:
        assert task.training is not None
        device = task.training.device if options.device == "auto" else options.device
        if device == "cuda" and not cuda_available():
            if options.without_gpu == "leave_out":
                continue
            advice = " (grade with --device cpu to run it on the CPU anyway)" if options.without_gpu == "advise" else ""
            results.append(skipped(task, f"this task trains on a GPU and this machine has none (no CUDA): it is not graded "
                                         f"here{advice}"))
            continue
        if dataset.source not in task.training.target:
            results.append(skipped(task, f"the task states no target for {dataset.source} data"))
            continue
        options.on_task_start(task.id)
        data = prepare_training_data(dataset, noise_generator(options.mode, seed, len(results)),
                                     num_val=min(options.validation_images, len(dataset.train_images) // 5),
                                     train_subset=task.training.train_subset,
                                     evaluate_on=task.training.evaluate_on)
        stop_student_code(session)  # nothing of the submission's may run while the device is timed
        scaled, device_model, why_not = limit_here(task, framework, device, place, calibration)
        progress = TrainingProgress(limit_s=scaled.limit_s)

        def show_progress(line: str, task_id: str = task.id, progress: TrainingProgress = progress) -> None:
            epoch_ended = progress.read(line)
            if epoch_ended or progress.iteration is not None:
                options.on_training_progress(task_id, progress, epoch_ended)

        session.on_output_line = show_progress
        try:
            result = run_training_task(session, task, data, device, framework, place, scaled, device_model)
            if why_not:
                result = dataclasses.replace(result, detail=f"note: {why_not}" + (f"\n{result.detail}" if result.detail else ""))
        finally:
            session.on_output_line = None
        results.append(with_check_times(result, progress))
    return results
