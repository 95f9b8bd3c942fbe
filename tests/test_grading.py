"""Every assignment graded end to end: the reference earns every point of every task scored by
checks, the untouched stubs earn none and say so, in official and in public mode."""

import os
from pathlib import Path

import pytest

from grader.results import Outcome
from grader.engine.validate import validate
from support import ASSIGNMENTS, assignment, check_tasks, grade_checks, make_submission, outcomes


@pytest.fixture(params=ASSIGNMENTS, scope="module")
def shipped(request):
    return assignment(request.param)


def test_validates_clean(shipped):
    assert validate(shipped) == []


@pytest.mark.parametrize("mode", ["official", "public"])
def test_reference_scores_every_point(shipped, tmp_path, mode):
    result = grade_checks(shipped, make_submission(tmp_path, shipped, "reference"), mode=mode)
    not_passed = {t.task_id: t.message for t in result.tasks if t.outcome is not Outcome.PASSED}
    assert not_passed == {}
    assert {t.task_id for t in result.tasks} == check_tasks(shipped)
    assert result.score == result.max_score == sum(t.points for t in shipped.spec.tasks if t.training is None)


@pytest.mark.parametrize("mode", ["official", "public"])
def test_stubs_score_zero_and_are_not_implemented(shipped, tmp_path, mode):
    result = grade_checks(shipped, make_submission(tmp_path, shipped, "stubs"), mode=mode)
    assert result.score == 0
    assert set(outcomes(result).values()) == {Outcome.NOT_IMPLEMENTED}
    assert all("not implemented" in t.message for t in result.tasks)


def test_the_cuda_variant_of_a_check_draws_the_inputs_of_its_cpu_twin():
    from types import SimpleNamespace

    from grader.engine.pytest_plugin import seed_name

    def item(nodeid, **params):
        return SimpleNamespace(nodeid=nodeid, callspec=SimpleNamespace(params=params))

    cpu = item("checks/test_layers.py::test_x[Linear-float64-cpu]", device="cpu")
    cuda = item("checks/test_layers.py::test_x[Linear-float64-cuda]", device="cuda")
    assert seed_name(cuda) == seed_name(cpu) == cpu.nodeid
    other = item("checks/test_layers.py::test_x[ReLU-float64-cpu]", device="cpu")
    assert seed_name(other) != seed_name(cpu)
    plain = SimpleNamespace(nodeid="checks/test_layers.py::test_y")
    assert seed_name(plain) == plain.nodeid


def install_plugin(site, group, module, source):
    """`module` installed in the folder `site` the way pip installs a plugin: an entry point of `group`
    in its distribution's metadata."""
    metadata = site / f"{module}-1.0.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text(f"[{group}]\nintruding = {module}\n")
    (site / f"{module}.py").write_text(source)
    return site


def test_plugins_installed_on_the_machine_do_not_run_during_grading(tmp_path, monkeypatch):
    """A pytest plugin the machine has installed (found through its entry point, the way pip installs
    one) must not run while the checks do: it could reorder or reseed them, or write files."""
    trace = tmp_path / "plugin_ran"
    site = install_plugin(tmp_path / "site", "pytest11", "intruding_plugin",
                          f"def pytest_configure(config):\n    open({str(trace)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(site))
    a1 = assignment("a1_fc_numpy")
    result = grade_checks(a1, make_submission(tmp_path / "submission", a1, "reference"), mode="public")
    assert result.score == result.max_score
    assert not trace.exists()


def test_what_the_grader_loads_is_frozen_for_the_collector_during_the_checks(tmp_path, monkeypatch):
    """The framework, the reference and pytest stay out of the cyclic collector's full passes while the
    checks run (each pass would walk them all); the collector runs for what the checks make, and the
    process gets its objects and collector back as they were when the grading ends, failed or not."""
    import gc

    from grader.engine import pytest_plugin

    observed = []
    real_run_checks = pytest_plugin.run_checks

    def run_checks(*args):
        observed.append((gc.isenabled(), gc.get_freeze_count()))
        return real_run_checks(*args)

    monkeypatch.setattr(pytest_plugin, "run_checks", run_checks)
    a1 = assignment("a1_fc_numpy")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    result = grade_checks(a1, make_submission(tmp_path / "sub", a1, "reference"), mode="public", only="affine.forward")
    assert result.tasks[0].outcome is Outcome.PASSED, result.tasks[0].message
    [(enabled, frozen)] = observed
    assert enabled and frozen > 10_000
    assert gc.isenabled() and gc.get_freeze_count() == 0

    def broken_run_checks(*args):
        raise RuntimeError("the checks broke")

    monkeypatch.setattr(pytest_plugin, "run_checks", broken_run_checks)
    with pytest.raises(RuntimeError, match="the checks broke"):
        grade_checks(a1, make_submission(tmp_path / "again", a1, "reference"), mode="public", only="affine.forward")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_pydantic_plugins_installed_on_the_machine_do_not_run_in_the_grader(tmp_path):
    """A pydantic plugin the machine has installed (an entry point in the `pydantic` group) would run
    inside the grader when it validates an assignment's configuration; it must not."""
    import subprocess
    import sys

    trace = tmp_path / "plugin_ran"
    site = install_plugin(tmp_path / "site", "pydantic", "intruding_validator", f"open({str(trace)!r}, 'w').close()\n")
    repository = Path(__file__).resolve().parent.parent
    code = "from grader.assignment import load_assignment; load_assignment('a1_fc_numpy')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(repository)])}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    subprocess.run([sys.executable, "-c", code], cwd=repository, env=env, check=True, timeout=120)
    assert not trace.exists()


def test_the_graders_own_torch_work_runs_on_one_thread(tmp_path, monkeypatch):
    """The reference's computations on a check's small inputs gain nothing from more threads, and idle
    threads spin-wait between round trips on the cores the worker and other gradings need."""
    import torch

    from grader.engine import pytest_plugin

    before, observed = torch.get_num_threads(), []
    real_run_checks = pytest_plugin.run_checks

    def run_checks(*args):
        observed.append(torch.get_num_threads())
        return real_run_checks(*args)

    monkeypatch.setattr(pytest_plugin, "run_checks", run_checks)
    try:
        torch.set_num_threads(2)
        shipped = assignment("a2_cnn_torch")
        result = grade_checks(shipped, make_submission(tmp_path / "sub", shipped), only="relu.forward")
        assert result.tasks[0].outcome is Outcome.PASSED, result.tasks[0].message
        assert observed == [1]
        assert torch.get_num_threads() == 2  # the process's own setting, back when the grading ends
    finally:
        torch.set_num_threads(before)
