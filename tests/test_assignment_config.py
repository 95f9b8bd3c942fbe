"""assignment.yaml is validated where it is loaded, with errors that name the file and the key."""

import pytest

from grader.assignment import ConfigError, load_assignment
from grader.engine.validate import validate
from support import a1


def edit_config(project, old, new):
    path = project / "assignments" / "a1_fc_numpy" / "assignment.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old,new,expected", [
    ("points: 2}", "points: two}", "tasks[0] (id: affine.forward).points"),
    ("framework: numpy", "framework: jax", "framework"),
    ("time_limit_s: 120", "time_limit_s: -5", "time_limit_s"),
    ("target: {cifar10: 0.50, synthetic: 0.42}", "target: {cifar10: 5.0, synthetic: 0.42}", "target"),
    ("{id: relu.forward,", "{id: affine.forward,", "appears twice"),
    ("call_timeout_s: 30", "call_timeout_s: 30\nsurprise_key: 1", "surprise_key"),
    ("entry: models.create_solver_instance", "entry: nowhere.create_solver_instance", "not in a student or provided file"),
    ("student_files: [layers.py,", "student_files: [../layers.py,", "student_files"),
])
def test_a_broken_config_names_file_and_key(project, old, new, expected):
    path = edit_config(project, old, new)
    with pytest.raises(ConfigError) as error:
        load_assignment("a1_fc_numpy", project)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_a_listed_file_that_does_not_exist_is_named(project):
    (project / "assignments" / "a1_fc_numpy" / "solver.py").unlink()
    with pytest.raises(ConfigError, match="solver.py"):
        load_assignment("a1_fc_numpy", project)


def test_validate_reports_a_task_without_check(project):
    edit_config(project, "tasks:\n", "tasks:\n  - {id: extra.task, title: An unchecked task, points: 1}\n")
    problems = validate(load_assignment("a1_fc_numpy", project))
    assert any("extra.task" in p and "has no check" in p for p in problems)


def test_validate_reports_a_check_without_task(project):
    checks = project / "assignments" / "a1_fc_numpy" / "checks"
    (checks / "test_extra.py").write_text(
        "import pytest\n\n@pytest.mark.task('no.such.task')\ndef test_x(student):\n    pass\n\n"
        "def test_unmarked(student):\n    pass\n\n"
        "@pytest.mark.task('relu.forward', 'relu.backward')\ndef test_both(student):\n    pass\n")
    problems = validate(load_assignment("a1_fc_numpy", project))
    assert any("no.such.task" in p for p in problems)
    assert any("test_unmarked" in p and "marker" in p for p in problems)
    assert any("test_both" in p and "names 2 tasks (relu.forward, relu.backward)" in p for p in problems), problems
    assert not any("test_both" in p and "has no" in p for p in problems), problems


def test_validate_reports_stub_and_reference_signatures_that_differ(project):
    layers = project / "reference" / "a1_fc_numpy" / "layers.py"
    layers.write_text(layers.read_text().replace("def affine_forward(x, w, b):", "def affine_forward(x, w, b, extra=1):"))
    problems = validate(load_assignment("a1_fc_numpy", project))
    assert any("affine_forward" in p and "differs" in p for p in problems)


def test_every_stub_raises_not_implemented_inside_its_fence():
    from grader.stub_text import fence_bodies, is_untouched_body

    assignment = a1()
    for name in assignment.spec.student_files:
        bodies = fence_bodies((assignment.directory / name).read_text())
        assert bodies, f"{name} has no fences"
        assert all(is_untouched_body(b) for b in bodies), name
        reference = fence_bodies((assignment.reference_directory / name).read_text())
        assert len(reference) == len(bodies), f"{name}: the reference's fences differ from the stub's"


def test_only_takes_one_glob_or_several_separated_by_commas():
    from grader.assignment import task_matches

    assert task_matches("affine.forward", "affine.*")
    assert task_matches("relu.backward", "affine.*, relu.*")
    assert not task_matches("optim.adam", "affine.*,relu.*")
    assert not task_matches("affine.forward", ",")


def test_validate_reports_a_training_entry_that_names_no_function(project):
    edit_config(project, "entry: models.create_solver_instance", "entry: models.create_solver_instanse")
    problems = validate(load_assignment("a1_fc_numpy", project))
    for what in ("stub", "reference"):
        assert any("create_solver_instanse is no function of the " + what + "'s models.py" in p for p in problems), problems


def test_validate_says_which_side_lacks_a_function(project):
    layers = project / "reference" / "a1_fc_numpy" / "layers.py"
    layers.write_text(layers.read_text().replace("def sigmoid_forward(x):", "def sigmoid_forward_renamed(x):"))
    problems = validate(load_assignment("a1_fc_numpy", project))
    assert "layers.py: sigmoid_forward is in the stub but not in the reference" in problems, problems
