"""What a training run went through: the loss of each iteration and the accuracies at each check, as
the provided Solver (or Trainer) recorded them, read back after the clock stopped.

The history is the submission's own account, so it never decides a score (the grader computes the
accuracy itself); it explains one. `diagnosis` reads it the way a teaching assistant would ("the loss
became NaN at iteration 37"), `sparkline` draws it in one terminal line and `write_plot` as a small
PNG beside the results.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from grader.files import atomic_file

# Points kept of each curve: enough for a plot, small enough for every results file.
MAX_POINTS = 500
# A loss that has not fallen by this fraction after EARLY_ITERATIONS reads as "not learning".
EARLY_ITERATIONS = 200
_MIN_DROP = 0.01
# A loss this many times its first value has diverged.
_DIVERGED = 10.0
_BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class TrainingHistory:
    iterations: int                      # how many iterations the loss was recorded for
    loss: tuple[float, ...]              # at most MAX_POINTS of them, evenly spaced
    loss_iterations: tuple[int, ...]     # the iteration (from 1) of each kept loss
    train_accuracy: tuple[float, ...]    # at each check: the start, each epoch's end, the end
    val_accuracy: tuple[float, ...]
    first_non_finite: Optional[int] = None  # the iteration whose loss was first NaN or infinite
    # When each accuracy check (start, epochs, end) was printed, by the grader's clock: seconds since
    # the task started (the data's hand-off included). Empty where the run printed none.
    check_times_s: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "loss": [_json_number(v) for v in self.loss],
                "loss_iterations": list(self.loss_iterations),
                "train_accuracy": [_json_number(v) for v in self.train_accuracy],
                "val_accuracy": [_json_number(v) for v in self.val_accuracy],
                "first_non_finite": self.first_non_finite,
                "check_times_s": [round(s, 3) for s in self.check_times_s]}


# The lines the provided Solver and Trainer print when verbose.
_EPOCH_LINE = re.compile(r"\(Epoch (\d+) / (\d+)\) train acc: ([-+.\deE]+); val_acc: ([-+.\deE]+)")
_ITERATION_LINE = re.compile(r"Iteration (\d+) / (\d+)\) loss: (\S+)")


@dataclass
class TrainingProgress:
    """What a run has printed so far, for the live display only (it is the submission's output)."""

    limit_s: Optional[float] = None
    started: float = field(default_factory=time.monotonic)
    epoch_times_s: list[float] = field(default_factory=list)  # the grader's time of each epoch line
    epoch: Optional[tuple[int, int]] = None
    iteration: Optional[tuple[int, int]] = None
    loss: Optional[float] = None
    val_accuracy: Optional[float] = None

    def read(self, line: str) -> bool:
        """Takes in one printed line; whether it was progress (an epoch's end: True)."""
        if (match := _ITERATION_LINE.search(line)) is not None:
            self.iteration = (int(match[1]), int(match[2]))
            self.loss = _float(match[3])
            return False
        if (match := _EPOCH_LINE.search(line)) is not None:
            self.epoch = (int(match[1]), int(match[2]))
            self.val_accuracy = _float(match[4])
            self.epoch_times_s.append(time.monotonic() - self.started)
            return True
        return False

    def describe(self) -> str:
        parts = []
        if self.epoch:
            parts.append(f"epoch {self.epoch[0]}/{self.epoch[1]}")
        if self.iteration:
            parts.append(f"iteration {self.iteration[0]}/{self.iteration[1]}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3g}")
        if self.val_accuracy is not None:
            parts.append(f"val {self.val_accuracy:.1%}")
        return ", ".join(parts)


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def history_from(loss: Any, train_accuracy: Any, val_accuracy: Any) -> Optional[TrainingHistory]:
    """A history from what the solver's `loss_history`, `train_acc_history` and `val_acc_history`
    held; None where the loss is not a list of numbers (a solver of the student's own, say)."""
    losses = _numbers(loss)
    if losses is None:
        return None
    first_bad = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None)
    kept = _evenly(len(losses), MAX_POINTS)
    return TrainingHistory(len(losses), tuple(losses[i] for i in kept), tuple(i + 1 for i in kept),
                           tuple((_numbers(train_accuracy) or [])[-MAX_POINTS:]),
                           tuple((_numbers(val_accuracy) or [])[-MAX_POINTS:]), first_bad)


def diagnosis(history: Optional[TrainingHistory]) -> Optional[str]:
    """What the curve says about a run that missed its target, in one clause; None where it says
    nothing clear."""
    if history is None or not history.loss:
        return None
    if history.first_non_finite is not None:
        return (f"the loss became NaN or infinite at iteration {history.first_non_finite}: a learning rate or "
                "weight scale too large?")
    finite = [(i, v) for i, v in zip(history.loss_iterations, history.loss) if math.isfinite(v)]
    if finite and finite[0][1] > 0:
        jump = next(((i, v) for i, v in finite if v > _DIVERGED * finite[0][1]), None)
        if jump is not None:
            return (f"the loss jumped from {finite[0][1]:.3g} to {jump[1]:.3g} by iteration {jump[0]}: a learning "
                    "rate or weight scale too large?")
    start = _mean([v for i, v in finite if i <= 10])
    window = min(EARLY_ITERATIONS, history.iterations)
    late = _mean([v for i, v in finite if window - 10 < i <= window])
    if start is None or late is None or window < 20:
        return None
    if late > start * (1 - _MIN_DROP):
        return (f"the loss did not decrease in the first {window} iterations ({start:.3g} -> {late:.3g}): "
                "a learning rate too small, or updates that do not reach the weights?")
    return None


def sparkline(values: tuple[float, ...], width: int = 40) -> str:
    """`values` in one line of block characters (NaN and infinities as spaces)."""
    if not values:
        return ""
    picked = [values[i] for i in _evenly(len(values), width)]
    finite = [v for v in picked if math.isfinite(v)]
    if not finite:
        return " " * len(picked)
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    return "".join(_BLOCKS[min(int((v - low) / span * len(_BLOCKS)), len(_BLOCKS) - 1)] if math.isfinite(v)
                   else " " for v in picked)


def write_plot(history: TrainingHistory, path: Path, title: str) -> Path:
    """The loss (left) and the accuracies (right) as a small PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot

    figure, (loss_axes, accuracy_axes) = pyplot.subplots(1, 2, figsize=(8, 3), dpi=100)
    try:
        loss_axes.plot(history.loss_iterations, history.loss, linewidth=1)
        loss_axes.set_xlabel("iteration")
        loss_axes.set_ylabel("loss")
        for values, label in ((history.train_accuracy, "train"), (history.val_accuracy, "validation")):
            if values:
                accuracy_axes.plot(range(len(values)), values, marker="o", markersize=3, label=label)
        accuracy_axes.set_xlabel("check (start, epochs, end)")
        accuracy_axes.set_ylabel("accuracy")
        accuracy_axes.legend(loc="lower right", fontsize="small")
        figure.suptitle(title, fontsize="medium")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as file:
            figure.savefig(file, format="png")
    finally:
        pyplot.close(figure)
    return path


def _numbers(value: Any) -> Optional[list[float]]:
    if not isinstance(value, (list, tuple)):
        return None
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            try:
                item = float(item)  # a NumPy or torch scalar arrives as its value
            except (TypeError, ValueError, OverflowError):
                return None
        numbers.append(float(item))
    return numbers


def _evenly(count: int, at_most: int) -> list[int]:
    if count <= at_most:
        return list(range(count))
    return sorted({round(k * (count - 1) / (at_most - 1)) for k in range(at_most)})


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _json_number(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None
