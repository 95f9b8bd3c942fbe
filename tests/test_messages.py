"""What a student reads after one slip: a syntax error is told once (one traceback, not one per check
and task), a missing file is named as missing on every task that needs it, and the table comes
before the details."""

import io

import pytest

from rich.console import Console

from grader.report.terminal import render_table
from grader.results import Outcome
from support import a1, grade_checks, make_submission


def rendered(result, width=80) -> str:
    out = io.StringIO()
    render_table(result, Console(file=out, width=width, no_color=True, highlight=False, soft_wrap=False))
    return out.getvalue()


def test_a_syntax_error_is_told_once_in_few_lines(tmp_path):
    layers = (a1().reference_directory / "layers.py").read_text() + "\ndef broken(:\n"
    folder = make_submission(tmp_path, a1(), "reference", {"layers.py": layers})
    result = grade_checks(a1(), folder, mode="public")
    text = rendered(result)
    lines = text.splitlines()
    assert len(lines) <= 80, text
    assert text.count("SyntaxError: invalid syntax\n") == 1, text  # the traceback's last line, once
    assert "importlib" not in text and "grader-scratch" not in text
    assert 'File "layers.py", line' in text
    assert text.index("Score:") > text.index("affine.forward") and text.index("┏") < text.index("────")
    failed = [t for t in result.tasks if t.outcome is Outcome.ERROR]
    assert len(failed) > 30 and all("SyntaxError" in t.message for t in failed)
    # No task points at another for the very same error.
    assert not any("fix it first" in t.message or "fix them first" in t.message for t in result.tasks)


def test_a_missing_file_is_named_on_every_task_that_needs_it(tmp_path):
    folder = make_submission(tmp_path, a1(), "reference")
    (folder / "optim.py").unlink()
    result = grade_checks(a1(), folder, mode="official")
    needing = [t for t in result.tasks if t.outcome is not Outcome.PASSED]
    # The optimizers; not the models, whose provided Solver imports optim.py only when it is built.
    assert {t.task_id for t in needing} >= {"optim.sgd", "optim.adam"}
    for task in needing:
        assert task.message == "optim.py missing from the submission; this task needs it", task.message
    assert all(t.outcome is Outcome.PASSED for t in result.tasks
               if t.task_id.startswith(("affine.", "conv.", "two_layer_net.", "fc_net.")))


def test_an_import_of_a_package_not_installed_here_says_what_is(tmp_path):
    # A package the student's own machine has (scipy, say) may not be where the code is graded.
    layers = (a1().reference_directory / "layers.py").read_text()
    line = "def softmax_loss(x, y):\n"
    assert layers.count(line) == 1
    layers = layers.replace(line, line + "    from convnet_helpers_of_my_laptop.special import logsumexp  # noqa\n")
    folder = make_submission(tmp_path, a1(), "reference", {"layers.py": layers})
    (task,) = grade_checks(a1(), folder, only="softmax_loss.loss", mode="official").tasks
    assert task.outcome is Outcome.ERROR
    assert task.message.startswith("your code raised ModuleNotFoundError: No module named 'convnet_helpers_of_my_laptop'")
    assert "convnet_helpers_of_my_laptop is not installed where your code is graded" in task.message
    assert "standard library, NumPy and PyTorch" in task.message


def test_a_skipped_training_task_says_where_the_archive_goes_in_the_table_and_once(tmp_path, monkeypatch):
    import urllib.error

    from grader.data import cifar10
    from grader.report.gradescope import task_output

    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setattr(cifar10, "default_data_dir", lambda: tmp_path / "cache")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", offline)
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    from support import grade_folder

    result = grade_folder(a1(), folder, mode="public", only="two_layer_net.cifar10,fc_net.overfit", data="auto")
    assert all(t.outcome is Outcome.SKIPPED for t in result.tasks)
    text = rendered(result)
    table = text[:text.index("└")]
    assert "cifar-10-python.tar.gz" in table and str(tmp_path / "cache") in table.replace("│", "").replace(
        "\n", "").replace(" ", ""), table
    assert text.count("md5 c58f30108f718f92721af3b95e74349a") == 1  # the whole story, under the table, once
    task = result.tasks[0]
    assert task_output(task).count("not available") == 1, task_output(task)
    assert "skipped: skipped" not in task_output(task)


def test_what_the_code_printed_before_it_hung_reaches_the_log(tmp_path):
    layers = (a1().reference_directory / "layers.py").read_text() + (
        "\n_relu = relu_forward\n\n\ndef relu_forward(x):\n"
        "    print('about to loop forever', flush=False)\n    while True:\n        pass\n")
    folder = make_submission(tmp_path, a1(), "reference", {"layers.py": layers})
    result = grade_checks(a1(), folder, mode="official", only="relu.forward", call_timeout_s=2)
    assert result.tasks[0].outcome is Outcome.TIMEOUT
    assert "about to loop forever" in result.submission_log


@pytest.mark.parametrize("without_gpu", ["advise", "skip", "leave_out"])
def test_a_gpu_task_where_there_is_no_gpu_is_skipped_with_advice_only_where_it_can_be_followed(
        tmp_path, monkeypatch, without_gpu):
    import grader.engine.training
    from support import assignment, grade_folder

    monkeypatch.setattr(grader.engine.training, "cuda_available", lambda: False)
    a2 = assignment("a2_cnn_torch")
    folder = make_submission(tmp_path, a2, "reference")
    result = grade_folder(a2, folder, mode="public", only="deep_convnet.cifar10", data="synthetic",
                          without_gpu=without_gpu, synthetic_train=600, validation_images=100, synthetic_test=100)
    tasks = {t.task_id: t for t in result.tasks}
    if without_gpu == "leave_out":
        assert "deep_convnet.cifar10" not in tasks
        return
    task = tasks["deep_convnet.cifar10"]
    assert task.outcome is Outcome.SKIPPED and task.points == 0 and "has none" in task.message
    assert ("--device cpu" in task.message) == (without_gpu == "advise")


@pytest.mark.parametrize("assignment_id", ["a1_fc_numpy", "a2_cnn_torch", "a3_resnet_pytorch"])
def test_a_training_task_title_states_no_target_that_depends_on_the_data(assignment_id):
    """Test names (Gradescope, JUnit) must not say "reaches 50 %" where the synthetic target is 42 %:
    a number in a title is one every data source shares; the message states the one that applied."""
    import re

    from support import assignment

    for task in assignment(assignment_id).spec.tasks:
        if task.training is None:
            continue
        stated = {float(n) / 100 for n in re.findall(r"(\d+(?:\.\d+)?) ?%", task.title)}
        targets = set(task.training.target.values())
        assert stated <= targets if len(targets) == 1 else not stated, (task.id, task.title, targets)
