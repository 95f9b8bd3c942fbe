"""The residual-networks assignment's training task on the CPU with the synthetic stand-in: the
reference's entry (which picks a small network on a CPU) reaches the target within the limit, and
an entry that is missing, raises, hands over a broken model or trains nothing fails cleanly, with
a message, scored by the grader's clock and accuracy."""

import textwrap

import pytest

from grader.results import Outcome
from mutants_a3 import TRAINING_ENTRY_MUTANTS, apply
from support import assert_training_mutant_misses, assignment, grade_folder, make_submission

pytestmark = pytest.mark.slow  # a3's networks trained on the CPU: ./grade.sh --selftest --all (CI) runs it

TASK = "resnet.cifar10"
ENTRY = "create_resnet_trainer_instance"


def grade_training(a3, folder):
    return grade_folder(a3, folder, only=TASK, data="synthetic", device="cpu").tasks[0]


def test_reference_reaches_the_synthetic_target_on_the_cpu(tmp_path):
    a3 = assignment("a3_resnet_pytorch")
    task = grade_training(a3, make_submission(tmp_path, a3, "reference"))
    spec = a3.spec.task(TASK).training
    assert task.outcome is Outcome.PASSED and task.points == task.max_points, task.message
    assert task.training.accuracy >= spec.target["synthetic"]
    assert 0 < task.training.train_seconds <= spec.time_limit_s
    assert task.training.device == "cpu" and task.training.data_source == "synthetic"


def test_stub_is_not_implemented(tmp_path):
    a3 = assignment("a3_resnet_pytorch")
    task = grade_training(a3, make_submission(tmp_path, a3, "stubs"))
    assert task.outcome is Outcome.NOT_IMPLEMENTED and task.points == 0
    assert ENTRY in task.message


def with_entry(folder, body):
    """The submission's training entry replaced by `body`."""
    path = folder / "models.py"
    text = path.read_text()
    start = text.index(f"def {ENTRY}(")
    end = text.find("\ndef ", start + 1)
    end = len(text) if end < 0 else end
    path.write_text(text[:start] + f"def {ENTRY}(data_dict, dtype, device):\n"
                    + textwrap.indent(textwrap.dedent(body), "    ") + "\n" + text[end:])
    return folder


BROKEN_ENTRIES = {
    "raises": ("""
        raise ValueError("no configuration chosen yet")
    """, Outcome.ERROR, "ValueError: no configuration chosen yet"),
    "returns_the_network": ("""
        return get_resnet("resnet8").to(device)
    """, Outcome.ERROR, "TypeError: Module.train() got an unexpected keyword argument 'time_limit'"),
    "scores_of_the_wrong_shape": ("""
        network = get_resnet("resnet8").to(device=device, dtype=dtype)
        trainer = Trainer(network, torch.optim.SGD(network.parameters(), lr=0.1), data_dict, verbose=False,
                          device=device)
        trainer.train = lambda time_limit=None: None
        trainer.model.loss = lambda X, y=None: torch.zeros(len(X))  # one number per image, not one per class
        return trainer
    """, Outcome.FAILED, "returned scores of shape"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_ENTRIES))
def test_a_broken_entry_fails_cleanly(tmp_path, case):
    body, outcome, words = BROKEN_ENTRIES[case]
    a3 = assignment("a3_resnet_pytorch")
    task = grade_training(a3, with_entry(make_submission(tmp_path, a3, "reference"), body))
    assert task.outcome is outcome and task.points == 0, task.message
    assert words in task.message


@pytest.mark.parametrize("mutant", TRAINING_ENTRY_MUTANTS, ids=lambda m: m.name)
def test_hopeless_hyper_parameters_miss_the_target(mutant, tmp_path):
    a3 = assignment("a3_resnet_pytorch")
    mutated = apply(mutant, (a3.reference_directory / mutant.file).read_text())
    assert_training_mutant_misses(a3, mutant, mutated, TASK, tmp_path)
