"""These checks talk to your code through the grader (its worker process, its reference answers):
plain `pytest` cannot run them. Run `./grade.sh a1_fc_numpy` instead."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not any(getattr(plugin, "runs_assignment_checks", False) for plugin in config.pluginmanager.get_plugins()):
        raise pytest.UsageError("these checks run through the grader: use ./grade.sh a1_fc_numpy "
                                "(or: grader grade a1_fc_numpy) instead of pytest")
