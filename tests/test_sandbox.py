"""The isolation levels keep their promises, proven from inside a worker; with the sandbox switched
off the same probes get through (so the probes have teeth); official grading refuses to run on a
sandbox that does not hold."""

import pytest

from grader import sandbox, selfcheck
from grader.assignment import ConfigError
from support import a1, grade_checks, make_submission

BWRAP_PROBLEM = sandbox.bwrap_problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bubblewrap unusable here: {BWRAP_PROBLEM}")


def observed(level, **kwargs):
    return {o.promise.name: o for o in selfcheck.run_selfcheck(level, every_promise=True, **kwargs)}


@pytest.mark.parametrize("level", [pytest.param("bwrap", marks=needs_bwrap), "process"])
def test_every_promise_of_a_level_holds(level):
    observations = observed(level)
    made = {name: o for name, o in observations.items() if level in o.promise.levels}
    assert made and all(o.held for o in made.values()), {n: o.observed for n, o in made.items() if not o.held}


def test_without_a_sandbox_the_deny_probes_get_through():
    observations = observed("none")
    for key in ("tcp", "udp", "write", "reference", "fork_bomb", "memory"):
        promise = selfcheck.PROMISES[key]
        assert not observations[promise.name].held, f"{promise.name} held without any sandbox"


def test_the_process_level_does_not_pretend_to_isolate_the_network_or_the_file_system():
    observations = observed("process")
    for key in ("tcp", "write", "reference"):
        assert not observations[selfcheck.PROMISES[key].name].held


@needs_bwrap
def test_official_grading_refuses_a_sandbox_that_lets_the_network_through(monkeypatch, tmp_path):
    leaky = [arg for arg in sandbox._namespace_args() if arg != "--unshare-net"]
    monkeypatch.setattr(sandbox, "_namespace_args", lambda: leaky)
    selfcheck.forget_verdicts()
    try:
        shipped = a1()
        with pytest.raises(ConfigError, match="TCP connection"):
            grade_checks(shipped, make_submission(tmp_path, shipped), only="affine.forward", sandbox="bwrap")
    finally:
        selfcheck.forget_verdicts()


def test_asking_for_bwrap_where_it_cannot_work_is_a_configuration_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: None)
    sandbox.bwrap_problem.cache_clear()
    try:
        shipped = a1()
        with pytest.raises(ConfigError, match="bubblewrap is not installed"):
            grade_checks(shipped, make_submission(tmp_path, shipped), only="affine.forward", sandbox="bwrap")
        assert sandbox.resolve_level("auto", "official") == "process"
    finally:
        sandbox.bwrap_problem.cache_clear()


@needs_bwrap
def test_the_reference_grades_fully_inside_bwrap(tmp_path):
    shipped = a1()
    result = grade_checks(shipped, make_submission(tmp_path, shipped), only="[ab]*", sandbox="bwrap")
    assert result.tasks and result.score == result.max_score


@needs_bwrap
def test_a_submission_inside_bwrap_cannot_read_the_reference(tmp_path):
    shipped = a1()
    cheat = (shipped.reference_directory / "layers.py").read_text().replace(
        "def affine_forward(x, w, b):",
        "def affine_forward(x, w, b):\n"
        f"    open({str(shipped.reference_directory / 'layers.py')!r}).read()\n", 1)
    assert cheat.count("open(") == 1
    result = grade_checks(shipped, make_submission(tmp_path, shipped, "reference", {"layers.py": cheat}),
                          only="affine.forward", sandbox="bwrap")
    assert result.tasks[0].points == 0 and "No such file" in result.tasks[0].message
    process = grade_checks(shipped, make_submission(tmp_path / "p", shipped, "reference", {"layers.py": cheat}),
                           only="affine.forward", sandbox="process")
    assert process.tasks[0].points == process.tasks[0].max_points  # the teeth: readable without bwrap
