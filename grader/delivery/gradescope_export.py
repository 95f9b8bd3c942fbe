"""`grader export gradescope A --out autograder.zip`: the autograder an instructor uploads to a
Gradescope programming assignment ("zip file upload").

Gradescope extracts the zip to /autograder/source, runs `setup.sh` once as root when it builds the
autograder's image, and `run_autograder` for every submission, with the student's files in
/autograder/submission, the submission's metadata in /autograder/submission_metadata.json, and the
result expected in /autograder/results/results.json. The zip holds:

    setup.sh             installs the system's Python, bubblewrap and libseccomp2 (the sandbox's two
                         levels), a virtual environment (/opt/grader-venv) with the CPU build of torch
                         2.13 and the grader, and prepares the training data
    run_autograder       a thin wrapper around `python -m grader.delivery.gradescope_runner`, with the
                         assignment and the options chosen here written into it; the runner proves
                         the sandbox before it grades, and refuses (score 0, the reason in results.json)
                         where no level keeps the reference and the network out of reach
    pyproject.toml, grader/          the grader itself
    assignments/<A>/, reference/<A>/ the assignment and its reference solution: this zip is for the
                         instructor only, and grades in official mode (hidden checks included)
    data/cifar-10-python.tar.gz      only when given (`data="auto"`)

Options written into run_autograder:

- `device`: `auto` (default) trains each task on the device its assignment.yaml names; Gradescope
  has no GPU, so a `device: cuda` task is then skipped, with its message. `cpu` trains those on the
  CPU instead (set their time limits for it).
- `data`: `synthetic` (default) trains on the grader's seeded CIFAR-like stand-in, generated once
  by setup.sh; every task states a target for it. `auto` uses CIFAR-10: the official archive shipped
  in the zip (`cifar10_archive`), else downloaded by setup.sh when the image is built (Gradescope's
  builds can reach the network), else downloaded when grading; where none of that works, the
  training tasks are skipped with a message saying where to put the archive.
- `gpu_tasks`: with `device` auto, a `device: cuda` task on Gradescope's CPU machines is `skip`ped (a 0
  with the reason and no advice a student there cannot follow) or `leave-out` of the results.
- `memory_mb`: the memory the submission's worker may use. Gradescope's default container has 768 MB
  and 0.5 CPU; the grader itself needs about 300 MB of it, so raise the container's memory in the
  assignment's settings before raising this.
- `time_limit_s`: stop grading a submission after this many seconds and report it (score 0, with a
  message), instead of being stopped by Gradescope's own timeout with no result at all. Set it a
  little under the autograder timeout of the assignment's Gradescope settings.

run_autograder also reads, for testing or self-hosted use: `AUTOGRADER_ROOT` (the folder laid out
as /autograder), `GRADER_PYTHON` (the Python to grade with, instead of the environment setup.sh
creates) and `GRADER_ONLY` (grade only the tasks whose id matches this glob).
"""

from __future__ import annotations

import shlex
import stat
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from grader.assignment import Assignment, ConfigError
from grader.files import atomic_file
from grader.options import DEVICES, EXPORT_DATA_CHOICES as DATA_CHOICES, EXPORT_GPU_TASKS as GPU_TASKS
import grader

VENV = "/opt/grader-venv"
TORCH_REQUIREMENT = "torch==2.13.*"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CIFAR10_NAME = "cifar-10-python.tar.gz"
# Fixed entry times make the zip depend on the files' contents only.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_LEFT_OUT_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}
_LEFT_OUT_FILES = {".DS_Store", "Thumbs.db"}
_LEFT_OUT_SUFFIXES = {".pyc", ".pyo"}

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (this zip is extracted
# to /autograder/source): Python, the sandbox's tools, a virtual environment with the CPU build of
# torch and the grader, and the training data, so that each submission only grades.
set -euo pipefail
SOURCE=/autograder/source
VENV={venv}
# The system's Python, from the package below: the worker that runs student code may run as an
# unprivileged uid (the restricted sandbox level), which cannot reach a Python under /root (pyenv).
PYTHON=/usr/bin/python3
export DEBIAN_FRONTEND=noninteractive
# What this script creates (the environment, the data cache) stays readable by that uid.
umask 022

apt-get update
# bubblewrap: the bwrap sandbox level. libseccomp2: the restricted level's seccomp filter (no network),
# the level used where the container does not allow bubblewrap's namespaces.
apt-get install -y python3 python3-pip python3-venv bubblewrap libseccomp2
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "setup.sh: the grader needs Python 3.10 or newer; choose a newer base image in the" \\
         "assignment's autograder settings" >&2
    exit 1
fi
# {venv} is under /opt, which every user can traverse, and the umask above leaves it readable.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --upgrade pip
"$VENV/bin/python" -m pip install --no-cache-dir {torch} --index-url {torch_index}
# pyseccomp: the binding of libseccomp that the restricted level's worker loads its filter with.
"$VENV/bin/python" -m pip install --no-cache-dir "$SOURCE" pyseccomp
# Proves it: an unprivileged uid (nobody) runs the environment's Python and imports what the worker
# imports. (Through sh, so that the program is looked up with that uid's permissions.)
if ! setpriv --reuid=65534 --regid=65534 --clear-groups \\
        sh -c '"$0" -c "import numpy, torch, pyseccomp"' "$VENV/bin/python"; then
    echo "setup.sh: an unprivileged user cannot run $VENV/bin/python with numpy, torch and pyseccomp;" \\
         "the restricted sandbox level needs that" >&2
    exit 1
fi
# The reference solution and the hidden checks are read by the grader (root) only: where Landlock is
# missing, file permissions alone still keep them from the worker's unprivileged uid.
chmod -R go-rwx "$SOURCE/reference"

# The training data, once: the synthetic stand-in is generated, CIFAR-10 verified (and downloaded
# when it was not shipped in the zip). Grading goes on without it: training tasks then say why.
cd "$SOURCE"
AUTOGRADER_ROOT=/autograder GRADER_ROOT="$SOURCE" PYTHONPATH="$SOURCE" \\
    "$VENV/bin/python" -m grader.delivery.gradescope_runner {arguments} --prepare-data
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. It proves the sandbox, grades /autograder/submission in
# official mode at the strongest level proven, and always leaves /autograder/results/results.json,
# even when grading is refused (no level holds here) or fails.
# For testing or self-hosted use:
#   AUTOGRADER_ROOT  the folder laid out as Gradescope's /autograder (default /autograder)
#   GRADER_PYTHON    the Python to grade with (default: the environment setup.sh created)
#   GRADER_ONLY      grade only the tasks whose id matches this glob
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{GRADER_PYTHON:-{venv}/bin/python}}"
mkdir -p "$ROOT/results"
ROOT="$(cd "$ROOT" && pwd)"
SOURCE="$ROOT/source"
RESULTS="$ROOT/results/results.json"
rm -f "$RESULTS"

(cd "$SOURCE" && AUTOGRADER_ROOT="$ROOT" GRADER_ROOT="$SOURCE" PYTHONPATH="$SOURCE" \\
    exec "$PYTHON" -m grader.delivery.gradescope_runner {arguments})
status=$?

if [ ! -s "$RESULTS" ]; then
    echo "run_autograder: the grader exited with status $status without writing $RESULTS"
    cat > "$RESULTS" <<'JSON'
{{
  "score": 0.0,
  "execution_time": 0,
  "output": "The autograder failed before it could grade this submission. Please tell the course staff; this is a problem of the autograder, not of your work.",
  "visibility": "visible",
  "stdout_visibility": "hidden",
  "tests": [],
  "extra_data": {{"graded": false, "sandbox": null,
                 "autograder_error": "run_autograder: no results from the grader"}}
}}
JSON
fi
exit 0
"""


def build_autograder(assignment: Assignment, destination: Path, *, device: str = "auto",
                     data: str = "synthetic", time_limit_s: Optional[float] = None,
                     cifar10_archive: Optional[Path] = None, memory_mb: Optional[int] = None,
                     gpu_tasks: str = "skip") -> Path:
    """Writes the Gradescope autograder zip of `assignment` to `destination` and returns its path.
    Raises ConfigError for options it cannot honour or when the reference solution is missing."""
    if assignment.reference_directory is None:
        raise ConfigError(f"the Gradescope autograder grades in official mode and needs the reference "
                          f"solution in reference/{assignment.id}, which is not here")
    if device not in DEVICES:
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if data not in DATA_CHOICES:
        raise ConfigError(f"data: expected one of {', '.join(DATA_CHOICES)}, got {data!r}")
    if memory_mb is not None and not memory_mb > 0:
        raise ConfigError(f"memory_mb: expected a positive number of megabytes, got {memory_mb!r}")
    if gpu_tasks not in GPU_TASKS:
        raise ConfigError(f"gpu_tasks: expected one of {', '.join(GPU_TASKS)}, got {gpu_tasks!r}")
    if time_limit_s is not None and not time_limit_s > 0:
        raise ConfigError(f"time_limit_s: expected a positive number of seconds, got {time_limit_s!r}")
    if cifar10_archive is not None:
        if data != "auto":
            raise ConfigError("cifar10_archive: CIFAR-10 is used with data='auto' only")
        _check_cifar10_archive(Path(cifar10_archive))

    package = Path(grader.__file__).resolve().parent
    pyproject = _find_pyproject(package, assignment)
    arguments = _runner_arguments(assignment.id, device, data, time_limit_s, memory_mb, gpu_tasks)
    files: list[tuple[str, Path | str, bool]] = [   # (name in the zip, file or text, executable)
        ("setup.sh", SETUP_SH.format(venv=VENV, torch=shlex.quote(TORCH_REQUIREMENT),
                                     torch_index=TORCH_CPU_INDEX, arguments=arguments), True),
        ("run_autograder", RUN_AUTOGRADER.format(venv=VENV, arguments=arguments), True),
        ("pyproject.toml", pyproject, False),
    ]
    files += [(f"grader/{name}", path, False) for name, path in _tree(package)]
    files += [(f"assignments/{assignment.id}/{name}", path, False) for name, path in _tree(assignment.directory)]
    files += [(f"reference/{assignment.id}/{name}", path, False)
              for name, path in _tree(assignment.reference_directory)]
    if cifar10_archive is not None:
        files.append((f"data/{CIFAR10_NAME}", Path(cifar10_archive), False))

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(destination) as file, zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content, executable in files:
            _add(archive, name, content, executable)
    return destination


def _runner_arguments(assignment_id: str, device: str, data: str, time_limit_s: Optional[float],
                      memory_mb: Optional[int] = None, gpu_tasks: str = "skip") -> str:
    arguments = ["--assignment", assignment_id, "--device", device, "--data", data, "--gpu-tasks", gpu_tasks]
    if time_limit_s is not None:
        arguments += ["--time-limit", f"{time_limit_s:g}"]
    if memory_mb is not None:
        arguments += ["--memory", str(memory_mb)]
    return " ".join(shlex.quote(a) for a in arguments)


def _find_pyproject(package: Path, assignment: Assignment) -> Path:
    """The grader's pyproject.toml: beside the package (a checkout), else at the project's root."""
    for candidate in (package.parent / "pyproject.toml", assignment.directory.parent.parent / "pyproject.toml"):
        if candidate.is_file() and 'name = "grader"' in candidate.read_text(encoding="utf-8"):
            return candidate
    raise ConfigError(f"the grader's pyproject.toml is neither in {package.parent} nor in "
                      f"{assignment.directory.parent.parent}: export from a checkout of the grader")


def _tree(directory: Path) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of the regular files under `directory`, caches and links left out."""
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part in _LEFT_OUT_DIRS for part in relative.parts) or path.is_symlink() or not path.is_file():
            continue
        if path.name in _LEFT_OUT_FILES or path.suffix in _LEFT_OUT_SUFFIXES:
            continue
        yield relative.as_posix(), path


def _add(archive: zipfile.ZipFile, name: str, content: Path | str, executable: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.create_system = 3   # Unix, so that unzip applies the permission bits below
    mode = 0o755 if executable else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    if isinstance(content, Path):
        with content.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    else:
        archive.writestr(info, content.encode("utf-8"))


def _check_cifar10_archive(path: Path) -> None:
    from grader.data import CIFAR10_MD5
    from grader.data.cifar10 import file_md5

    if not path.is_file():
        raise ConfigError(f"cifar10_archive: {path} is not a file")
    if file_md5(path) != CIFAR10_MD5:
        raise ConfigError(f"cifar10_archive: {path} is not the official {CIFAR10_NAME} (md5 {CIFAR10_MD5})")
