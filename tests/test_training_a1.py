"""Training tasks: timed by the grader's clock, scored by the grader's accuracy on images the
submission sees only after training, on the synthetic stand-in for CIFAR-10 (no network here)."""

import dataclasses
import textwrap
import urllib.error

import pytest

from conftest import edit_file
from grader.assignment import load_assignment
from grader.results import Outcome
from support import a1, grade_folder, make_submission, outcomes

TRAINING = "[tf]*.[co][iv]*[0t]"  # two_layer_net.cifar10 and fc_net.overfit


def test_reference_reaches_both_synthetic_targets(tmp_path):
    assignment = a1()
    result = grade_folder(assignment, make_submission(tmp_path, assignment, "reference"), only=TRAINING,
                          data="synthetic")
    assert outcomes(result) == {"two_layer_net.cifar10": Outcome.PASSED, "fc_net.overfit": Outcome.PASSED}, \
        [t.message for t in result.tasks]
    for task in result.tasks:
        spec = assignment.spec.task(task.task_id).training
        assert task.training.accuracy >= spec.target["synthetic"]
        assert 0 < task.training.train_seconds <= spec.time_limit_s
        assert task.training.device == "cpu" and task.training.data_source == "synthetic"


def test_stubs_are_not_implemented(tmp_path):
    assignment = a1()
    result = grade_folder(assignment, make_submission(tmp_path, assignment, "stubs"), only=TRAINING, data="synthetic")
    assert set(outcomes(result).values()) == {Outcome.NOT_IMPLEMENTED}


def replace_entry(assignment, folder, function, body):
    """Replaces the body of a training entry in the submission's models.py."""
    path = folder / "models.py"
    text = path.read_text()
    start = text.index(f"def {function}(")
    end = text.find("\ndef ", start + 1)
    end = len(text) if end == -1 else end
    path.write_text(text[:start] + f"def {function}(data_dict):\n" + textwrap.indent(textwrap.dedent(body), "    ")
                    + "\n" + text[end:])


def test_training_that_overruns_the_time_limit_is_stopped(project, tmp_path):
    edit_file(project / "assignments" / "a1_fc_numpy" / "assignment.yaml", "time_limit_s: 60", "time_limit_s: 1")
    assignment = load_assignment("a1_fc_numpy", project)
    folder = make_submission(tmp_path / "sub", assignment, "reference")
    replace_entry(assignment, folder, "create_overfit_solver_instance", """
        import time
        time.sleep(60)  # "training" before the solver is handed over still counts
    """)
    result = grade_folder(assignment, folder, only="fc_net.overfit", data="synthetic")
    task = result.tasks[0]
    assert task.outcome is Outcome.TIMEOUT and task.points == 0
    assert "limit 1 s" in task.message


def test_a_model_that_guesses_earns_nothing(tmp_path):
    assignment = a1()
    folder = make_submission(tmp_path, assignment, "reference")
    replace_entry(assignment, folder, "create_solver_instance", """
        class Guess:
            params = {}
            def loss(self, X, y=None):
                scores = np.zeros((len(X), 10))
                scores[:, 3] = 1.0
                return scores
        class GuessingSolver:
            model = Guess()
            def train(self, time_limit=None):
                print('{"score": 100}')
        return GuessingSolver()
    """)
    result = grade_folder(assignment, folder, only="two_layer_net.cifar10", data="synthetic")
    task = result.tasks[0]
    assert task.points == 0 and task.outcome is Outcome.FAILED
    assert task.training.accuracy < 0.2


def test_without_cifar10_training_tasks_are_skipped_with_where_to_put_it(tmp_path, monkeypatch):
    import grader.data.cifar10 as cifar10

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cifar10, "_open_url", no_network)
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nowhere"))
    assignment = a1()
    result = grade_folder(assignment, make_submission(tmp_path / "sub", assignment, "reference"), only=TRAINING,
                          data="auto", data_dir=tmp_path / "empty")
    assert set(outcomes(result).values()) == {Outcome.SKIPPED}
    assert all("cifar-10-python.tar.gz" in t.message and t.points == 0 for t in result.tasks)


def test_a_gpu_task_is_skipped_without_cuda_unless_device_cpu(project, tmp_path):
    import grader.engine.training

    edit_file(project / "assignments" / "a1_fc_numpy" / "assignment.yaml", "device: cpu\n      time_limit_s: 60",
              "device: cuda\n      time_limit_s: 60")
    assignment = load_assignment("a1_fc_numpy", project)
    folder = make_submission(tmp_path / "sub", assignment, "reference")
    if grader.engine.training.cuda_available():
        pytest.skip("this machine has CUDA")
    skipped = grade_folder(assignment, folder, only="fc_net.overfit", data="synthetic")
    assert skipped.tasks[0].outcome is Outcome.SKIPPED and "CUDA" in skipped.tasks[0].message
    on_cpu = grade_folder(assignment, folder, only="fc_net.overfit", data="synthetic", device="cpu")
    assert on_cpu.tasks[0].outcome is Outcome.PASSED, on_cpu.tasks[0].message


@pytest.fixture
def clock_at_the_end(monkeypatch):
    """Sets what the grader's clock reads once the last prediction is back (a real run that long
    would make the test a minute long); until then the clock runs as it does."""
    from grader.engine import training
    reading: dict[str, float] = {}

    class LateClock(training.Clock):
        def elapsed(self) -> float:
            return reading.get("seconds", super().elapsed())

    real_predict = training._predict

    def predict_then_jump(*args, **kwargs):
        predictions = real_predict(*args, **kwargs)
        reading["seconds"] = reading["at_the_end"]
        return predictions

    monkeypatch.setattr(training, "Clock", LateClock)
    monkeypatch.setattr(training, "_predict", predict_then_jump)

    def set_reading(seconds: float) -> None:
        reading["at_the_end"] = seconds
    return set_reading


@pytest.mark.parametrize("over, outcome, said", [
    (0.0, Outcome.PASSED, None),
    (1.5, Outcome.PASSED, "1.5 s over the limit, inside the grace"),
    (8.5, Outcome.FAILED, "training took 68.5 s, over 68.0 s (limit 60 s, grace 8.0 s for the last iteration and "
                          "sending predictions back)"),
])
def test_the_message_says_why_a_run_over_its_limit_counts(clock_at_the_end, tmp_path, over, outcome, said):
    assignment = a1()
    # The limit as written (a calibrated one would move with this machine's speed; see test_calibration).
    assignment = dataclasses.replace(assignment, spec=assignment.spec.model_copy(update={"calibration": None}))
    limit = assignment.spec.task("fc_net.overfit").training.time_limit_s
    assert limit == 60  # the margin below is 10 % of it plus 2 s
    clock_at_the_end(limit + over if over else 0.5)
    result = grade_folder(assignment, make_submission(tmp_path, assignment, "reference"), only="fc_net.overfit",
                          data="synthetic")
    task = result.tasks[0]
    assert task.outcome is outcome, task.message
    assert "grace 8.0 s for the last iteration and sending predictions back" in task.message
    if said is None:
        assert "over the" not in task.message
    else:
        assert said in task.message
