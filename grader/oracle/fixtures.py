"""Recording the reference's answers to the public checks, for grading where `reference/` is absent.

The reference itself is the submission while recording, so every check runs to its end and every
reference call it makes is recorded. Each catalogued mistake then runs each public check of its task,
and how it fails is stored (`fixtures/mistake_sketches.json`) so that public grading can give its hint. Stale fixtures are found by recording again in memory and
comparing: the same keys, and values equal to a tight tolerance (BLAS libraries differ in the
last bits between machines).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.assignment import Assignment, ConfigError
from grader.engine.grading import PUBLIC_SEED
from grader.engine.pytest_plugin import GradingPlugin, run_checks
from grader.engine.submission import prepare_submission
from grader.files import write_atomically
from grader.oracle.mistakes import load_catalogue
from grader.oracle.reference import (
    FIXTURE_SUFFIX, Entry, RecordingBackend, ReferenceOracle, fixture_file_bytes, load_reference_package,
    read_fixture_file, unload_reference_package,
)
from grader.oracle.sketches import (
    SKETCHES_FILE, MistakeWorkers, RecordingExplainer, sketch_differences, sketches_path,
    read_sketches, write_sketches,
)
from grader.results import Outcome
from grader.sandbox.remote import WorkerSession
from grader.sandbox.worker_process import Limits


@dataclass(frozen=True)
class FixtureDifference:
    file: str
    problem: str


@dataclass(frozen=True)
class Recording:
    answers: dict[str, dict[str, Entry]]    # check module -> digest -> the reference's answer
    sketches: dict[str, list[dict]]     # check id -> how each catalogued mistake fails it


def record(assignment: Assignment) -> Recording:
    if assignment.reference_directory is None:
        raise ConfigError(f"recording fixtures needs reference/{assignment.id}")
    spec = assignment.spec
    submission = prepare_submission(assignment, assignment.reference_directory)
    limits = Limits(call_timeout_s=spec.call_timeout_s)
    preload = ("torch",) if spec.framework == "torch" else ()
    session = WorkerSession(submission.package, submission.scratch, limits, preload=preload)
    package = load_reference_package(assignment.id, assignment.reference_directory, assignment.directory)
    mistakes = load_catalogue(assignment)
    explainer = RecordingExplainer(MistakeWorkers(assignment, mistakes, limits, preload)) if mistakes else None
    try:
        backend = RecordingBackend(package)
        plugin = GradingPlugin(session, ReferenceOracle(backend), PUBLIC_SEED, {t.id for t in spec.tasks},
                               explainer=explainer)
        run_checks(plugin, [str(assignment.checks_directory)], str(assignment.directory))
    finally:
        session.close()
        if explainer is not None:
            explainer.workers.close()
        submission.cleanup()
        unload_reference_package(package)
    # Checks that cannot run on this machine (CUDA ones, without a GPU) record nothing and need nothing:
    # their reference calls use the same inputs as their CPU twins.
    problems = plugin.collection_errors + [f"{r.name}: {r.outcome.value}: {r.message}" for r in plugin.results
                                           if r.outcome not in (Outcome.PASSED, Outcome.SKIPPED)]
    if problems:
        raise ConfigError("the reference does not pass every public check, so fixtures would be incomplete:\n"
                          + "\n".join(problems))
    return Recording(backend.recorded, explainer.recorded if explainer is not None else {})


def write_fixtures(assignment: Assignment, recording: Recording) -> list[Path]:
    written = _write_answers(assignment, recording.answers)
    path = sketches_path(assignment)
    if recording.sketches:
        written.append(write_sketches(assignment, recording.sketches))
    elif path.exists():
        path.unlink()
    return written


def _write_answers(assignment: Assignment, recorded: dict[str, dict[str, Entry]]) -> list[Path]:
    directory = assignment.fixtures_directory
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for module, entries in sorted(recorded.items()):
        path = directory / f"{module}{FIXTURE_SUFFIX}"
        write_atomically(path, fixture_file_bytes(entries))
        written.append(path)
    for stale in directory.glob(f"*{FIXTURE_SUFFIX}"):
        if stale.stem not in recorded:
            stale.unlink()
    return written


def compare_fixtures(assignment: Assignment, recording: Recording) -> list[FixtureDifference]:
    differences = _compare_answers(assignment, recording.answers)
    differences += [FixtureDifference(SKETCHES_FILE, problem) for problem in
                    sketch_differences(read_sketches(assignment), recording.sketches)]
    return differences


def _compare_answers(assignment: Assignment, recorded: dict[str, dict[str, Entry]]) -> list[FixtureDifference]:
    directory = assignment.fixtures_directory
    differences = []
    on_disk = {p.stem for p in directory.glob(f"*{FIXTURE_SUFFIX}")} if directory.is_dir() else set()
    for module in sorted(on_disk - set(recorded)):
        differences.append(FixtureDifference(f"{module}{FIXTURE_SUFFIX}", "no public check file uses it any more"))
    for module, entries in sorted(recorded.items()):
        name = f"{module}{FIXTURE_SUFFIX}"
        stored = read_fixture_file(directory / name)
        if not stored:
            differences.append(FixtureDifference(name, "missing"))
            continue
        if set(stored) != set(entries):
            differences.append(FixtureDifference(
                name, f"{len(set(entries) - set(stored))} answers missing, {len(set(stored) - set(entries))} unused"))
            continue
        for key, entry in entries.items():
            if not _same(stored[key], entry):
                differences.append(FixtureDifference(name, f"the answer {key} changed"))
                break
    return differences


def _same(a: Entry, b: Entry) -> bool:
    if a.is_object != b.is_object:
        return False
    return _values_equal(a.value, b.value)


def _values_equal(a: object, b: object) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dtype != b.dtype:
            return False
        a, b = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) or isinstance(a, np.generic):
        a_array, b_array = np.asarray(a), np.asarray(b)
        return (a_array.shape == b_array.shape and a_array.dtype == b_array.dtype
                and bool(np.allclose(a_array, b_array, rtol=1e-10, atol=1e-12, equal_nan=True)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True))
    return a == b
