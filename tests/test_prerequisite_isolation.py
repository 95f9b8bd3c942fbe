"""isolate_prerequisites: in official mode, the checks of a task with prerequisites run with the
reference's copies of those files, so that a broken layer costs its own tasks only."""

import pytest

from conftest import edit_file
from grader.assignment import ConfigError, load_assignment
from support import a1, grade_checks, lost, make_submission

A1 = "a1_fc_numpy"
# affine.backward and two_layer_net.gradients, nothing else.
BOTH = "[at][fw]*.[bg]*"
CORRECT_DW = "dw = x.reshape(x.shape[0], -1).T @ dout"
REGULARIZATION_GRADIENT = '        grads["W1"] += self.reg * W1\n        grads["W2"] += self.reg * W2\n'


def config_path(project):
    return project / "assignments" / A1 / "assignment.yaml"


def isolating(project):
    """The project's a1 with isolation switched on."""
    edit_file(config_path(project), "isolate_prerequisites: false", "isolate_prerequisites: true")
    return load_assignment(A1, project)


def broken_affine_backward(assignment, directory):
    layers = (assignment.reference_directory / "layers.py").read_text()
    assert CORRECT_DW in layers, "the reference's affine_backward changed; update this test's mutation"
    return make_submission(directory, assignment, "reference",
                           {"layers.py": layers.replace(CORRECT_DW, f"{CORRECT_DW} / x.shape[0]")})


def test_the_shipped_assignments_list_layers_as_the_models_prerequisite_and_do_not_isolate():
    assignment = a1()
    assert not assignment.spec.isolate_prerequisites
    assert assignment.spec.task("two_layer_net.gradients").prerequisites == ["layers.py"]
    assert assignment.spec.task("affine.backward").prerequisites == []


def test_a_broken_layer_costs_the_model_only_without_isolation(project, tmp_path):
    shipped = a1()
    folder = broken_affine_backward(shipped, tmp_path / "submission")
    plain = grade_checks(shipped, folder, mode="official", only=BOTH)
    assert {t.task_id for t in plain.tasks} == {"affine.backward", "two_layer_net.gradients"}
    assert lost(plain) == {"affine.backward", "two_layer_net.gradients"}
    assert "Prerequisite isolation" not in plain.output

    isolated = grade_checks(isolating(project), folder, mode="official", only=BOTH)
    assert lost(isolated) == {"affine.backward"}
    gradients = next(t for t in isolated.tasks if t.task_id == "two_layer_net.gradients")
    assert gradients.points == gradients.max_points
    assert isolated.output.splitlines() == [
        "Prerequisite isolation: two_layer_net.gradients was graded with the reference's layers.py."]


def test_the_students_own_file_is_still_graded_with_isolation(project, tmp_path):
    assignment = isolating(project)
    models = (assignment.reference_directory / "models.py").read_text()
    assert REGULARIZATION_GRADIENT in models, "the reference's TwoLayerNet changed; update this test's mutation"
    folder = make_submission(tmp_path / "submission", assignment, "reference",
                             {"models.py": models.replace(REGULARIZATION_GRADIENT, "", 1)})
    result = grade_checks(assignment, folder, mode="official", only=BOTH)
    assert lost(result) == {"two_layer_net.gradients"}
    assert "Prerequisite isolation: two_layer_net.gradients" in result.output


def test_what_the_isolated_worker_prints_is_in_the_submission_log(project, tmp_path):
    assignment = isolating(project)
    models = (assignment.reference_directory / "models.py").read_text()
    folder = make_submission(tmp_path / "submission", assignment, "reference",
                             {"models.py": models + '\nprint("models.py imported", flush=True)\n'})
    result = grade_checks(assignment, folder, mode="official", only="two_layer_net.gradients")
    assert result.score == result.max_score
    assert "models.py imported" in result.submission_log


def test_public_mode_ignores_the_option_and_says_so_once(project, tmp_path):
    assignment = isolating(project)
    folder = broken_affine_backward(assignment, tmp_path / "submission")
    result = grade_checks(assignment, folder, mode="public", only=BOTH)
    assert lost(result) == {"affine.backward", "two_layer_net.gradients"}
    assert result.output.count("ignored") == 1
    assert "Prerequisite isolation was ignored" in result.output
    assert "graded with the reference's" not in result.output


@pytest.mark.parametrize("prerequisites,expected", [
    ("[layers.py, nowhere.py]", "nowhere.py is not one of the student_files"),
    ("[solver.py]", "solver.py is not one of the student_files"),
    ("[layers.py, layers.py]", "layers.py is listed twice"),
])
def test_a_wrong_prerequisite_names_file_task_and_key(project, prerequisites, expected):
    path = edit_file(config_path(project), "id: two_layer_net.gradients, title: \"TwoLayerNet: gradients with and "
                     "without regularization\", points: 3, prerequisites: [layers.py]",
                     "id: two_layer_net.gradients, title: \"TwoLayerNet: gradients with and without "
                     f"regularization\", points: 3, prerequisites: {prerequisites}")
    with pytest.raises(ConfigError) as error:
        load_assignment(A1, project)
    message = str(error.value)
    assert str(path) in message and expected in message
    assert "two_layer_net.gradients" in message and "prerequisites" in message


def test_a_training_task_is_validated_the_same(project):
    edit_file(config_path(project), "    training:\n      entry: models.create_solver_instance",
              "    prerequisites: [layers.py, layers.py]\n    training:\n      entry: models.create_solver_instance")
    with pytest.raises(ConfigError, match=r"two_layer_net\.cifar10.*prerequisites.*layers\.py is listed twice"):
        load_assignment(A1, project)
