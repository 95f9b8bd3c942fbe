"""Official grading starts the worker while the sandbox's promises are proven, at the level the proof
is expected to choose: where the proof chooses another, that worker is replaced before anything of
the submission's runs, so the checks run at the level proven, never at the one guessed."""

import os

import pytest

from grader.engine import grading
from grader.results import Outcome
from grader.sandbox.levels import level_problem
from support import a1, grade_folder, make_submission

# relu.forward answers right only outside a new PID namespace (bwrap's worker sees itself as a low pid).
REVEALING_RELU = '''
def relu_forward(x):
    import os
    out = np.maximum(x, 0)
    if os.getpid() < 100:
        out = out + 1.0
    return out, x
'''


@pytest.mark.skipif(level_problem("bwrap") is not None, reason="bubblewrap cannot start here")
def test_a_worker_started_at_the_level_guessed_is_replaced_when_the_proof_chooses_another(tmp_path, monkeypatch):
    assignment = a1()
    layers = (assignment.reference_directory / "layers.py").read_text()
    start = layers.index("def relu_forward(")
    end = layers.index("\ndef ", start + 1)
    folder = make_submission(tmp_path / "sub", assignment, "reference",
                             {"layers.py": layers[:start] + REVEALING_RELU.lstrip() + layers[end:]})
    monkeypatch.setattr(grading, "expected_level", lambda requested: "bwrap")
    monkeypatch.setattr(grading, "sandbox_level", lambda requested, mode: "process")
    result = grade_folder(assignment, folder, only="relu.forward", sandbox="auto", training=False)
    assert result.sandbox == "process"
    assert result.tasks[0].outcome is Outcome.PASSED, result.tasks[0].message
    assert os.getpid() >= 100  # the test itself runs where the revealing layer answers right

    # Had the guessed worker been kept, the checks would have run inside bwrap's namespace.
    real_close, skipped = grading.WorkerSession.close, []

    def close_but_not_the_guessed_one(session):
        if not skipped:  # the first close is the replacement of the guessed worker
            skipped.append(session)
            return
        real_close(session)

    monkeypatch.setattr(grading.WorkerSession, "close", close_but_not_the_guessed_one)
    kept = grade_folder(assignment, folder, only="relu.forward", sandbox="auto", training=False)
    assert kept.tasks[0].outcome is not Outcome.PASSED


def test_the_reference_loads_while_the_proof_runs(tmp_path, monkeypatch):
    """The reference (and torch, for a torch assignment: a second's import) loads in the time the proof
    spends waiting for its probe worker, not after it."""
    import threading

    assignment = a1()
    folder = make_submission(tmp_path / "sub", assignment, "reference")
    loaded, seen_during_proof = threading.Event(), []
    real_load, real_level = grading.load_reference_package, grading.sandbox_level

    def load(*args):
        package = real_load(*args)
        loaded.set()
        return package

    def level(requested, mode):
        chosen = real_level(requested, mode)
        seen_during_proof.append(loaded.wait(timeout=20))
        return chosen

    monkeypatch.setattr(grading, "load_reference_package", load)
    monkeypatch.setattr(grading, "sandbox_level", level)
    result = grade_folder(assignment, folder, only="relu.forward", sandbox="auto", training=False)
    assert result.tasks[0].outcome is Outcome.PASSED, result.tasks[0].message
    assert seen_during_proof == [True]
    assert {"sandbox_proof_s", "reference_load_s"} <= set(result.timings)
