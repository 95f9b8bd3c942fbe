"""Texts of the student bundle (`grader release`): the README's parts, the CI files and the
.gitignore. `string.Template` placeholders (`$name`) are filled in by `grader.delivery.release`; a literal
dollar sign is written `$$`."""

from __future__ import annotations

# The JUnit XML that `./grade.sh --ci` writes in the folder it runs in; the CI files publish it.
JUNIT_FILE = "grader-junit.xml"

README = """\
# $title

Assignment `$assignment`. This repository holds the assignment and the grader that scores it: run
`./grade.sh` whenever you like to see your score, task by task, on your own machine.

## What you implement

Your code goes in these files of `assignments/$assignment/`:

$student_files

Every function or method you write has a docstring that states what it takes and what it returns,
with shapes. Write your code between `# BEGIN YOUR CODE` and `# END YOUR CODE`, in place of the
`raise NotImplementedError(...)` there. The lines outside those fences belong to the instructor:
leave them as they are.

Each stub names the tasks that grade it, by the task ids listed below: its docstring ends with
`Graded by task: <id>` (`Graded by tasks: <id>, <id>` where several do), and the
`NotImplementedError` it raises until you write it says the same, so a task reported as
`not_implemented` leads you to the stub to write.
$provided_files
### Tasks

$tasks_table

A task earns its points only when every one of its checks passes. A backward pass is checked
against numeric gradients of *your own* forward pass, so it can only pass once the forward pass
runs.
$training_section
## Running the grader

You need Python 3.10 or newer with `venv` (on Debian or Ubuntu: `sudo apt install python3-venv`;
on Windows, use WSL). From the top of this repository:

```bash
$commands
```

The first run creates a virtual environment in `.venv` and installs the grader into it, with
PyTorch unless your Python can already import it: this takes a few minutes, once.

Other options: `--no-zip` (do not write the zip), `--json results.json` and `--junit report.xml`
(the result as Gradescope JSON or JUnit XML), `--data-dir DIR` (where CIFAR-10 is),
`--device auto|cpu|cuda`, `--quiet` (the table only). `.venv/bin/grader grade --help` lists them all.

### Reading the result

The grader prints a table with one row per task: its points, its outcome and a one-line reason,
then the details of each failure and your score.

| outcome | meaning | what to do |
|---|---|---|
| `passed` | every check of the task passed | nothing |
| `not_implemented` | your code raised `NotImplementedError` (the stub is untouched) | write it |
| `failed` | a result differs from what it should be; the reason names the output, the worst element, its value and the expected one, the error and the tolerance | fix the computation |
| `error` | your code raised an exception (your traceback follows the table) or crashed | fix the crash |
| `timeout` | your code did not answer in time (an endless loop, or far too slow) | look for the loop |
| `skipped` | the task could not run here (for example no CIFAR-10, or no GPU) | see the reason |

When a failure looks like a common mistake, a `hint:` line under it says which one.

Your code runs in a separate process, never inside the grader, and everything that decides a score
(comparisons, gradient errors, training time, accuracy) is computed by the grader itself.
$data_section
## Handing in

Each run of `./grade.sh` (unless you pass `--no-zip`) writes, next to `grade.sh`, the zip
`$zip_name`. It holds exactly your files, a `MANIFEST.json` with their checksums
and the versions you graded with, and your local results, for information only. Hand in that zip
the way your course asks.

If your course gives you this as a GitHub or GitLab repository, every push also runs the grader
there (`.github/workflows/grade.yml`, `.gitlab-ci.yml`): the run shows your score, and its JUnit
report (`$junit_file`) is kept with the run.

## What official grading adds

Your score here is a preview; the official grading runs the same grader on your files, and adds:

- **fresh random inputs**: here every check uses fixed seeds and compares with recorded answers of
  the instructor's solution (`checks/`, `fixtures/`); the official grading draws new inputs on every
  run and asks the solution itself, so code that only fits the public inputs earns nothing;
- **hidden checks**: more checks for the same tasks, not in this repository, that cover the whole
  contract each docstring states (other shapes, padding and strides, a batch of one, inputs your
  code must not modify, ...);
$official_training- **only your files** are taken from your submission: every other file (provided files, checks,
  the grader) is the instructor's copy, so changes you make to them do not count.

Passing every public check is a good sign, not a guarantee: test what each docstring promises, not
only the examples.
"""

OFFICIAL_TRAINING = """\
- **training on the grading machine**: your network is trained there$where, on CIFAR-10, timed by
  the grader's clock and scored by the grader;
"""

PROVIDED_FILES = """
The other files are provided for you to use, and are not part of your submission:
$provided_files.
"""

TRAINING_SECTION = """
### Training targets

These tasks train a network built from your code and score it by its accuracy. The time limit
counts the whole training, measured by the grader's clock. Points grow linearly from the
"partial credit from" accuracy up to the target.

$training_table
"""

DATA_SECTION = """
## Data for the training tasks

Training tasks use CIFAR-10. The grader looks for its official archive `cifar-10-python.tar.gz`
in `--data-dir`, then in `$$CIFAR10_DIR`, then in your user cache directory; when it is missing and a
network is there, it downloads it (about 170 MB, once), checks it and converts it to a cache that
loads in a fraction of a second. Without it the training tasks are skipped, with a message that
says where to put the archive.

`--data synthetic` trains on a small generated stand-in for CIFAR-10 instead (ten classes of
simple 32x32 patterns), with its own targets (in the table above): quick to get, good for checking
that your training works at all. The official grade uses the CIFAR-10 targets.
$gpu_note"""

GPU_NOTE = """
Tasks that train on a GPU are skipped on a machine without CUDA unless you pass `--device cpu`;
their time limit stays the same, so on a CPU they may fall short of the target even when your code
is right.
"""

GITIGNORE = """\
# Set up by ./grade.sh on its first run
.venv/
__pycache__/
*.pyc
*.egg-info/
.pytest_cache/
# Written by ./grade.sh: the submission zip and reports
*_submission.zip
grader-junit.xml
results.json
report.xml
# Caches of continuous integration (pip, datasets)
.cache/
"""

GITHUB_WORKFLOW = """\
# Grades every push and pull request with the public checks (the same as ./grade.sh here).
name: grade

on:
  push:
  pull_request:

jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
          cache-dependency-path: pyproject.toml
      # The CPU build of PyTorch is much smaller than the default one; ./grade.sh uses a torch
      # that Python can already import.
      - name: Install PyTorch (CPU)
        run: python3 -m pip install "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu
      # CIFAR-10 and the synthetic stand-in, kept between runs.
      - uses: actions/cache@v4
        with:
          path: ~/.cache/grader
          key: grader-data-v1
      # The grading step: a GitHub Classroom reporter can read its `result` output, e.g.
      #   - uses: classroom-resources/autograding-grading-reporter@v1
      #     env:
      #       GRADE_RESULTS: "$${{ steps.grade.outputs.result }}"
      #     with:
      #       runners: grade
      - name: Grade
        id: grade
        run: ./grade.sh --ci
      - name: Keep the JUnit report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: grader-junit
          path: $junit_file
          if-no-files-found: warn
"""

GITLAB_CI = """\
# Grades every push with the public checks (the same as ./grade.sh here).
grade:
  image: python:3.11
  variables:
    # pip's cache and the datasets (CIFAR-10, the synthetic stand-in) in the project, to be cached
    XDG_CACHE_HOME: "$$CI_PROJECT_DIR/.cache"
  cache:
    key: grader-v1
    paths:
      - .cache/
  before_script:
    # The CPU build of PyTorch is much smaller than the default one; ./grade.sh uses a torch that
    # Python can already import.
    - python3 -m pip install "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu
  script:
    - ./grade.sh --ci
  artifacts:
    when: always
    paths:
      - $junit_file
    reports:
      junit: $junit_file
"""
