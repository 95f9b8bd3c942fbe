"""The catalogues of common mistakes beside the references (`reference/<A>/mistakes.yaml`): they load,
agree with the mutant tests' expectations, carry distinct hints, and bad catalogues are rejected."""

import pytest

import test_mutants_a1
import test_mutants_a2
import test_mutants_a3
from grader.assignment import ConfigError
from grader.oracle.mistakes import load_catalogue, parse_catalogue
from support import assignment

EXPECTED_LOSSES = {
    "a1_fc_numpy": test_mutants_a1.EXPECTED_LOSSES,
    "a2_cnn_torch": test_mutants_a2.EXPECTED_LOSSES,
    "a3_resnet_pytorch": test_mutants_a3.EXPECTED_LOSSES,
}


@pytest.mark.parametrize("assignment_id", sorted(EXPECTED_LOSSES))
def test_catalogue_loads_and_every_mistake_changes_its_file(assignment_id):
    shipped = assignment(assignment_id)
    mistakes = load_catalogue(shipped)
    assert mistakes
    for mistake in mistakes:
        reference = (shipped.reference_directory / mistake.file).read_text()
        assert mistake.source_text != reference, mistake.id
        compile(mistake.source_text, f"{mistake.file} ({mistake.id})", "exec")


@pytest.mark.parametrize("assignment_id", sorted(EXPECTED_LOSSES))
def test_catalogue_agrees_with_the_expected_losses(assignment_id):
    expected = EXPECTED_LOSSES[assignment_id]
    mistakes = load_catalogue(assignment(assignment_id))
    assert {m.id for m in mistakes} == set(expected)
    for mistake in mistakes:
        assert mistake.task in expected[mistake.id], f"{mistake.id}: {mistake.task} is not among the tasks it loses"


@pytest.mark.parametrize("assignment_id", sorted(EXPECTED_LOSSES))
def test_catalogue_hints_are_distinct_and_do_not_paste_the_solution(assignment_id):
    mistakes = [m for m in load_catalogue(assignment(assignment_id)) if m.variant_of is None]
    hints = [m.hint.strip() for m in mistakes]
    assert all(hints)
    duplicated = sorted({m.id for m in mistakes if hints.count(m.hint.strip()) > 1})
    assert not duplicated, f"mistakes with the same hint: {duplicated}"
    for mistake in mistakes:
        assert mistake.spec.old.strip() not in mistake.hint, mistake.id
        assert mistake.spec.student.strip() and mistake.spec.student != mistake.hint, mistake.id


# ---------------------------------------------------------------------------------------------
# Bad catalogues, checked against the a1 reference.

GOOD = """\
  - id: relu_forward_leaky
    task: relu.forward
    file: layers.py
    old: "out = np.maximum(x, 0)"
    new: "out = np.maximum(x, 0.01 * x)"
    student: "I wrote a leaky ReLU by habit."
    hint: Your ReLU lets negative inputs through.
"""


def bad_mistake(*, id="bad_one", task="affine.forward", file="layers.py",
                old="out = x.reshape(x.shape[0], -1) @ w + b", new="out = 0") -> str:
    return f"""\
  - id: {id}
    task: {task}
    file: {file}
    old: "{old}"
    new: "{new}"
    student: "Something went wrong."
    hint: Look again.
"""


def write_catalogue(tmp_path, *entries: str):
    path = tmp_path / "mistakes.yaml"
    path.write_text("mistakes:\n" + "".join(entries))
    return path


def test_a_good_small_catalogue_is_accepted(tmp_path):
    mistakes = parse_catalogue(write_catalogue(tmp_path, GOOD, bad_mistake()), assignment("a1_fc_numpy"))
    assert [m.id for m in mistakes] == ["relu_forward_leaky", "bad_one"]
    assert [m.task for m in mistakes] == ["relu.forward", "affine.forward"]


@pytest.mark.parametrize("entry, words", [
    (bad_mistake(old="out = x.reshape(x.shape[0], -1) @ w - b"), "occurs 0 times"),
    (bad_mistake(old="dbeta = dout.sum(axis=0)"), "expected exactly once"),
    (bad_mistake(task="affine.sideways"), "not in assignment.yaml"),
    (bad_mistake(task="fc_net.overfit"), "training task"),
    (bad_mistake(file="solver.py"), "not one of the student files"),
    (bad_mistake(id="relu_forward_leaky"), "used twice"),
], ids=["snippet_missing", "snippet_twice", "unknown_task", "training_task", "not_a_student_file", "duplicate_id"])
def test_a_bad_catalogue_is_rejected_naming_the_mistake(tmp_path, entry, words):
    path = write_catalogue(tmp_path, GOOD, entry)
    with pytest.raises(ConfigError) as error:
        parse_catalogue(path, assignment("a1_fc_numpy"))
    message = str(error.value)
    assert words in message
    mistake_id = "relu_forward_leaky" if "used twice" in words else "bad_one"
    assert f"mistake {mistake_id}" in message and "mistakes.yaml" in message


def test_a_catalogue_without_a_hint_is_rejected(tmp_path):
    entry = GOOD.replace("    hint: Your ReLU lets negative inputs through.\n", "")
    with pytest.raises(ConfigError, match="hint"):
        parse_catalogue(write_catalogue(tmp_path, entry), assignment("a1_fc_numpy"))


VARIANT = """\
  - id: relu_forward_leaky_written_otherwise
    same_as: relu_forward_leaky
    task: relu.forward
    file: layers.py
    old: "out = np.maximum(x, 0)"
    new: "out = np.where(x > 0, x, 0.01 * x)"
    student: "I wrote the leaky ReLU with np.where."
"""


def test_a_variant_carries_the_hint_of_the_mistake_it_is_written_like(tmp_path):
    mistakes = parse_catalogue(write_catalogue(tmp_path, GOOD, VARIANT), assignment("a1_fc_numpy"))
    original, variant = mistakes
    assert variant.variant_of == "relu_forward_leaky" and variant.hint == original.hint
    assert variant.source_text != original.source_text


@pytest.mark.parametrize("entry, words", [
    (VARIANT.replace("same_as: relu_forward_leaky", "same_as: no_such_mistake"), "same_as 'no_such_mistake'"),
    (VARIANT + "    hint: Another hint.\n", "drop its own"),
], ids=["unknown_original", "own_hint"])
def test_a_bad_variant_is_rejected_naming_it(tmp_path, entry, words):
    with pytest.raises(ConfigError) as error:
        parse_catalogue(write_catalogue(tmp_path, GOOD, entry), assignment("a1_fc_numpy"))
    assert words in str(error.value) and "mistake relu_forward_leaky_written_otherwise" in str(error.value)
