"""Student code is untrusted: whatever affine_forward returns or does, it earns nothing it should not,
the grader survives, and the other tasks are still graded."""

import textwrap

import pytest

from grader.results import Outcome
from support import a1, grade_checks, make_submission, outcomes

AFFINE_LINE = "    out = x.reshape(x.shape[0], -1) @ w + b\n"


@pytest.fixture(scope="module")
def assignment():
    return a1()


def with_affine_body(assignment, body):
    layers = (assignment.reference_directory / "layers.py").read_text()
    assert AFFINE_LINE in layers
    return layers.replace(AFFINE_LINE, textwrap.indent(textwrap.dedent(body), "    "))


def grade_affine_and_relu(assignment, tmp_path, layers_text, **options):
    folder = make_submission(tmp_path, assignment, "reference", {"layers.py": layers_text})
    return grade_checks(assignment, folder, only="[ar]*.forward", **options)


ATTACKS = {
    "always_equal_object": """
        class AlwaysEqual:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
        out = AlwaysEqual()
    """,
    "ndarray_subclass": """
        class Agreeable(np.ndarray):
            def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
            def __sub__(self, other): return np.zeros(np.shape(other))
            def __array_function__(self, func, types, args, kwargs): return np.zeros(()) 
        out = np.zeros((x.shape[0], w.shape[1])).view(Agreeable)
    """,
    "tensor_subclass": """
        import torch
        class Agreeable(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None): return torch.zeros(())
        out = torch.zeros(x.shape[0], w.shape[1]).as_subclass(Agreeable)
    """,
    "value_that_is_not_plain": """
        out = (lambda: None)
    """,
    "forged_results_json_on_stdout": """
        import json, os, sys
        forged = json.dumps({"score": 1000, "tests": [{"name": "affine.forward", "score": 2, "max_score": 2,
                                                        "status": "passed"}]})
        print(forged); sys.stderr.write(forged); os.write(1, forged.encode())
        out = np.zeros((x.shape[0], w.shape[1]))
    """,
    "exception": """
        raise ZeroDivisionError("my own bug")
    """,
    "sys_exit_mid_check": """
        import sys
        sys.exit(0)
    """,
    "os_exit_mid_check": """
        import os
        os._exit(0)
    """,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_in_affine_forward_earns_nothing_and_relu_is_still_graded(assignment, tmp_path, attack):
    result = grade_affine_and_relu(assignment, tmp_path, with_affine_body(assignment, ATTACKS[attack]))
    got = outcomes(result)
    assert got["relu.forward"] is Outcome.PASSED
    assert got["affine.forward"] in (Outcome.FAILED, Outcome.ERROR)
    assert result.score == 1  # relu.forward's point only


def test_student_exception_reports_the_students_traceback(assignment, tmp_path):
    result = grade_affine_and_relu(assignment, tmp_path, with_affine_body(assignment, ATTACKS["exception"]))
    affine = next(t for t in result.tasks if t.task_id == "affine.forward")
    assert affine.outcome is Outcome.ERROR
    assert "ZeroDivisionError: my own bug" in affine.message
    assert "layers.py" in affine.detail and "grader/worker" not in affine.detail


def test_infinite_loop_times_out_and_grading_goes_on(assignment, tmp_path):
    layers = with_affine_body(assignment, "while True:\n    pass\n")
    result = grade_affine_and_relu(assignment, tmp_path, layers, call_timeout_s=1.0)
    assert outcomes(result) == {"affine.forward": Outcome.TIMEOUT, "relu.forward": Outcome.PASSED}


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_exit_at_import_fails_the_module_not_the_grader(assignment, tmp_path, exit_call):
    layers = exit_call + "\n" + (assignment.reference_directory / "layers.py").read_text()
    folder = make_submission(tmp_path, assignment, "reference", {"layers.py": layers})
    result = grade_checks(assignment, folder, only="[ao]*")  # affine.* (layers.py) and optim.* (optim.py)
    got = outcomes(result)
    assert {got[t] for t in got if t.startswith("affine")} == {Outcome.ERROR}
    assert {got[t] for t in got if t.startswith("optim")} == {Outcome.PASSED}
    assert result.score == sum(t.max_points for t in result.tasks if t.task_id.startswith("optim"))


def test_a_flood_of_output_is_capped(assignment, tmp_path):
    layers = with_affine_body(assignment, """
        import sys
        for _ in range(2000):
            sys.stdout.write("x" * 10000 + "\\n")
        out = x.reshape(x.shape[0], -1) @ w + b
    """)
    result = grade_affine_and_relu(assignment, tmp_path, layers)
    assert result.score == 3
    assert len(result.submission_log) < 200_000 and "bytes of output dropped" in result.submission_log


def test_an_answer_larger_than_any_check_asks_for_is_not_read(assignment, tmp_path):
    # 300 MB of bytes fit the worker's memory; read, copied as float64 to compare and sketched, they
    # cost the grader's process many times that. The grader stops at the size the answer declares.
    import resource

    layers = with_affine_body(assignment, """
        out = np.zeros(300 * 1024 * 1024, dtype=np.uint8)
    """)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = grade_affine_and_relu(assignment, tmp_path, layers)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    affine = next(t for t in result.tasks if t.task_id == "affine.forward")
    assert affine.outcome in (Outcome.FAILED, Outcome.ERROR) and "larger than 256 MiB" in affine.message, affine.message
    assert outcomes(result)["relu.forward"] is Outcome.PASSED
    assert grown_mib < 200, f"the grader's process grew by {grown_mib:.0f} MiB"
