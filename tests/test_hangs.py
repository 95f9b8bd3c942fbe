"""A function that never returns costs a submission one call limit: later calls of it, and of anything
that reaches it, fail at once with a message that says so, and every task is still reported."""

import os
import time

import pytest

from grader.sandbox.remote import StackFrame, WorkerSession, read_stack_dump
from grader.results import Outcome
from support import assignment, grade_checks, grade_folder, make_submission

CALL_LIMIT_S = 4.0  # long enough that no honest check of a2 reaches it on a busy 2-core machine
# One more worker start (torch imported again) after the stopped one, and a shared machine's noise.
RESTART_SLACK_S = 6.0
HONEST_LINEAR = "out = x.reshape(x.shape[0], -1) @ w + b"


def a2():
    return assignment("a2_cnn_torch")


def endless_linear_forward(folder):
    path = folder / "layers.py"
    text = path.read_text()
    assert HONEST_LINEAR in text
    path.write_text(text.replace(HONEST_LINEAR, "while True:\n            pass", 1))
    return folder


def timed_checks(folder, **options):
    start = time.perf_counter()
    result = grade_checks(a2(), folder, call_timeout_s=CALL_LIMIT_S, hints=False, **options)
    return result, time.perf_counter() - start


def waits(result):
    """The checks whose worker was stopped at the call limit (not those refused at once)."""
    return [check for task in result.tasks for check in task.checks
            if "no answer within" in check.message and "not called again" not in check.message]


def test_an_endless_loop_in_linear_forward_costs_one_call_limit(tmp_path):
    honest, honest_s = timed_checks(make_submission(tmp_path / "honest", a2(), "reference"))
    assert not waits(honest)
    hanging, hanging_s = timed_checks(endless_linear_forward(make_submission(tmp_path / "hanging", a2(), "reference")))
    assert [t.task_id for t in hanging.tasks] == [t.task_id for t in honest.tasks]  # every task reported
    assert len(waits(hanging)) == 1
    refused = {t.task_id: t for t in hanging.tasks if "not called again" in t.message}
    assert {"linear_relu.forward", "two_layer_net.loss", "fc_net.loss", "deep_convnet.loss"} <= set(refused)
    assert all(t.outcome is Outcome.TIMEOUT and t.points == 0 for t in refused.values())
    assert "forward (layers.py line" in refused["two_layer_net.loss"].message
    assert hanging_s <= honest_s + CALL_LIMIT_S + RESTART_SLACK_S, (hanging_s, honest_s)


@pytest.mark.slow
def test_without_remembering_the_hang_every_check_that_reaches_it_waits_again(tmp_path, monkeypatch):
    monkeypatch.setattr(WorkerSession, "_remember_hang", lambda self, called, timeout_s: None)
    folder = endless_linear_forward(make_submission(tmp_path, a2(), "reference"))
    hanging, _ = timed_checks(folder, only="linear.*,linear_relu.forward")
    assert len(waits(hanging)) > 3


def test_training_that_reaches_a_function_that_hung_in_a_check_stops_at_once(tmp_path):
    folder = endless_linear_forward(make_submission(tmp_path, a2(), "reference"))
    result = grade_folder(a2(), folder, only="linear.forward,two_layer_net.cifar10", data="synthetic",
                          device="cpu", call_timeout_s=CALL_LIMIT_S, hints=False)
    task = next(t for t in result.tasks if t.task_id == "two_layer_net.cifar10")
    assert task.outcome is Outcome.TIMEOUT and "not called again" in task.message, task.message


DUMP = """tag 7 main 1000
Timeout (0:00:01.000000)!
Thread 0x00000000000003e8 (most recent call first):
  File "{package}/models.py", line 118 in loss
  File "/grader/worker/loop.py", line 99 in run

Timeout (0:00:01.000000)!
Thread 0x00000000000007d0 (most recent call first):
  File "{package}/models.py", line 3 in helper
  File "/usr/lib/python3.11/threading.py", line 982 in run

Thread 0x00000000000003e8 (most recent call first):
  File "/site-packages/torch/functional.py", line 10 in einsum
  File "{package}/layers.py", line 36 in forward
  File "{package}/models.py", line 120 in loss
  File "/grader/worker/loop.py", line 99 in run
"""


def test_the_stack_dumps_name_the_innermost_frame_of_the_submission_in_the_main_threads_last_dump(tmp_path):
    package = str(tmp_path / "submission")
    dump = tmp_path / "dump"
    dump.write_text(DUMP.format(package=package))
    assert read_stack_dump(dump, 7, {package}) == StackFrame(f"{package}/layers.py", "forward", 36)
    assert read_stack_dump(dump, 8, {package}) is None  # the dump of another request


def test_the_stack_dump_is_not_read_through_a_link(tmp_path):
    package = str(tmp_path / "submission")
    (tmp_path / "elsewhere").write_text(DUMP.format(package=package))
    os.symlink(tmp_path / "elsewhere", tmp_path / "dump")
    assert read_stack_dump(tmp_path / "dump", 7, {package}) is None
