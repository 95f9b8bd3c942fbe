"""Training tasks of the convolutional-networks assignment on the CPU with the synthetic stand-in:
the reference reaches every target; a stopped clock, an early return or a lookup table buys nothing,
because the grader's clock and the grader's accuracy decide."""

import textwrap

import pytest

from conftest import edit_file
from grader.assignment import load_assignment
from grader.results import Outcome
from support import PROJECT_ROOT, assignment, grade_folder, make_submission, outcomes

pytestmark = pytest.mark.slow  # a2's networks trained on the CPU: ./grade.sh --selftest --all (CI) runs it

TRAINING = ["two_layer_net.cifar10", "fc_net.overfit_three_layer", "fc_net.overfit_five_layer", "deep_convnet.cifar10"]


def test_reference_reaches_every_synthetic_target_on_the_cpu(tmp_path):
    a2 = assignment("a2_cnn_torch")
    result = grade_folder(a2, make_submission(tmp_path, a2, "reference"), only="*.[co][iv]*", data="synthetic",
                          device="cpu")
    assert outcomes(result) == {task: Outcome.PASSED for task in TRAINING}, [t.message for t in result.tasks]
    for task in result.tasks:
        spec = a2.spec.task(task.task_id).training
        assert task.training.accuracy >= spec.target["synthetic"]
        assert task.training.train_seconds <= spec.time_limit_s * 1.1 + 2


def test_stubs_are_not_implemented(tmp_path):
    a2 = assignment("a2_cnn_torch")
    result = grade_folder(a2, make_submission(tmp_path, a2, "stubs"), only="*.[co][iv]*", data="synthetic",
                          device="cpu")
    assert set(outcomes(result).values()) == {Outcome.NOT_IMPLEMENTED}


@pytest.fixture
def short_limit(tmp_path):
    """A copy of the project whose TwoLayerNet task allows 3 seconds."""
    import shutil

    root = tmp_path / "project"
    for part in ("assignments", "reference"):
        shutil.copytree(PROJECT_ROOT / part / "a2_cnn_torch", root / part / "a2_cnn_torch")
    config = root / "assignments" / "a2_cnn_torch" / "assignment.yaml"
    edit_file(config, "entry: models.create_solver_instance\n      device: cuda\n      time_limit_s: 60",
              "entry: models.create_solver_instance\n      device: cuda\n      time_limit_s: 3")
    return load_assignment("a2_cnn_torch", root)


def with_solver_entry(a2, folder, body):
    path = folder / "models.py"
    text = path.read_text()
    start = text.index("def create_solver_instance(")
    end = text.index("\ndef ", start + 1)
    path.write_text(text[:start] + "def create_solver_instance(data_dict, dtype, device):\n"
                    + textwrap.indent(textwrap.dedent(body), "    ") + "\n" + text[end:])
    return folder


def grade_two_layer(a2, folder):
    result = grade_folder(a2, folder, only="two_layer_net.cifar10", data="synthetic", device="cpu")
    return result.tasks[0]


def test_a_slow_configuration_is_stopped_at_the_limit(short_limit, tmp_path):
    folder = with_solver_entry(short_limit, make_submission(tmp_path / "sub", short_limit, "reference"), """
        model = TwoLayerNet(hidden_dim=4000, dtype=torch.float64, device=device)
        return Solver(model, data_dict, update_rule=optim.sgd, batch_size=8000, num_epochs=100, verbose=False,
                      device=device)
    """)
    task = grade_two_layer(short_limit, folder)
    assert task.points < task.max_points
    assert task.outcome is Outcome.TIMEOUT or task.training.train_seconds <= 3 * 1.1 + 2


def test_a_stopped_clock_buys_nothing(short_limit, tmp_path):
    folder = with_solver_entry(short_limit, make_submission(tmp_path / "sub", short_limit, "reference"), """
        import time
        time.perf_counter = lambda: 0.0   # the Solver never sees its time limit coming
        time.time = lambda: 0.0
        model = TwoLayerNet(hidden_dim=200, dtype=dtype, device=device)
        return Solver(model, data_dict, update_rule=optim.adam, optim_config={"learning_rate": 1e-3},
                      num_epochs=10**6, batch_size=200, verbose=False, device=device)
    """)
    task = grade_two_layer(short_limit, folder)
    assert task.outcome is Outcome.TIMEOUT and task.points == 0
    assert "stopped" in task.message


def test_returning_before_training_is_done_buys_nothing(short_limit, tmp_path):
    folder = with_solver_entry(short_limit, make_submission(tmp_path / "sub", short_limit, "reference"), """
        import threading, time
        model = TwoLayerNet(hidden_dim=200, dtype=dtype, device=device)
        solver = Solver(model, data_dict, update_rule=optim.adam, optim_config={"learning_rate": 1e-3},
                        num_epochs=10**6, batch_size=200, verbose=False, device=device)
        honest_train = solver.train

        def train_later(time_limit=None, return_best_params=True):
            # "Done" at once; the real work starts afterwards, while the grader is predicting.
            threading.Thread(target=lambda: (time.sleep(1.0), honest_train()), daemon=True).start()

        solver.train = train_later
        return solver
    """)
    task = grade_two_layer(short_limit, folder)
    # The worker cannot import the grader's data module any more (it holds only its own code); were it
    # to regenerate the public split anyway, the official test split comes from a secret seed.
    assert task.points == 0 and (task.training.accuracy is None or task.training.accuracy < 0.2), task.message


def test_a_lookup_table_of_the_known_test_images_buys_nothing(tmp_path):
    a2 = assignment("a2_cnn_torch")
    folder = with_solver_entry(a2, make_submission(tmp_path, a2, "reference"), """
        import numpy as np
        from grader.data import load_synthetic   # the stand-in is public: regenerate its test split
        known = load_synthetic(seed=0, num_train=11_000, num_test=2_000)
        mean = known.train_images[:10_000].astype(np.float64).mean(axis=0)
        table = {image.tobytes(): int(label) for image, label in zip(known.test_images, known.test_labels)}

        class LookUp:
            params = {}
            def loss(self, X, y=None):
                raw = np.clip(np.rint(X.double().numpy() + mean), 0, 255).astype(np.uint8)
                scores = torch.zeros(len(X), 10)
                for row, image in enumerate(raw):
                    scores[row, table.get(image.tobytes(), 0)] = 1.0
                return scores

        class NoTraining:
            model = LookUp()
            def train(self, time_limit=None):
                pass

        return NoTraining()
    """)
    task = grade_two_layer(a2, folder)
    # The worker cannot import the grader's data module any more (it holds only its own code); were it
    # to regenerate the public split anyway, the official test split comes from a secret seed.
    assert task.points == 0 and (task.training.accuracy is None or task.training.accuracy < 0.2), task.message
