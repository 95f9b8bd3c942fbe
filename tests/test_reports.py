"""Writers render one result model: Gradescope results.json, JUnit XML, the terminal table."""

import io
import json
import xml.etree.ElementTree as ElementTree

import pytest
from rich.console import Console

from grader.report.gradescope import to_results_json
from grader.report.junit import to_junit_xml
from grader.report.terminal import render_table
from grader.results import CheckResult, GradingResult, Outcome, TaskResult, TrainingMeasurement

GRADESCOPE_VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


@pytest.fixture
def result():
    passed = TaskResult.from_checks("affine.forward", "Affine forward", 2, "visible",
                                    [CheckResult("test_a", "affine.forward", Outcome.PASSED)])
    failed = TaskResult.from_checks("affine.backward", "Affine backward", 3, "hidden", [
        CheckResult("test_b[1]", "affine.backward", Outcome.PASSED),
        CheckResult("test_b[2]", "affine.backward", Outcome.FAILED, "dx of affine_backward: 3 of 4 differ", "detail"),
    ])
    missing = TaskResult.from_checks("relu.forward", "ReLU", 1, "visible",
                                     [CheckResult("test_r", "relu.forward", Outcome.NOT_IMPLEMENTED, "not implemented")])
    training = TaskResult("net.cifar10", "Net reaches 50 %", 5, 2.5, Outcome.FAILED, "45 % after 30 s", kind="training",
                          training=TrainingMeasurement(0.45, 30.2, "cpu", "synthetic", 0.5, 0.4))
    skipped = TaskResult("net.gpu", "GPU net", 4, 0, Outcome.SKIPPED, "skipped: no CUDA", kind="training")
    return GradingResult("a1_fc_numpy", "official", 42, (passed, failed, missing, training, skipped), 3.2, "0.1.0",
                         {"python": "3.11", "numpy": "2.0"})


def test_task_outcome_is_the_most_telling_of_its_checks(result):
    assert result.tasks[1].outcome is Outcome.FAILED and result.tasks[1].points == 0
    assert result.tasks[1].message == "dx of affine_backward: 3 of 4 differ"
    assert result.score == 4.5 and result.max_score == 15


def test_results_json_is_valid_for_gradescope(result):
    data = json.loads(json.dumps(to_results_json(result)))
    assert data["score"] == 4.5 and isinstance(data["execution_time"], int)
    assert data["extra_data"] == {"assignment": "a1_fc_numpy", "mode": "official", "seed": 42, "max_score": 15,
                                  "grader_version": "0.1.0", "versions": {"python": "3.11", "numpy": "2.0"},
                                  "sandbox": None}
    for number, test in enumerate(data["tests"], start=1):
        assert set(test) == {"name", "number", "score", "max_score", "status", "output", "visibility", "extra_data"}
        assert test["status"] in ("passed", "failed") and test["visibility"] in GRADESCOPE_VISIBILITIES
        assert test["number"] == str(number) and 0 <= test["score"] <= test["max_score"]
        assert test["extra_data"]["outcome"] in {o.value for o in Outcome}
    training = data["tests"][3]["extra_data"]
    assert training == {"task": "net.cifar10", "outcome": "failed", "kind": "training", "accuracy": 0.45,
                        "train_seconds": 30.2, "device": "cpu", "data": "synthetic"}
    assert data["tests"][1]["visibility"] == "hidden"



def test_results_json_reads_back_as_the_result_it_was_written_from(result, tmp_path):
    """The Gradescope runner reads its grading process's results.json and writes it again: nothing
    the file held is lost or changed on the way, and training targets come from the assignment."""
    import dataclasses
    from types import SimpleNamespace

    from grader.engine.training_history import TrainingHistory
    from grader.report.gradescope import read_results_json, write_results_json

    history = TrainingHistory(3, (2.3, float("nan"), 1.9), (1, 2, 3), (0.1, 0.4), (0.1, 0.45), 2, (0.5, 9.25))
    training = dataclasses.replace(result.tasks[3], training=dataclasses.replace(
        result.tasks[3].training, history=history, time_limit_s=60.0))
    result = dataclasses.replace(result, tasks=(*result.tasks[:3], training, result.tasks[4]),
                                 output="note\n\nmore", sandbox="bwrap")
    net = SimpleNamespace(id="net.cifar10", visibility="visible",
                          training=SimpleNamespace(target={"synthetic": 0.5}, partial_credit_from={"synthetic": 0.4}))
    spec = SimpleNamespace(tasks=[net])
    write_results_json(result, tmp_path / "results.json")
    read = read_results_json(tmp_path / "results.json", spec)
    assert to_results_json(read) == json.loads((tmp_path / "results.json").read_text())
    assert read.tasks[3].training.target == 0.5 and read.tasks[3].training.partial_credit_from == 0.4
    assert read.tasks[1].message == "dx of affine_backward: 3 of 4 differ" and read.tasks[1].outcome is Outcome.FAILED
    assert read.score == result.score and read.sandbox == "bwrap"
    (tmp_path / "results.json").write_text('{"tests": []}')
    with pytest.raises(ValueError, match="not a grader's results.json"):
        read_results_json(tmp_path / "results.json", spec)

def test_a_results_json_keeps_each_visibility_an_assignment_accepts_and_no_other(result, tmp_path):
    from types import SimpleNamespace

    from grader.results import VISIBILITIES
    from grader.report.gradescope import read_results_json, write_results_json

    assert set(VISIBILITIES) == GRADESCOPE_VISIBILITIES   # an assignment's words are Gradescope's
    net = SimpleNamespace(id="net.cifar10", visibility="visible",
                          training=SimpleNamespace(target={"synthetic": 0.5}, partial_credit_from={"synthetic": 0.4}))
    spec = SimpleNamespace(tasks=[SimpleNamespace(id="affine.forward", visibility="after_due_date", training=None), net])
    path = tmp_path / "results.json"
    write_results_json(result, path)
    written = json.loads(path.read_text())
    for visibility in (*VISIBILITIES, "everyone", None):
        written["tests"][0]["visibility"] = visibility
        path.write_text(json.dumps(written))
        expected = visibility if visibility in VISIBILITIES else "after_due_date"   # else the assignment's
        assert read_results_json(path, spec).tasks[0].visibility == expected, visibility


def test_junit_has_one_testcase_per_task(result):
    suite = ElementTree.fromstring(to_junit_xml(result))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [t.task_id for t in result.tasks]
    assert suite.get("tests") == "5" and suite.get("failures") == "3" and suite.get("skipped") == "1"
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    assert cases[4].find("skipped") is not None


def test_terminal_table_shows_points_outcome_and_reason(result):
    stream = io.StringIO()
    render_table(result, Console(file=stream, width=150, no_color=True))
    text = stream.getvalue()
    assert "affine.backward" in text and "0/3" in text and "dx of affine_backward" in text
    assert "not_implemented" in text and "Score: 4.5 / 15" in text


def test_a_skipped_check_does_not_cost_a_task_whose_other_checks_ran():
    task = TaskResult.from_checks("conv.forward", "Conv", 3, "visible", [
        CheckResult("test_cpu", "conv.forward", Outcome.PASSED),
        CheckResult("test_cuda", "conv.forward", Outcome.SKIPPED, "no CUDA here"),
    ])
    assert task.outcome is Outcome.PASSED and task.points == 3
    assert task.message == "1 check passed; 1 could not run here (no CUDA here)"  # not "2 checks passed"
    only_skipped = TaskResult.from_checks("conv.forward", "Conv", 3, "visible",
                                          [CheckResult("test_cuda", "conv.forward", Outcome.SKIPPED, "no CUDA here")])
    assert only_skipped.outcome is Outcome.SKIPPED and only_skipped.points == 0
