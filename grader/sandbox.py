"""Isolation levels of the worker (DESIGN §9).

- `process`: a separate process in a scratch directory with a scrubbed environment, rlimits, a
  resident-memory and process-count watch over everything it starts, an output cap and a hard kill
  of all of it. The default on a student's machine.
- `bwrap`: the same inside bubblewrap's namespaces: no network, its own PID and IPC namespaces, and
  a file system holding only the system directories (read-only), the Python installation
  (read-only), the grader's worker code (read-only) and the scratch directory (the only writable
  place). The project's `reference/`, checks, fixtures, the datasets and other submissions are not
  there at all. NVIDIA device nodes and driver files are passed through when a GPU is used. The
  default for official grading where bubblewrap works.
- `none`: a separate process without limits, for debugging a submission; never for grading that
  counts.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

Level = Literal["none", "process", "bwrap"]
LEVELS: tuple[str, ...] = ("none", "process", "bwrap")

# Read-only system directories every program needs; those that are symlinks (/bin -> usr/bin on
# merged-/usr systems) are recreated as symlinks.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# What a CUDA program opens besides /usr (which holds the driver's libraries, the toolkit and the
# container runtimes' /usr/local/nvidia, already visible): device information and the daemon's socket.
_GPU_PATHS = ("/sys", "/proc/driver/nvidia", "/run/nvidia-persistenced")


class SandboxUnavailable(RuntimeError):
    """The requested isolation level cannot be provided on this machine."""


def bwrap_executable() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap can start a sandboxed program here, else why not."""
    executable = bwrap_executable()
    if executable is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        completed = subprocess.run([executable, *_namespace_args(), *_system_mounts(), "--", "/bin/true"],
                                   capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if completed.returncode != 0:
        return f"bubblewrap could not create its namespaces here: {completed.stderr.strip()[:300]}"
    return None


def resolve_level(requested: str, mode: str) -> str:
    """`auto` -> bwrap for official grading where it works, else process. An explicit `bwrap` that
    cannot work raises SandboxUnavailable naming why."""
    if requested == "auto":
        return "bwrap" if mode == "official" and bwrap_problem() is None else "process"
    if requested not in LEVELS:
        raise ValueError(f"unknown sandbox level {requested!r}; choose one of {', '.join(LEVELS)}")
    if requested == "bwrap" and (problem := bwrap_problem()) is not None:
        raise SandboxUnavailable(problem)
    return requested


def _namespace_args() -> list[str]:
    return ["--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox"]


def _system_mounts() -> list[str]:
    args: list[str] = []
    for directory in _SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", directory, directory]
    return args + ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _python_paths() -> list[str]:
    """The interpreter's installation: a virtual environment and its base. The worker runs `python -I`,
    so its imports come from there (and /usr) only; nothing else of the project's tree, nor the
    directory a script was started from, is made visible (the grader package is bound on its own)."""
    prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    prefixes.add(str(Path(sys.executable).resolve().parent.parent))
    kept: list[str] = []
    for path in sorted(prefixes, key=len):
        if path in ("/", "/tmp") or any(_inside(path, k) for k in kept) or any(_inside(path, d) for d in ("/usr", "/etc")):
            continue
        kept.append(path)
    return kept


def bwrap_command(argv: list[str], scratch_dir: Path) -> list[str]:
    """`argv` run inside a bubblewrap sandbox whose only writable directory is `scratch_dir`; the
    machine's NVIDIA devices and driver files, where there are any, are passed through."""
    executable = bwrap_executable()
    if executable is None:
        raise SandboxUnavailable("bubblewrap is not installed")
    args = [executable, *_namespace_args(), *_system_mounts()]
    for path in _python_paths():
        args += ["--ro-bind", path, path]
    grader_dir = str(Path(__file__).resolve().parent)
    args += ["--ro-bind", grader_dir, grader_dir]
    if glob.glob("/dev/nvidia*"):
        for node in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):
            args += ["--dev-bind", node, node]
        for path in _GPU_PATHS:
            args += ["--ro-bind-try", path, path]
    scratch = str(Path(scratch_dir).resolve())
    args += ["--bind", scratch, scratch, "--chdir", scratch, "--"]
    return args + argv
