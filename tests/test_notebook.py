"""A submission handed in as a Jupyter notebook: its student files are read from `%%writefile` cells or
from the functions its cells define, and none of its code runs in the grader."""

import ast
import json
import warnings

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.results import Outcome
from grader.engine.submission import UnusableSubmission, prepare_submission
from support import a1, grade_checks


def write_notebook(path, cells):
    path.write_text(nbformat.writes(new_notebook(cells=cells)))
    return path


def reference_text(name):
    return (a1().reference_directory / name).read_text()


def definition(file, name):
    text = reference_text(file)
    node = next(n for n in ast.parse(text).body if getattr(n, "name", None) == name)
    return ast.get_source_segment(text, node)


def test_writefile_cells_are_the_student_files(tmp_path):
    cells = [new_markdown_cell("# Assignment 1"), new_code_cell("!pip install torch\n%matplotlib inline")]
    cells += [new_code_cell(f"%%writefile {name}\n{reference_text(name)}") for name in ("layers.py", "optim.py")]
    cells.append(new_code_cell(f"%%writefile /content/drive/MyDrive/a1/models.py\n{reference_text('models.py')}"))
    notebook = write_notebook(tmp_path / "a1.ipynb", cells)
    result = grade_checks(a1(), notebook, only="affine.*,optim.sgd,two_layer_net.init")
    assert all(t.outcome is Outcome.PASSED for t in result.tasks), [(t.task_id, t.message) for t in result.tasks]


def test_functions_defined_in_cells_replace_their_stubs(tmp_path):
    cells = [new_code_cell("import numpy as np\n%load_ext autoreload"),
             new_code_cell(definition("layers.py", "affine_forward") + "\n\nprint('defined')"),
             # First written wrong, then fixed further down: the last definition is the one that counts.
             new_code_cell("def relu_forward(x):\n    return x, x\n"),
             new_code_cell(definition("layers.py", "relu_forward")),
             new_code_cell(definition("optim.py", "sgd"))]
    notebook = write_notebook(tmp_path / "a1.ipynb", cells)
    result = grade_checks(a1(), notebook, only="affine.forward,relu.forward,optim.sgd,affine.backward")
    outcomes = {t.task_id: t.outcome for t in result.tasks}
    assert outcomes == {"affine.forward": Outcome.PASSED, "relu.forward": Outcome.PASSED,
                        "optim.sgd": Outcome.PASSED, "affine.backward": Outcome.NOT_IMPLEMENTED}, \
        [(t.task_id, t.message) for t in result.tasks]
    assert "models.py" in result.output  # no cell of it: missing


def test_no_code_of_the_notebook_runs_in_the_grader(tmp_path):
    marker = tmp_path / "ran"
    cells = [new_code_cell(f"open({str(marker)!r}, 'w').write('x')\n" + definition("layers.py", "affine_forward")),
             new_code_cell(f"%%writefile optim.py\nopen({str(marker)!r}, 'w').write('x')\n")]
    prepared = prepare_submission(a1(), write_notebook(tmp_path / "a1.ipynb", cells))
    try:
        assert not marker.exists()
        layers = (prepared.package / "layers.py").read_text()
        assert "def affine_forward" in layers and str(marker) not in layers  # the statement is not a definition
    finally:
        prepared.cleanup()


def test_a_notebook_without_cell_ids_is_read_without_the_format_s_warnings(tmp_path):
    # Jupyter before 2021 wrote no cell ids; nbformat warns of it on reading, to standard error.
    text = nbformat.writes(new_notebook(cells=[new_code_cell("%%writefile layers.py\n" + reference_text("layers.py"))]))
    notebook = json.loads(text)
    for cell in notebook["cells"]:
        cell.pop("id", None)
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(notebook))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare_submission(a1(), path)
    taken = (prepared.package / "layers.py").read_text()
    prepared.cleanup()
    assert taken == reference_text("layers.py")
    assert not [w for w in caught if "nbformat" in type(w.message).__module__], [str(w.message) for w in caught]


def test_a_broken_notebook_is_unusable_with_the_reason(tmp_path):
    broken = tmp_path / "a1.ipynb"
    broken.write_text("{not json")
    with pytest.raises(UnusableSubmission, match="not a readable Jupyter notebook"):
        prepare_submission(a1(), broken)
    empty = write_notebook(tmp_path / "empty.ipynb", [new_markdown_cell("nothing here")])
    with pytest.raises(UnusableSubmission, match="holds none of the files to submit"):
        prepare_submission(a1(), empty)


def test_grade_sh_grades_a_notebook_with_a_python_that_has_no_venv(tmp_path):
    """As in a Colab or Jupyter kernel: torch is there, `venv` is not. grade.sh installs the grader's
    dependencies into that Python (here all present already) and runs the grader from its folder."""
    import os
    import shutil
    import subprocess
    import sys

    from support import PROJECT_ROOT

    checkout = tmp_path / "course"
    shutil.copytree(PROJECT_ROOT / "grader", checkout / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT_ROOT / "assignments" / "a1_fc_numpy", checkout / "assignments" / "a1_fc_numpy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("grade.sh", "pyproject.toml"):
        shutil.copy2(PROJECT_ROOT / name, checkout / name)
    kernel_python = tmp_path / "bin" / "python3"
    kernel_python.parent.mkdir()
    kernel_python.write_text(f'#!/bin/sh\ncase "$*" in *ensurepip*) exit 1 ;; esac\nexec {sys.executable} "$@"\n')
    kernel_python.chmod(0o755)
    notebook = write_notebook(tmp_path / "a1.ipynb", [new_code_cell(definition("layers.py", "relu_forward"))])
    env = {**os.environ, "PYTHON": str(kernel_python)}
    env.pop("CI", None)
    done = subprocess.run(["bash", str(checkout / "grade.sh"), "a1_fc_numpy", "--submission", str(notebook),
                           "--mode", "public", "--only", "relu.forward", "--no-zip"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "as it is (no virtual environment)" in done.stderr
    assert not (checkout / ".venv").exists()
    assert "relu.forward" in done.stdout and "passed" in done.stdout and "Score: 1 / 1" in done.stdout


def test_imports_constants_and_helpers_the_definitions_use_come_from_any_cell(tmp_path):
    # As students write a notebook: imports in the first cell, a helper in a cell of its own, a
    # constant beside the function; run top to bottom, it works, and so it is graded.
    cells = [new_code_cell("import math\nimport numpy as np\nfrom google.colab import drive\ndrive.mount('/content/drive')"),
             new_code_cell("def flatten_rows(x):\n    return x.reshape(x.shape[0], math.prod(x.shape[1:]))\n"),
             new_code_cell("SCALE = 1.0; history = []; print('SMUGGLED')\n\n"
                           "def affine_forward(x, w, b):\n"
                           "    out = SCALE * flatten_rows(x).dot(w) + b\n"
                           "    return out, (x, w, b)\n\n"
                           "out, _ = affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))\nprint(out)\n"),
             new_code_cell("from cs231n.fast_layers import conv_forward_fast\n\n"
                           "def relu_forward(x):\n    return conv_forward_fast(x), x\n")]
    notebook = write_notebook(tmp_path / "a1.ipynb", cells)
    prepared = prepare_submission(a1(), notebook)
    try:
        layers = (prepared.package / "layers.py").read_text()
        for taken in ("import math", "SCALE = 1.0", "def flatten_rows"):
            assert layers.count(taken) == 1, taken
        for left_out in ("google", "drive.mount", "history", "print(out)", "out, _ =", "SMUGGLED"):
            assert left_out not in layers, left_out
        assert any("imports cs231n, which is not installed" in w for w in prepared.warnings), prepared.warnings
        ast.parse(layers)
    finally:
        prepared.cleanup()
    result = grade_checks(a1(), notebook, only="affine.forward")
    assert all(t.outcome is Outcome.PASSED for t in result.tasks), [(t.task_id, t.message) for t in result.tasks]


@pytest.mark.parametrize("magic", ["%%script false --no-raise-error", "%%bash", "%%timeit", "%%python3"])
def test_a_cell_the_notebook_does_not_run_as_its_python_defines_nothing(tmp_path, magic):
    # Jupyter never runs it (or runs it elsewhere): a reader sees the stub fail, and so does the grade.
    cells = [new_code_cell(magic + "\n" + definition("layers.py", "affine_forward"))]
    prepared = prepare_submission(a1(), write_notebook(tmp_path / "a1.ipynb", cells + [
        new_code_cell("%%time\n" + definition("layers.py", "relu_forward"))]))
    try:
        layers = (prepared.package / "layers.py").read_text()
        assert "raise NotImplementedError(\"affine_forward" in layers and "def relu_forward(x):" in layers
        assert f"cell 1 begins with {magic.split()[0]}" in " ".join(prepared.warnings)
        assert 'raise NotImplementedError("relu_forward' not in layers   # %%time runs the cell as Python
    finally:
        prepared.cleanup()


def test_an_import_of_a_module_this_process_holds_without_a_spec_is_left_out_not_a_crash(tmp_path, monkeypatch):
    # A compiled extension's runtime (cython_runtime) sits in sys.modules without a spec, and find_spec
    # raises for it: the grader must not crash on it, nor a batch on one such notebook.
    import sys
    import types

    module = "spec_less_runtime"
    held = types.ModuleType(module)
    held.__spec__ = None
    monkeypatch.setitem(sys.modules, module, held)
    cells = [new_code_cell(f"import {module}"),
             new_code_cell(f"def relu_forward(x):\n    {module}\n    return x * (x > 0), x\n")]
    prepared = prepare_submission(a1(), write_notebook(tmp_path / "a1.ipynb", cells))
    try:
        assert f"import {module}" not in (prepared.package / "layers.py").read_text()
        assert any(f"imports {module}, which is not installed" in w for w in prepared.warnings), prepared.warnings
    finally:
        prepared.cleanup()
