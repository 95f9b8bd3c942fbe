"""Explaining a failed check with the catalogue of common mistakes.

While a check runs, every answer the submission's worker sends is reduced to a *sketch*: its
structure, and for each array its shape, dtype, norm and two fixed random projections. When
the check fails, the same check runs again, same seed and same inputs, against each catalogued
mistake of its task (the reference with that one mistake, in a worker of its own). A mistake whose
answers sketch the same as the submission's, answer for answer, is what the submission did: its hint
is shown.

Official grading does that live. Public grading has no reference, so `grader fixtures` stores each
mistake's sketches of each public check (fixed seeds, so the inputs are the ones a student's run
uses) in `fixtures/mistake_sketches.json`, and a failed check is compared with those.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from grader.assignment import Assignment
from grader.boundary import wire
from grader.checking.compare import CheckFailed
from grader.files import write_atomically
from grader.oracle.mistakes import Mistake
from grader.sandbox.errors import StudentException
from grader.sandbox.remote import CallRecord, OmittedCache, RemoteObject, StudentProxy, WorkerSession
from grader.sandbox.worker_process import Limits, make_scratch_dir, remove_scratch_dir

SKETCHES_FILE = "mistake_sketches.json"
_SAMPLE = 4096      # elements of a large array the projections look at
_PROJECTIONS = 2

Sketch = list  # JSON-able: one entry per answer of the worker, in order


# -- sketches -----------------------------------------------------------------------------------------

_projection_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _projections(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed positions and Gaussian weights for arrays of `size` elements (the same in every run)."""
    if size not in _projection_cache:
        if len(_projection_cache) > 256:
            _projection_cache.clear()
        rng = np.random.default_rng(size)
        positions = np.arange(size) if size <= _SAMPLE else np.sort(rng.choice(size, _SAMPLE, replace=False))
        weights = rng.standard_normal((_PROJECTIONS, len(positions))) / np.sqrt(max(len(positions), 1))
        _projection_cache[size] = (positions, weights)
    return _projection_cache[size]


# An answer larger than any check's is sketched by its shape and kind alone: its values, copied as
# float64, would cost the grader eight times the memory of a byte array.
_SKETCHED_ELEMENTS = 4_000_000


def _array_entry(array: np.ndarray) -> list:
    flat = np.asarray(array).ravel()
    kind = f"{flat.dtype.kind}{flat.dtype.itemsize}"
    if flat.size > _SKETCHED_ELEMENTS:
        return ["a", list(array.shape), kind, []]
    values = flat.astype(np.float64) if flat.dtype.kind in "biuf" else np.zeros(flat.size)
    positions, weights = _projections(flat.size)
    with np.errstate(all="ignore"):
        numbers = [float(np.linalg.norm(values)), *map(float, weights @ values[positions])]
    return ["a", list(array.shape), kind, numbers]


def sketch_value(value: Any) -> list:
    """One answer, reduced. Objects left in the worker sketch as their kind only."""
    torch = sys.modules.get("torch")
    if isinstance(value, RemoteObject):
        return ["o"]
    if isinstance(value, OmittedCache):
        return ["cache"]
    if isinstance(value, CallRecord):
        return ["c", sketch_value(value.result), sketch_value(list(value.args)), sketch_value(value.kwargs)]
    if isinstance(value, np.ndarray):
        return _array_entry(value)
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.numel() > _SKETCHED_ELEMENTS:
            return ["a", list(tensor.shape), str(tensor.dtype).removeprefix("torch."), []]
        numbers = np.zeros(tuple(tensor.shape)) if tensor.dtype.is_complex else tensor.double().numpy()
        entry = _array_entry(numbers)
        entry[2] = str(tensor.dtype).removeprefix("torch.")
        return entry
    if isinstance(value, (bool, str, type(None))):
        return ["v", repr(value)]
    if isinstance(value, (int, float, np.generic)):
        return _array_entry(np.asarray(value))
    if isinstance(value, dict):
        return ["d", [[repr(k), sketch_value(v)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]]
    if isinstance(value, (list, tuple)):
        return ["l", [sketch_value(v) for v in value]]
    return ["?", type(value).__name__]


# What the worker sent for one request of a check, or the error it raised instead.
Answer = tuple[Any, Optional[BaseException]]


def sketch_answers(answers: Sequence[Answer]) -> Sketch:
    """A check's answers, sketched once the check has ended: only a failed check is compared with the
    mistakes, and sketching every answer of every check as it came cost more than the checks' own
    comparisons. An answer the check changed in place sketches as changed, the same way in the
    submission's run and in each mistake's."""
    return [sketch_failure(error) if error is not None else sketch_value(value) for value, error in answers]


def sketch_failure(error: BaseException) -> list:
    """The exception's type and its message with what varies between runs taken out (numbers,
    addresses, paths, the package a worker loaded the code as): two errors of one type but another
    cause ("shapes cannot be multiplied" and "view size is not compatible") are not the same answer."""
    if isinstance(error, StudentException):
        return ["raise", error.type_name, _message_shape(error.message)]
    return ["raise", type(error).__name__, _message_shape(str(error))]


def _message_shape(message: str) -> str:
    text = re.sub(r"\b(submission|m_\w+)\.", "", message)
    text = re.sub(r"(?:[A-Za-z]:)?(?:[/\\][\w.\-]+)+", "<path>", text)
    text = re.sub(r"0x[0-9a-fA-F]+", "0x#", text)
    text = re.sub(r"\d+", "#", text)
    return " ".join(text.split())[:160]


def _tolerance(kind: str) -> float:
    return 1e-6 if kind in ("f8", "float64") else 3e-3


def entries_match(a: Any, b: Any) -> bool:
    if not isinstance(a, list) or not isinstance(b, list) or not a or not b or a[0] != b[0]:
        return False
    tag = a[0]
    if tag == "a":
        if a[1] != b[1] or a[2] != b[2] or len(a[3]) != len(b[3]):
            return False
        x, y = np.asarray(a[3], dtype=np.float64), np.asarray(b[3], dtype=np.float64)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return False
        # Infinities match only themselves (inf - inf is NaN, which matches nothing); the finite
        # entries within the tolerance of the first entry's size (the array's norm), where finite.
        infinite = np.isinf(x) | np.isinf(y)
        if not np.all((x == y)[infinite]):
            return False
        ok = ~np.isnan(x) & ~infinite
        scale = max(abs(x[0]), abs(y[0])) if ok[0] else 0.0
        with np.errstate(all="ignore"):
            return bool(np.all(np.abs(x[ok] - y[ok]) <= _tolerance(a[2]) * scale + 1e-12))
    if tag == "l":
        return len(a[1]) == len(b[1]) and all(entries_match(x, y) for x, y in zip(a[1], b[1]))
    if tag == "d":
        return len(a[1]) == len(b[1]) and all(
            x[0] == y[0] and entries_match(x[1], y[1]) for x, y in zip(a[1], b[1]))
    if tag == "c":
        return len(a) == len(b) and all(entries_match(x, y) for x, y in zip(a[1:], b[1:]))
    return a == b


def sketches_match(a: Sketch, b: Sketch) -> bool:
    return len(a) == len(b) and all(entries_match(x, y) for x, y in zip(a, b))


# -- re-running a check against the mistakes -------------------------------------------------------------

# Runs the failed check again with `student` bound to the given proxy (answering from the given
# session); returns what it observed and whether the check failed.
Rerun = Callable[[StudentProxy, WorkerSession], tuple[Sketch, bool]]


class MistakeWorkers:
    """One worker holding every mistake of an assignment, each as a package `m_<id>` built from the
    reference with that mistake and the provided files. Only reference-derived code runs in it."""

    def __init__(self, assignment: Assignment, mistakes: list[Mistake], limits: Limits,
                 preload: tuple[str, ...] = ()):
        self.assignment = assignment
        self.mistakes = mistakes
        self.limits = limits
        self.preload = preload
        self._session: Optional[WorkerSession] = None
        self._scratch: Optional[Path] = None

    def session(self) -> WorkerSession:
        if self._session is None:
            self._scratch = make_scratch_dir()
            root = self._scratch / "mistakes"
            spec, reference = self.assignment.spec, self.assignment.reference_directory
            assert reference is not None
            for mistake in self.mistakes:
                package = root / f"m_{mistake.id}"
                package.mkdir(parents=True)
                for name in [*spec.provided_files, "__init__.py"]:
                    if (self.assignment.directory / name).is_file():
                        shutil.copyfile(self.assignment.directory / name, package / name)
                for name in spec.student_files:
                    shutil.copyfile(reference / name, package / name)
                (package / mistake.file).write_text(mistake.source_text)
            self._session = WorkerSession(root, self._scratch, self.limits, preload=self.preload)
        return self._session

    def proxy(self, mistake: Mistake) -> StudentProxy:
        return StudentProxy(self.session(), prefix=f"m_{mistake.id}")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._scratch is not None:
            remove_scratch_dir(self._scratch)


class Explainer(Protocol):
    def explain(self, nodeid: str, task_id: str, observed: Sketch, rerun: Rerun) -> Optional[str]:
        """The hint for a failed check, or None."""

    def after_pass(self, nodeid: str, task_id: str, rerun: Rerun) -> None:
        """Called after a check passed."""


@dataclass
class LiveExplainer:
    """Official mode: re-runs a failed check against each mistake of its task."""

    workers: MistakeWorkers

    def _candidates(self, task_id: str) -> list[Mistake]:
        return [m for m in self.workers.mistakes if m.task == task_id]

    def explain(self, nodeid: str, task_id: str, observed: Sketch, rerun: Rerun) -> Optional[str]:
        for mistake in self._candidates(task_id):
            theirs, failed = rerun(self.workers.proxy(mistake), self.workers.session())
            if failed and sketches_match(observed, theirs):
                return mistake.hint
        return None

    def after_pass(self, nodeid: str, task_id: str, rerun: Rerun) -> None:
        pass


@dataclass
class RecordingExplainer(LiveExplainer):
    """`grader fixtures`: the reference passes every public check; each mistake's run of each check is
    stored where it fails, for public grading to compare with."""

    recorded: dict[str, list[dict]] = field(default_factory=dict)

    def after_pass(self, nodeid: str, task_id: str, rerun: Rerun) -> None:
        for mistake in self._candidates(task_id):
            observed, failed = rerun(self.workers.proxy(mistake), self.workers.session())
            if failed:
                self.recorded.setdefault(nodeid, []).append(
                    {"mistake": mistake.id, "hint": mistake.hint, "sketch": _rounded(observed)})


@dataclass
class ReplayExplainer:
    """Public mode: compares a failed check with the stored sketches of each mistake."""

    stored: dict[str, list[dict]]

    def explain(self, nodeid: str, task_id: str, observed: Sketch, rerun: Rerun) -> Optional[str]:
        for entry in self.stored.get(nodeid, []):
            if sketches_match(observed, entry["sketch"]):
                return str(entry["hint"])
        return None

    def after_pass(self, nodeid: str, task_id: str, rerun: Rerun) -> None:
        pass


def _rounded(value: Any) -> Any:
    """Sketch numbers to 8 significant digits: far finer than the match tolerance, half the bytes."""
    if isinstance(value, float):
        return float(f"{value:.8g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def explainable(error: Optional[BaseException]) -> bool:
    """Failures a mistake can explain: wrong answers and exceptions from the code, not a missing
    implementation, a timeout or a crash."""
    if isinstance(error, StudentException):
        return not error.is_not_implemented
    return isinstance(error, (CheckFailed, AssertionError, wire.WireError, TypeError, ValueError, IndexError,
                              KeyError))


# -- the stored sketches ---------------------------------------------------------------------------------

def sketches_path(assignment: Assignment) -> Path:
    return assignment.fixtures_directory / SKETCHES_FILE


def write_sketches(assignment: Assignment, recorded: dict[str, list[dict]]) -> Path:
    path = sketches_path(assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, sketches_text(recorded))
    return path


def sketches_text(recorded: dict[str, list[dict]]) -> str:
    checks = {nodeid: recorded[nodeid] for nodeid in sorted(recorded)}
    return json.dumps({"format": 1, "checks": checks}, separators=(",", ":"), sort_keys=True) + "\n"


def read_sketches(assignment: Assignment) -> dict[str, list[dict]]:
    path = sketches_path(assignment)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data.get("checks", {}) if isinstance(data, dict) and data.get("format") == 1 else {}


def sketch_differences(stored: dict[str, list[dict]], recorded: dict[str, list[dict]]) -> list[str]:
    """How stored sketches differ from a fresh recording (empty when they are current)."""
    problems = []
    for nodeid in sorted(set(stored) | set(recorded)):
        old = {e["mistake"]: e for e in stored.get(nodeid, [])}
        new = {e["mistake"]: e for e in recorded.get(nodeid, [])}
        if old.keys() != new.keys():
            problems.append(f"{nodeid}: mistakes {sorted(old.keys() ^ new.keys())} recorded differently")
            continue
        for mistake, entry in new.items():
            if entry["hint"] != old[mistake]["hint"] or not sketches_match(entry["sketch"], old[mistake]["sketch"]):
                problems.append(f"{nodeid}: mistake {mistake} changed")
    return problems
