"""Time limits that mean the same on every machine.

A training task's limit is written for the device the instructor calibrated on: `grader calibrate A`
times a fixed workload there (grader.engine.calibration_workload) and writes the device and its time
into assignment.yaml (`calibration:`). Before the first training task on a device, the grader times
the same workload on the place the task will train on (the same cores, threads and GPU; see
grader.engine.training_place) and scales the limit by the ratio: a device twice as slow gets twice the
seconds. The factor is measured at most once per grader process and place, with a spread over the
repeats, and is bounded (FACTOR_BOUNDS) so that a broken measurement cannot give a submission hours
or seconds. A task with `calibrated: false`, or an assignment without a calibration, keeps its limit
as written.

The measurement runs before any of the submission's code does and is not charged to it; it runs in
an interpreter of its own with the worker's thread settings, so it sees the device as the training
worker does, busy neighbours included (which is what makes the limit fair to a busy machine).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.assignment import MAX_CALIBRATION_SPREAD, CalibrationSpec
from grader.engine.calibration_workload import WORKLOADS
from grader.engine.training_place import TrainingPlace, describe_cores, usable_cores

# A factor outside these is taken as a broken measurement: the limit is scaled by the bound, and the
# message says so. (8x: a 60 s limit becomes at most 8 minutes.)
FACTOR_BOUNDS = (1 / 8, 8.0)
# Repeats of the workload: at least this many, and for at least this long.
MIN_REPEATS = 5
MIN_SECONDS = 1.0
# A measurement whose repeats spread more than this (relative) is measured again (a calibration
# written with such a spread is refused where it is loaded).
MAX_SPREAD = MAX_CALIBRATION_SPREAD
MEASURE_TIMEOUT_S = 180.0
WORKLOAD_SCRIPT = Path(__file__).with_name("calibration_workload.py")


class CalibrationError(Exception):
    """The workload could not be timed here (it crashed, timed out, or printed nonsense)."""


@dataclass(frozen=True)
class Timing:
    """The workload timed on one device."""

    workload: str
    device: str             # cpu | cuda
    device_model: str       # the CPU's or GPU's model, with the cores it was pinned to
    seconds: float          # the mean repeat (time_per_repeat)
    spread: float           # relative: the standard error of that mean
    repeats: int


@dataclass(frozen=True)
class ScaledLimit:
    """A task's limit on this device."""

    written_s: float
    limit_s: float
    factor: Optional[float] = None      # None: not scaled
    spread: Optional[float] = None      # of the factor, absolute
    measured_factor: Optional[float] = None  # before bounding
    reference_device: Optional[str] = None

    def describe(self) -> str:
        """'limit 60 s on the reference Tesla T4 = 23.4 s here, x0.39 +- 0.02' or 'limit 60 s'."""
        if self.factor is None:
            return f"limit {self.written_s:g} s"
        text = (f"limit {self.written_s:g} s on the reference {self.reference_device} = {self.limit_s:.1f} s here, "
                f"x{self.factor:.2f} +- {self.spread or 0.0:.2f}")
        if self.measured_factor is not None and self.measured_factor != self.factor:
            text += f" (bounded: this device measured x{self.measured_factor:.2f})"
        return text


def time_per_repeat(seconds: list[float]) -> float:
    """The mean repeat: the workload's throughput. (Not the median: on a machine shared with busy
    neighbours, repeats alternate between a core of their own and a shared one, and the training is
    slowed by the shared ones too; the median would keep only the fast ones.)"""
    return statistics.fmean(seconds)


def spread_of(seconds: list[float]) -> float:
    """The relative uncertainty of the mean repeat: the standard error over the mean."""
    mean = statistics.fmean(seconds)
    if len(seconds) < 2 or mean <= 0:
        return math.inf
    return statistics.stdev(seconds) / math.sqrt(len(seconds)) / mean


def measure(framework: str, device: str, place: TrainingPlace = TrainingPlace(), *,
            threads: Optional[str] = None) -> Timing:
    """Times the framework's workload on `device` at `place`; measured again once where the repeats
    spread more than MAX_SPREAD (the better of the two is kept)."""
    first = _measure_once(framework, device, place, threads)
    if first.spread <= MAX_SPREAD:
        return first
    second = _measure_once(framework, device, place, threads)
    return min(first, second, key=lambda timing: timing.spread)


def _measure_once(framework: str, device: str, place: TrainingPlace, threads: Optional[str]) -> Timing:
    threads = threads or os.environ.get("GRADER_WORKER_THREADS", "1")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, **place.env}
    for name in ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if name in os.environ and name not in env:
            env[name] = os.environ[name]
    command = [sys.executable, "-I", "-B", str(WORKLOAD_SCRIPT), framework, device, str(MIN_REPEATS), str(MIN_SECONDS)]
    with place.pinned():
        try:
            # A session of its own, as the worker has: where the kernel shares the CPU between sessions
            # (autogroups), a workload run in the grader's session would compete with whatever shares
            # that one, and not with what the worker competes with.
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=MEASURE_TIMEOUT_S,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise CalibrationError(f"the calibration workload did not finish within {MEASURE_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise CalibrationError(f"the calibration workload failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        seconds = [float(s) for s in report["seconds"]]
        model = str(report["device_model"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CalibrationError(f"the calibration workload printed no timing ({exc}): {done.stdout[-200:]!r}") from None
    if len(seconds) < MIN_REPEATS or not all(math.isfinite(s) and s > 0 for s in seconds):
        raise CalibrationError(f"the calibration workload's timings are not usable: {seconds}")
    return Timing(WORKLOADS[framework], device, _with_cores(model, device, place, threads),
                  time_per_repeat(seconds), spread_of(seconds), len(seconds))


def _with_cores(model: str, device: str, place: TrainingPlace, threads: str) -> str:
    if device == "cuda":
        return model
    cores = place.cores if place.cores is not None else usable_cores()
    return f"{model}, {threads} thread{'s' * (threads != '1')} on {describe_cores(cores)}"


def scaled_limit(written_s: float, here: Timing, reference: CalibrationSpec) -> ScaledLimit:
    """`written_s` scaled by here's time over the reference's, bounded."""
    measured = here.seconds / reference.seconds
    factor = min(max(measured, FACTOR_BOUNDS[0]), FACTOR_BOUNDS[1])
    spread = factor * math.hypot(here.spread, reference.spread)
    return ScaledLimit(written_s, written_s * factor, factor, spread, measured,
                       f"{reference.device_model} ({reference.device})")


class Calibrations:
    """The timings of one grader process, measured on first use per (framework, device, place)."""

    def __init__(self) -> None:
        self._timings: dict[tuple, Timing] = {}

    def timing(self, framework: str, device: str, place: TrainingPlace) -> Timing:
        key = (framework, device, place.cores, tuple(sorted(place.env.items())),
               os.environ.get("GRADER_WORKER_THREADS", "1"))
        if key not in self._timings:
            self._timings[key] = measure(framework, device, place)
        return self._timings[key]


PROCESS_CALIBRATIONS = Calibrations()


def calibration_block(timing: Timing, versions: dict[str, str]) -> dict:
    """What `grader calibrate` writes under `calibration:` in assignment.yaml."""
    return {"device": timing.device, "device_model": timing.device_model, "workload": timing.workload,
            "seconds": round(timing.seconds, 6), "spread": round(timing.spread, 4), "repeats": timing.repeats,
            "versions": dict(versions), "measured_on": datetime.date.today().isoformat()}


CALIBRATION_COMMENT = ("# The device the training tasks' time limits are written for, and its time for the calibration\n"
                       "# workload; written by `grader calibrate`. Each limit is scaled to the device a task trains on.\n")


def write_calibration(config_path: Path, block: dict) -> None:
    """`block` as assignment.yaml's top-level `calibration:`, replacing the one there (the rest of the
    file, comments included, as it was); the file is checked as the grader loads it before it is kept."""
    import yaml

    from grader.assignment import ConfigError, parse_spec
    from grader.files import write_atomically

    original = config_path.read_text()
    kept = _without_top_level_key(original, "calibration")
    text = kept.rstrip("\n") + "\n\n" + CALIBRATION_COMMENT + yaml.safe_dump(
        {"calibration": block}, sort_keys=False, default_flow_style=False, width=100)
    trial = config_path.with_name(f".{config_path.name}.calibrating")
    trial.write_text(text)
    try:
        parse_spec(trial)
    except ConfigError as exc:
        raise ConfigError(f"the calibration could not be written: {exc}") from None
    finally:
        trial.unlink(missing_ok=True)
    write_atomically(config_path, text)


def _without_top_level_key(text: str, key: str) -> str:
    """`text` without the top-level `key:` entry: its line, the indented lines under it, and the comment
    lines written just above it."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(f"{key}:"):
            while out and out[-1].startswith("#"):
                out.pop()
            skipping = True
            continue
        if skipping and (line[:1] in (" ", "\t") or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out)
