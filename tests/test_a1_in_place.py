"""Changing an argument in place costs points only where it breaks the caller, and then the message
says what broke: students' own code, written as students write it."""

import pytest

from mutants_a1 import student_version
from support import a1, grade_checks, lost, make_submission

IN_PLACE_OPTIMIZERS = {
    "sgd": """
        w -= config["learning_rate"] * dw
        next_w = w
    """,
    "sgd_momentum": """
        v = config["velocity"]
        v *= config["momentum"]
        v -= config["learning_rate"] * dw
        w += v
        next_w = w
    """,
    "adam": """
        config["t"] += 1
        t = config["t"]
        m, v = config["m"], config["v"]
        m *= config["beta1"]
        m += (1 - config["beta1"]) * dw
        v *= config["beta2"]
        v += (1 - config["beta2"]) * dw * dw
        dw *= 0  # the gradient is used up: scribbling on it breaks nothing
        w -= config["learning_rate"] * (m / (1 - config["beta1"] ** t)) / (
            np.sqrt(v / (1 - config["beta2"] ** t)) + config["epsilon"])
        next_w = w
    """,
}


def grade_with(tmp_path, file, versions, only=None):
    shipped = a1()
    text = (shipped.reference_directory / file).read_text()
    for function, body in versions.items():
        text = student_version(text, function, body)
    folder = make_submission(tmp_path, shipped, "reference", {file: text})
    return grade_checks(shipped, folder, only=only, seed=None)


@pytest.mark.parametrize("rule", sorted(IN_PLACE_OPTIMIZERS))
def test_an_optimizer_updating_w_in_place_and_returning_it_gets_full_marks(tmp_path, rule):
    result = grade_with(tmp_path, "optim.py", {rule: IN_PLACE_OPTIMIZERS[rule]}, only=f"optim.{rule}")
    task = result.tasks[0]
    assert task.points == task.max_points, f"seed {result.seed}: {task.message}"


def test_a_relu_that_zeroes_its_input_in_place_breaks_nothing(tmp_path):
    result = grade_with(tmp_path, "layers.py", {
        "relu_forward": """
            x[x < 0] = 0
            out = x
            cache = x
        """,
        "relu_backward": """
            x = cache
            dout[x <= 0] = 0
            dx = dout
        """,
    })
    assert lost(result) == set(), f"seed {result.seed}"


def test_a_forward_pass_that_corrupts_what_its_backward_pass_needs_fails_saying_so(tmp_path):
    result = grade_with(tmp_path, "layers.py", {"sigmoid_forward": """
        cache = x
        np.negative(x, out=x)
        np.exp(x, out=x)
        out = 1 / (1 + x)
    """, "sigmoid_backward": """
        s = 1 / (1 + np.exp(-cache))
        dx = dout * s * (1 - s)
    """}, only="sigmoid.backward")
    task = result.tasks[0]
    assert task.points == 0, f"seed {result.seed}"
    assert "sigmoid_forward changed x in place, so a cache that keeps x hands sigmoid_backward" in task.message


def test_a_forward_pass_that_changes_a_parameter_in_place_fails_naming_it(tmp_path):
    result = grade_with(tmp_path, "layers.py", {"affine_forward": """
        w *= 2
        out = x.reshape(x.shape[0], -1) @ (w / 2) + b
        cache = (x, w / 2, b)
    """}, only="affine.forward")
    task = result.tasks[0]
    assert task.points == 0, f"seed {result.seed}"
    assert "affine_forward changed w in place: w belongs to the caller" in task.message
