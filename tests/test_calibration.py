"""Calibrated time limits (grader.engine.calibration): a limit is written for the instructor's device
and scaled to the one a task trains on, so that a verdict depends on the submission, not on the
machine; a calibration that cannot be a measurement is refused."""

import json
import math
import statistics
import subprocess
import sys

import pytest

from conftest import edit_file
from grader.assignment import CalibrationSpec, ConfigError, load_assignment
from grader.engine import calibration
from grader.engine.calibration import FACTOR_BOUNDS, ScaledLimit, Timing, scaled_limit, spread_of, write_calibration
from support import PROJECT_ROOT
from throttle import run_throttled

A1 = "a1_fc_numpy"


def reference_device(seconds: float = 0.05, spread: float = 0.02) -> CalibrationSpec:
    return CalibrationSpec(device="cpu", device_model="Reference CPU", workload="numpy-fc-v1", seconds=seconds,
                           spread=spread, repeats=5)


def timing(seconds: float, spread: float = 0.02) -> Timing:
    return Timing("numpy-fc-v1", "cpu", "This CPU", seconds, spread, 5)


# -- the arithmetic --------------------------------------------------------------------------------

def test_a_device_twice_as_slow_gets_twice_the_seconds():
    scaled = scaled_limit(60, timing(0.10), reference_device(0.05))
    assert scaled.limit_s == pytest.approx(120) and scaled.factor == pytest.approx(2.0)
    assert scaled.spread == pytest.approx(2.0 * math.hypot(0.02, 0.02))
    assert scaled.describe() == "limit 60 s on the reference Reference CPU (cpu) = 120.0 s here, x2.00 +- 0.06"


@pytest.mark.parametrize("here, bound", [(5.0, FACTOR_BOUNDS[1]), (0.0001, FACTOR_BOUNDS[0])])
def test_a_broken_measurement_cannot_give_hours_or_nothing(here, bound):
    scaled = scaled_limit(60, timing(here), reference_device(0.05))
    assert scaled.factor == bound and scaled.limit_s == pytest.approx(60 * bound)
    assert f"(bounded: this device measured x{here / 0.05:.2f})" in scaled.describe()


def test_an_unscaled_limit_says_only_the_limit():
    assert ScaledLimit(60, 60).describe() == "limit 60 s"


def test_a_shared_core_counts_as_the_training_would_feel_it():
    """Repeats that alternate between a core of their own and a shared one: the time per repeat is
    their mean (the throughput the training gets), and the spread the uncertainty of that mean."""
    alternating = [0.05, 0.10] * 5
    assert calibration.time_per_repeat(alternating) == pytest.approx(0.075)
    assert spread_of(alternating) == pytest.approx(statistics.stdev(alternating) / math.sqrt(10) / 0.075)
    assert spread_of([0.05] * 5) == 0.0 and spread_of([0.05]) == math.inf


# -- what assignment.yaml may say -------------------------------------------------------------------

GOOD = """
calibration:
  device: cpu
  device_model: Reference CPU
  workload: numpy-fc-v1
  seconds: 0.05
  spread: 0.02
  repeats: 5
"""


@pytest.mark.parametrize("old, new, named", [
    ("seconds: 0.05", "seconds: -0.05", "calibration.seconds"),
    ("seconds: 0.05", "seconds: .nan", "calibration.seconds"),
    ("seconds: 0.05", "seconds: 1e9", "calibration.seconds"),
    ("seconds: 0.05", "seconds: fast", "calibration.seconds"),
    ("spread: 0.02", "spread: 0.9", "calibration.spread"),
    ("repeats: 5", "repeats: 1", "calibration.repeats"),
    ("\n  device: cpu\n", "\n  device: tpu\n", "calibration.device"),
    ("workload: numpy-fc-v1", "workload: torch-conv-v1", "run `grader calibrate a1_fc_numpy` again"),
    ("  repeats: 5\n", "", "calibration.repeats"),
    ("  repeats: 5\n", "  repeats: 5\n  factor: 100\n", "calibration.factor"),
])
def test_a_corrupted_calibration_is_refused_naming_the_key(project, old, new, named):
    config = project / "assignments" / A1 / "assignment.yaml"
    write_calibration(config, {"device": "cpu", "device_model": "Reference CPU", "workload": "numpy-fc-v1",
                               "seconds": 0.05, "spread": 0.02, "repeats": 5})
    assert load_assignment(A1, project).spec.calibration == reference_device()
    edit_file(config, old, new)
    with pytest.raises(ConfigError) as refused:
        load_assignment(A1, project)
    assert named in str(refused.value)


def test_grading_refuses_a_corrupted_calibration_instead_of_using_it(project, tmp_path):
    config = project / "assignments" / A1 / "assignment.yaml"
    edit_file(config, "  spread: ", "  spread: 7")  # 0.02 -> 70.02: no measurement spreads that much
    done = grader(project, "grade", A1, "--submission", str(project / "reference" / A1), "--only", "fc_net.overfit",
                  "--data", "synthetic", "--no-zip", "--mode", "public")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "calibration.spread" in done.stderr


def test_writing_a_calibration_keeps_the_rest_of_the_file_and_replaces_the_old_one(project):
    config = project / "assignments" / A1 / "assignment.yaml"
    before = config.read_text()
    block = {"device": "cpu", "device_model": "Reference CPU", "workload": "numpy-fc-v1", "seconds": 0.05,
             "spread": 0.02, "repeats": 5}
    write_calibration(config, block)
    write_calibration(config, {**block, "seconds": 0.07})
    text = config.read_text()
    assert text.count("calibration:") == 1 and "seconds: 0.07" in text
    without = before[:before.index("# The device the training")] if "calibration:" in before else before
    assert text.startswith(without.rstrip("\n"))
    assert load_assignment(A1, project).spec.calibration.seconds == 0.07


def test_an_invalid_calibration_is_never_written(project):
    config = project / "assignments" / A1 / "assignment.yaml"
    before = config.read_text()
    with pytest.raises(ConfigError, match="calibration.seconds"):
        write_calibration(config, {"device": "cpu", "device_model": "Reference CPU", "workload": "numpy-fc-v1",
                                   "seconds": 0.0, "spread": 0.02, "repeats": 5})
    assert config.read_text() == before


# -- the workload, measured --------------------------------------------------------------------------

def test_the_workload_is_measured_with_the_workers_threads_and_refuses_nonsense(monkeypatch):
    measured = calibration.measure("numpy", "cpu")
    assert measured.workload == "numpy-fc-v1" and measured.repeats >= calibration.MIN_REPEATS
    assert 0 < measured.seconds < 5 and "1 thread on core" in measured.device_model

    def printed(stdout):
        def run(*args, **kwargs):
            return subprocess.CompletedProcess(args, 0, stdout, "")
        return run

    for nonsense in ('{"seconds": [-1, 1, 1, 1, 1], "device_model": "x"}', '{"seconds": [1]}', "fast",
                     '{"seconds": [NaN, 1, 1, 1, 1], "device_model": "x"}'):
        monkeypatch.setattr(calibration.subprocess, "run", printed(nonsense))
        with pytest.raises(calibration.CalibrationError):
            calibration.measure("numpy", "cpu")


# -- a slowed device, end to end ---------------------------------------------------------------------

# A submission whose training needs a fixed amount of CPU work: its model answers right only once
# the optimizer has taken STEPS steps, and every call of its loss burns the same work. It passes
# exactly when its device gives it time for those steps.
COUNTING_ENTRY = '''
def create_overfit_solver_instance(data_dict):
    STEPS = 30

    class CountingMemorizer:
        def __init__(self, X, y):
            self.params = {"progress": np.zeros(1)}
            self.images = X.reshape(len(X), -1).astype(np.float64)
            self.labels = y
            self.work = np.random.default_rng(0).standard_normal((150, 150)) / 150

        def loss(self, X, y=None):
            for _ in range(12):
                self.work = np.tanh(self.work @ self.work + 1.0)
            if y is not None:
                return 0.0, {"progress": -np.ones(1)}
            flat = X.reshape(len(X), -1).astype(np.float64)
            nearest = np.argmin(((flat[:, None, :] - self.images[None]) ** 2).sum(axis=2), axis=1)
            labels = self.labels[nearest]
            if self.params["progress"][0] < STEPS:
                labels = (labels + 1) % 10
            scores = np.zeros((len(X), 10))
            scores[np.arange(len(X)), labels] = 1.0
            return scores

    model = CountingMemorizer(data_dict["X_train"], data_dict["y_train"])
    return Solver(model, data_dict, num_epochs=STEPS, batch_size=50, update_rule="sgd",
                  optim_config={"learning_rate": 1.0}, verbose=False)
'''


def grader(project, *args, slowed=False, timeout=300):
    env = {**__import__("os").environ, "GRADER_ROOT": str(project)}
    return run_throttled([sys.executable, "-m", "grader", *args], slowed=slowed, timeout=timeout, env=env,
                         cwd=project)


def counting_submission(project, folder):
    folder.mkdir()
    for name in load_assignment(A1, project).spec.student_files:
        (folder / name).write_text((project / "reference" / A1 / name).read_text())
    models = folder / "models.py"
    text = models.read_text()
    start = text.index("def create_overfit_solver_instance(")
    end = text.find("\ndef ", start + 1)
    models.write_text(text[:start] + COUNTING_ENTRY.lstrip("\n") + ("" if end == -1 else text[end:]))
    return folder


def graded(project, submission, tmp_path, name, *, slowed):
    out = tmp_path / f"{name}.json"
    done = grader(project, "grade", A1, "--submission", str(submission), "--only", "fc_net.overfit", "--data",
                  "synthetic", "--no-zip", "--mode", "public", "--sandbox", "process", "--json", str(out),
                  slowed=slowed)
    assert out.is_file(), done.stdout + done.stderr
    test = json.loads(out.read_text())["tests"][0]
    return test["extra_data"], test["output"]


def test_a_slowed_device_gets_a_limit_in_proportion_and_the_same_verdict(project, tmp_path):
    config = project / "assignments" / A1 / "assignment.yaml"
    # fc_net.overfit: the counting run needs ~1.8 s here, three times that slowed.
    edit_file(config, "time_limit_s: 60", "time_limit_s: 4")
    calibrated = grader(project, "calibrate", A1)
    assert calibrated.returncode == 0, calibrated.stderr
    submission = counting_submission(project, tmp_path / "counting")

    # The two cores are shared with the other tests: a test beside the slowed run can take more of its
    # time than the calibration, measured moments before, saw. Measured again where that happened (the
    # limit's ratio or the training's out of bounds), at most twice more.
    for attempt in range(3):
        fast, fast_said = graded(project, submission, tmp_path, f"fast{attempt}", slowed=False)
        slow, slow_said = graded(project, submission, tmp_path, f"slow{attempt}", slowed=True)
        if (fast["outcome"] == slow["outcome"] == "passed" and 1.8 < slow["limit_factor"] / fast["limit_factor"] < 4.5
                and 1.5 < slow["train_seconds"] / fast["train_seconds"] < 5.0):
            break
    assert fast["outcome"] == "passed", fast_said
    assert slow["outcome"] == "passed", slow_said
    # A third of the CPU: the workload took about three times as long, and so did the training, inside
    # its limit. (Bounds wide enough for a machine that runs other tests meanwhile.)
    ratio = slow["limit_factor"] / fast["limit_factor"]
    assert 1.8 < ratio < 4.5, (fast, slow)
    assert slow["time_limit_s"] == pytest.approx(4 * slow["limit_factor"])
    assert 1.5 < slow["train_seconds"] / fast["train_seconds"] < 5.0
    assert slow["written_limit_s"] == 4 and "on the reference" in slow_said and "grace" in slow_said

    # The same slowed device with the limit as written: the submission runs out of time.
    edit_file(config, "      time_limit_s: 4\n", "      time_limit_s: 4\n      calibrated: false\n")
    unscaled, unscaled_said = graded(project, submission, tmp_path, "unscaled", slowed=True)
    assert unscaled["outcome"] == "failed" and unscaled["time_limit_s"] == 4, unscaled_said
    assert unscaled.get("limit_factor") is None and "on the reference" not in unscaled_said


# -- nothing of the submission's runs while the device is timed --------------------------------------

BURNER = '''
import threading as _threading
import numpy as _np


def _burn():
    block = _np.random.default_rng(0).random((300, 300))
    while True:
        block = _np.tanh(block @ block)


for _ in range(3):
    _threading.Thread(target=_burn, daemon=True).start()
'''


def test_nothing_of_the_submissions_runs_while_the_device_is_timed(tmp_path, monkeypatch):
    """Threads the checks' code left burning CPU would make the device look slow and buy the training
    more seconds: the checks' worker is ended before the workload is timed."""
    import os

    from grader.engine import training
    from support import a1, grade_folder, make_submission
    from grader.sandbox.worker_process import process_tree

    assignment = a1()
    layers = (PROJECT_ROOT / "reference" / A1 / "layers.py").read_text() + BURNER
    folder = make_submission(tmp_path / "burning", assignment, "reference", {"layers.py": layers})
    running_while_timed: list[list[int]] = []
    before = set(process_tree(os.getpid()))  # what this test process runs of its own (other tests' daemons)

    class Probe(calibration.Calibrations):
        def timing(self, framework, device, place):
            running_while_timed.append([pid for pid in process_tree(os.getpid()) if pid not in before])
            return Timing("numpy-fc-v1", "cpu", "probe", 0.05, 0.0, 5)

    def graded():
        running_while_timed.clear()
        result = grade_folder(assignment, folder, only="affine.forward,fc_net.overfit", data="synthetic")
        assert [t.task_id for t in result.tasks] == ["affine.forward", "fc_net.overfit"]  # layers.py ran first
        return running_while_timed[0]

    monkeypatch.setattr(training, "PROCESS_CALIBRATIONS", Probe())
    assert graded() == []
    # Were the checks' worker left running, its burning threads would be timed with the device.
    monkeypatch.setattr(training, "stop_student_code", lambda session: None)
    assert graded() != []
