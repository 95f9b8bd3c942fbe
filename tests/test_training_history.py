"""A training run's history: read back from the provided Solver after the clock stops, kept in the
result (and results.json), drawn as a PNG and a terminal sparkline, and read aloud when the run misses
its target ("the loss became NaN at iteration 37")."""

import json
import math

import pytest

from grader.cli import main
from grader.results import Outcome
from grader.engine.training_history import MAX_POINTS, diagnosis, history_from, sparkline
from support import a1, grade_folder, make_submission

SMALL_SYNTHETIC = {"synthetic_train": 1200, "validation_images": 200, "synthetic_test": 200}


def test_a_history_keeps_at_most_max_points_and_finds_the_first_nan():
    losses = [2.3 - i * 1e-4 for i in range(5000)]
    losses[3000] = math.nan
    history = history_from(losses, [0.1, 0.2], [0.1, 0.15])
    assert history.iterations == 5000 and len(history.loss) <= MAX_POINTS
    assert history.loss_iterations[0] == 1 and history.loss_iterations[-1] == 5000
    assert history.first_non_finite == 3001
    assert "NaN or infinite at iteration 3001" in diagnosis(history)
    assert history_from("not a list", [], []) is None
    assert history_from([1.0, "two"], [], []) is None
    assert history.as_dict()["loss"].count(None) <= 1  # JSON has no NaN


@pytest.mark.parametrize("losses,expected", [
    ([2.3] * 400, "did not decrease in the first 200 iterations"),
    ([2.3 * 0.995 ** i for i in range(400)], None),
    ([2.3] * 5, None),  # too short to say
    ([2.3, 2.2, 40.0, 30.0], "the loss jumped from 2.3 to 40 by iteration 3"),
])
def test_the_diagnosis_reads_the_curve(losses, expected):
    said = diagnosis(history_from(losses, [], []))
    assert (said is None) if expected is None else (expected in said), said


def test_a_sparkline_is_one_line_of_blocks():
    line = sparkline(tuple(float(i) for i in range(100)), width=20)
    assert len(line) == 20 and line[0] == "▁" and line[-1] == "█"
    assert sparkline((1.0, math.nan, 2.0)) == "▁ █"


def with_learning_rate(tmp_path, rate):
    folder = make_submission(tmp_path, a1(), "reference")
    models = (folder / "models.py").read_text()
    assert 'optim_config={"learning_rate": 1e-3},' in models
    (folder / "models.py").write_text(models.replace('optim_config={"learning_rate": 1e-3},',
                                                     f'optim_config={{"learning_rate": {rate}}},'))
    return folder


@pytest.mark.parametrize("rate,words", [
    (1e-9, "the loss did not decrease in the first 60 iterations"),  # all the small run has
    (1e4, "the loss jumped from 2."),  # the first loss is ln(10) give or take the seed
], ids=["too_small", "too_large"])
def test_a_run_that_misses_its_target_says_what_its_curve_shows(tmp_path, rate, words):
    folder = with_learning_rate(tmp_path, rate)
    (task,) = grade_folder(a1(), folder, mode="public", only="two_layer_net.cifar10", data="synthetic",
                           **SMALL_SYNTHETIC).tasks
    assert task.outcome is Outcome.FAILED, task.message
    assert words in task.message, task.message
    assert task.training.history is not None and task.training.history.iterations > 0


def test_the_history_reaches_results_json_and_a_png_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    out = tmp_path / "out" / "results.json"
    import grader.engine.grading

    monkeypatch.setattr(grader.engine.grading.GradeOptions, "synthetic_train", SMALL_SYNTHETIC["synthetic_train"])
    monkeypatch.setattr(grader.engine.grading.GradeOptions, "validation_images", SMALL_SYNTHETIC["validation_images"])
    monkeypatch.setattr(grader.engine.grading.GradeOptions, "synthetic_test", SMALL_SYNTHETIC["synthetic_test"])
    status = main(["grade", "a1_fc_numpy", "--submission", str(folder), "--mode", "public", "--only",
                   "two_layer_net.cifar10", "--data", "synthetic", "--no-zip", "--json", str(out)])
    assert status == 0
    (test,) = json.loads(out.read_text())["tests"]
    history = test["extra_data"]["history"]
    assert history["iterations"] > 0 and len(history["loss"]) == len(history["loss_iterations"])
    extra = test["extra_data"]
    assert history["val_accuracy"] and extra["written_limit_s"] == 120  # a1 is calibrated: scaled here
    assert extra["time_limit_s"] == pytest.approx(120 * extra["limit_factor"])
    # The grader's own clock, at each accuracy check the run printed: as many, in order.
    seconds = history["check_times_s"]
    assert len(seconds) == len(history["val_accuracy"]) and seconds == sorted(seconds) and seconds[0] > 0
    png = out.parent / "a1_fc_numpy_training" / "two_layer_net.cifar10.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_arrives_while_the_run_trains_not_at_its_end(tmp_path):
    import time

    folder = make_submission(tmp_path, a1(), "reference")  # its entry asks for verbose=False
    seen = []
    (task,) = grade_folder(a1(), folder, mode="public", only="two_layer_net.cifar10", data="synthetic",
                           on_training_progress=lambda task_id, progress, ended: seen.append(
                               (time.monotonic(), task_id, progress.describe(), ended)),
                           **SMALL_SYNTHETIC).tasks
    finished = time.monotonic()
    epochs = [s for s in seen if s[3]]
    assert len(epochs) >= 10 and all(s[1] == "two_layer_net.cifar10" for s in seen)
    assert epochs[-1][2].startswith("epoch 10/10, iteration") and "loss" in epochs[-1][2] and "val" in epochs[-1][2]
    # Live: the first epoch was told well before the task's result came back.
    assert finished - epochs[1][0] > 0.2, (finished, epochs[:2])
    assert task.outcome in (Outcome.PASSED, Outcome.FAILED)
