"""A NumPy assignment's code may not use a deep-learning framework that happens to be installed: with
torch's autograd (or its ready-made layers) its backward passes would be computed for it. Its imports
fail saying why, and at the restricted and bwrap levels torch's files are unreadable besides, so that
code that removes the worker's import hook finds nothing to import."""

from __future__ import annotations

import os
import textwrap

import pytest

from grader.results import Outcome
from grader.sandbox import levels
from grader.sandbox.levels import package_directories, readable_except
from support import a1, grade_checks, make_submission

AFFINE_LINE = "    out = x.reshape(x.shape[0], -1) @ w + b\n"

WITH_TORCH = """
    import torch
    out = torch.nn.functional.linear(torch.from_numpy(x.reshape(x.shape[0], -1)), torch.from_numpy(w.T),
                                     torch.from_numpy(b)).numpy()
"""
# Knows the grader: takes its hook out of the import system first.
WITHOUT_THE_HOOK = """
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_HiddenModules"]
""" + WITH_TORCH

LEVELS = [pytest.param("bwrap", marks=pytest.mark.skipif(levels.bwrap_problem() is not None,
                                                         reason=f"bubblewrap unusable here: {levels.bwrap_problem()}")),
          pytest.param("restricted", marks=pytest.mark.skipif(levels.restricted_problem() is not None,
                                                              reason=f"{levels.restricted_problem()}"))]


def affine_forward_with(body: str, tmp_path):
    shipped = a1()
    layers = (shipped.reference_directory / "layers.py").read_text()
    assert AFFINE_LINE in layers
    indented = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", "    ")
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": layers.replace(AFFINE_LINE, indented)})
    return shipped, folder


def test_an_import_of_torch_fails_saying_the_assignment_is_numpys(tmp_path):
    pytest.importorskip("torch")
    shipped, folder = affine_forward_with(WITH_TORCH, tmp_path)
    result = grade_checks(shipped, folder, only="affine.forward", mode="public", sandbox="process")
    (task,) = result.tasks
    assert task.outcome is Outcome.ERROR and task.points == 0
    assert "No module named 'torch': this assignment is written with NumPy" in task.message, task.message


@pytest.mark.parametrize("level", LEVELS)
def test_code_that_removes_the_hook_still_finds_no_torch(tmp_path, level):
    pytest.importorskip("torch")
    shipped, folder = affine_forward_with(WITHOUT_THE_HOOK, tmp_path)
    result = grade_checks(shipped, folder, only="affine.forward", sandbox=level)
    (task,) = result.tasks
    assert task.points == 0 and task.outcome in (Outcome.ERROR, Outcome.FAILED), task.message


def test_readable_roots_leave_out_only_the_hidden_paths(tmp_path):
    root = tmp_path / "site-packages"
    for path in ("numpy/core", "torch/lib", "torchvision", "six.py"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(".py"):
            (root / path).write_text("")
        else:
            (root / path).mkdir(parents=True, exist_ok=True)
    (tmp_path / "lib64").symlink_to(root)          # a virtual environment's lib64 -> lib: it would grant torch
    (root / "torch_libs").symlink_to(root / "torch" / "lib")
    readable, listable = readable_except([str(tmp_path), "/usr"], [str(root / "torch")])
    assert sorted(readable) == sorted([str(root / "numpy"), str(root / "six.py"), str(root / "torchvision"), "/usr"])
    assert listable == [str(tmp_path), str(root)]


def test_the_packages_hidden_are_found_where_they_are_installed():
    torch = pytest.importorskip("torch")
    assert package_directories(("torch", "no_such_package")) == [os.path.realpath(os.path.dirname(torch.__file__))]
