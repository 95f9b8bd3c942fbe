"""Isolation levels of the worker (DESIGN §9), weakest first.

- `none`: a separate process without limits, for debugging a submission; never for grading that
  counts.
- `process`: a separate process in a scratch directory with a scrubbed environment, rlimits,
  `no_new_privs`, a memory and process-count watch over everything it starts, an output cap and a
  hard kill of all of it. The default on a student's machine. It keeps no file or network away.
- `restricted`: for machines where namespaces are not allowed (Docker and Gradescope containers,
  GitHub's ubuntu-24.04 runners, many cluster nodes). No namespaces: the worker runs as an
  unprivileged uid of its own when the grader is root, Landlock (where the kernel has it) leaves it
  nothing but the system, the Python installation and its own code to read and its scratch
  directory to write, and a seccomp filter denies network sockets and the system calls escapes
  start with.
- `bwrap`: bubblewrap's namespaces: a user namespace with no capability (and no further user
  namespace), no network, its own PID and IPC namespaces, and a file system holding only the system
  directories (read-only, private files masked), the Python installation (read-only), the worker's
  own code (read-only), size-limited /tmp and /dev/shm, and the scratch directory, the only writable
  place. NVIDIA device nodes and driver files are passed through when the machine has a GPU.

Every level at or above `process` runs the worker from a copy of only the code it needs (the worker
loop and the wire format, `worker_code_directory`), never the rest of `grader`.
"""

from __future__ import annotations

import atexit
import functools
import glob
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

LEVELS: tuple[str, ...] = ("none", "process", "restricted", "bwrap")   # weakest first
CONFINED_LEVELS: tuple[str, ...] = ("bwrap", "restricted")               # strongest first

# Read-only system directories every program needs; those that are symlinks (/bin -> usr/bin on
# merged-/usr systems) are recreated as symlinks.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# What a CUDA program opens besides /usr (which holds the driver's libraries, the toolkit and the
# container runtimes' /usr/local/nvidia, already visible): device information and the daemon's socket.
_GPU_PATHS = ("/sys", "/proc/driver/nvidia", "/run/nvidia-persistenced")

# The grader's folders the worker imports: the untrusted side and what both sides share. No other
# grader code is visible to the worker (grader/__init__.py, which imports nothing, makes the package).
WORKER_PACKAGES = ("boundary", "worker")


class SandboxUnavailable(RuntimeError):
    """The requested isolation level cannot be provided on this machine."""


@dataclass(frozen=True)
class WorkerJail:
    """How to start the worker at one level: the command, the uid and gid to start it as (None:
    the grader's), and what the worker applies to itself before any student code runs."""

    argv: list[str]
    user: Optional[int] = None
    group: Optional[int] = None
    confine: dict = field(default_factory=dict)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# -- the worker's code --------------------------------------------------------------------------------

def grader_directory() -> Path:
    return Path(__file__).resolve().parents[1]


def worker_code_files() -> list[str]:
    """The files of the worker's code, relative to the grader package."""
    grader = grader_directory()
    return ["__init__.py"] + sorted(f"{package}/{path.name}" for package in WORKER_PACKAGES
                                    for path in (grader / package).glob("*.py"))


@functools.lru_cache(maxsize=1)
def worker_code_directory() -> Path:
    """A directory holding a `grader` package with only the worker's code, readable by every user and
    writable by none but the grader's. Named by its contents, so grading processes share it; one
    that is not exactly as it should be (changed by someone, or owned by another user) is not used."""
    files = {name: (grader_directory() / name).read_bytes() for name in worker_code_files()}
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in sorted(files.items())))
    base = Path(tempfile.gettempdir()) / f"grader-worker-code-{os.geteuid()}-{digest.hexdigest()[:16]}"
    if _holds_exactly(base, files):
        return base
    directory = Path(tempfile.mkdtemp(prefix=base.name + "-", dir=base.parent))
    for name, data in files.items():
        path = directory / "grader" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    for folder in (directory, directory / "grader", *(directory / "grader" / p for p in WORKER_PACKAGES)):
        folder.chmod(0o755)
    try:
        os.rename(directory, base)   # the first grading process to finish names it; others use theirs
        return base
    except OSError:
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        return directory


def _holds_exactly(directory: Path, files: dict[str, bytes]) -> bool:
    try:
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return False
        present = {str(p.relative_to(directory / "grader")) for p in (directory / "grader").rglob("*") if p.is_file()}
        return present == set(files) and all(
            (directory / "grader" / name).read_bytes() == data and not (directory / "grader" / name).stat().st_mode & 0o022
            for name, data in files.items())
    except OSError:
        return False


def worker_python() -> str:
    """The interpreter the worker runs: the grader's, named through its real directory (a sandbox
    binds real paths only, so a link or `..` on the way to a virtual environment would not be there)
    but by its own name in it (a virtual environment's `python` is a link that must stay one, or the
    environment is lost)."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def _python_paths() -> list[str]:
    """The interpreter's installation: a virtual environment and its base. The worker runs `python -I`,
    so its imports come from there (and /usr) only; nothing else of the project's tree, nor the
    directory a script was started from, is made visible."""
    prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    prefixes.add(str(Path(sys.executable).resolve().parent.parent))
    kept: list[str] = []
    for path in sorted(prefixes, key=len):
        if path in ("/", "/tmp") or any(_inside(path, k) for k in kept) or any(_inside(path, d) for d in ("/usr", "/etc")):
            continue
        kept.append(path)
    return kept


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


# -- restricted ---------------------------------------------------------------------------------------

def _unreachable_by_others(path: str) -> Optional[str]:
    """The first directory on the way to `path` that a user other than its owner cannot pass, if any."""
    current = Path("/")
    for part in Path(path).resolve().parts[1:]:
        try:
            mode = current.stat().st_mode
        except OSError:
            return str(current)
        if not mode & stat.S_IXOTH:
            return str(current)
        current = current / part
    return None


@functools.lru_cache(maxsize=1)
def restricted_problem() -> Optional[str]:
    """None when the restricted level can start a worker here, else why not (and the fix)."""
    if not sys.platform.startswith("linux"):
        return "the restricted level needs Linux (Landlock and seccomp)"
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError) as exc:
        return (f"seccomp is not available ({exc}); install the Debian/Ubuntu package libseccomp2 and the "
                "Python package pyseccomp")
    if running_as_root():
        for path in _python_paths() + [str(Path(sys.executable).resolve())]:
            blocked = _unreachable_by_others(path)
            if blocked is not None:
                return (f"the worker's unprivileged uid cannot reach the Python installation {path}: {blocked} "
                        "lets only its owner in. Install Python where every user can read it (/usr, /opt), or "
                        f"give others search permission there (chmod o+x {blocked})")
    return None


def landlock_abi() -> int:
    from grader.worker.confine import landlock_abi as abi

    return abi()


@functools.lru_cache(maxsize=4)
def package_directories(modules: tuple[str, ...]) -> list[str]:
    """Where the installed packages (or single-file modules) named are, as real paths; nothing for
    those not installed. Nothing of them is imported. Searched once per process: each worker start
    asks again (callers must not change the list)."""
    import importlib.util

    found = []
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        locations = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
        found += [os.path.realpath(path) for path in locations if os.path.exists(path)]
    return sorted(set(found))


def readable_except(roots: list[str], hidden: list[str]) -> tuple[list[str], list[str]]:
    """Landlock rules that make `roots` readable but for the `hidden` paths below them: (paths
    readable with all beneath, folders only listable). A Landlock rule grants a whole tree, so each
    folder on the way down to a hidden path is listable only, and its other entries readable."""
    readable: list[str] = []
    listable: list[str] = []

    def expand(directory: str, below: list[str]) -> None:
        listable.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            if path in below:
                continue
            real = os.path.realpath(path)
            if os.path.islink(path) and any(_inside(h, real) or _inside(real, h) for h in hidden):
                continue   # a link above or into a hidden path (a virtual environment's lib64 -> lib) grants it
            deeper = [h for h in below if _inside(h, path) and h != path]
            if deeper and os.path.isdir(path) and not os.path.islink(path):
                expand(path, deeper)
            else:
                readable.append(path)

    for root in (os.path.realpath(root) for root in roots):   # /lib may be a link to /usr/lib
        below = [h for h in hidden if _inside(h, root) and h != root]
        if below:
            expand(root, below)
        else:
            readable.append(root)
    return readable, listable


def restricted_jail(argv: list[str], scratch_dir: Path, worker_uid: Optional[int],
                    hidden: list[str] = ()) -> WorkerJail:
    """`hidden`: paths below the readable ones that the worker may not read (package_directories)."""
    readable = [d for d in _SYSTEM_DIRS if os.path.exists(d)] + ["/opt", "/proc", "/sys"]
    readable += _python_paths() + [str(worker_code_directory())]
    readable, listable = readable_except(readable, list(hidden))
    landlock = {"readable": readable, "writable": [str(Path(scratch_dir).resolve())], "devices": ["/dev"],
                "listable": listable}
    confine = {"no_new_privs": True, "seccomp": True, "landlock": landlock if landlock_abi() > 0 else None}
    return WorkerJail(argv, user=worker_uid, group=worker_uid, confine=confine)


# -- bwrap --------------------------------------------------------------------------------------------

def bwrap_executable() -> Optional[str]:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> Optional[str]:
    """None when bubblewrap can start a sandboxed program here, else why not (and the fix)."""
    executable = bwrap_executable()
    if executable is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        completed = subprocess.run([executable, *_namespace_args(), *_system_mounts(64 * 2**20), "--", "/bin/true"],
                                   capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if completed.returncode != 0:
        return (f"bubblewrap could not create its namespaces here: {completed.stderr.strip()[:300]}. Where "
                "unprivileged user namespaces are blocked (Ubuntu 24.04's AppArmor), allow them with `sudo sysctl "
                "-w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap; in a "
                "container, run it with --security-opt seccomp=unconfined or grade at the restricted level")
    return None


def _namespace_args() -> list[str]:
    # A user namespace always (bubblewrap run by root would otherwise keep every capability for the
    # worker), no capability in it, and no user namespace inside it from which to regain one.
    args = ["--die-with-parent", "--new-session", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox"]
    if running_as_root():
        args += ["--uid", "65534", "--gid", "65534"]
    return args


def _system_mounts(tmpfs_bytes: int) -> list[str]:
    args: list[str] = []
    for directory in _SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", directory, directory]
    args += _private_etc_masks()
    size = str(max(tmpfs_bytes, 1 << 20))
    return args + ["--dev", "/dev", "--proc", "/proc", "--size", size, "--tmpfs", "/tmp",
                   "--size", size, "--tmpfs", "/dev/shm"]


@functools.lru_cache(maxsize=1)
def _private_etc_masks() -> tuple[str, ...]:
    """Files and directories of /etc that other users may not read (/etc/shadow, private keys) are
    hidden: the worker's user is unprivileged inside its namespace, but when the grader is root it is
    root's own user outside, whom the kernel lets read root's files."""
    masks: list[str] = []
    for root, directories, files in os.walk("/etc"):
        for name in list(directories):
            if _private(os.path.join(root, name), stat.S_ISDIR):
                masks += ["--tmpfs", os.path.join(root, name)]
                directories.remove(name)
        masks += [arg for name in files if _private(os.path.join(root, name), stat.S_ISREG)
                  for arg in ("--ro-bind", "/dev/null", os.path.join(root, name))]
    return tuple(masks)


def _private(path: str, is_kind) -> bool:
    """`path` is of the kind and other users may not read it."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return is_kind(info.st_mode) and not info.st_mode & stat.S_IROTH


def bwrap_jail(argv: list[str], scratch_dir: Path, tmpfs_bytes: int, hidden: list[str] = ()) -> WorkerJail:
    """`argv` run inside a bubblewrap sandbox whose only writable directory is `scratch_dir`; the
    machine's NVIDIA devices and driver files, where there are any, are passed through. `hidden`:
    folders (package_directories) replaced by empty ones."""
    executable = bwrap_executable()
    if executable is None:
        raise SandboxUnavailable("bubblewrap is not installed")
    args = [executable, *_namespace_args(), *_system_mounts(tmpfs_bytes)]
    for path in _python_paths():
        args += ["--ro-bind", path, path]
    for path in hidden:
        args += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    code = str(worker_code_directory())
    args += ["--ro-bind", code, code]
    if glob.glob("/dev/nvidia*"):
        for node in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):
            args += ["--dev-bind", node, node]
        for path in _GPU_PATHS:
            args += ["--ro-bind-try", path, path]
    scratch = str(Path(scratch_dir).resolve())
    args += ["--bind", scratch, scratch, "--chdir", scratch, "--"]
    seccomp = _seccomp_available()
    return WorkerJail(args + argv, confine={"no_new_privs": True, "seccomp": seccomp})


def _seccomp_available() -> bool:
    try:
        import pyseccomp  # noqa: F401
        return True
    except (ImportError, OSError):
        return False


# -- choosing ---------------------------------------------------------------------------------------------

def level_problem(level: str) -> Optional[str]:
    """Why `level` cannot start a worker on this machine, or None."""
    if level == "bwrap":
        return bwrap_problem()
    if level == "restricted":
        return restricted_problem()
    if level in LEVELS:
        return None
    raise ValueError(f"unknown sandbox level {level!r}; choose one of {', '.join(LEVELS)}")


def forget_machine() -> None:
    """Forgets what was found out about this machine (tests change PATH or the kernel's answers)."""
    for finding in (bwrap_problem, restricted_problem):
        getattr(finding, "cache_clear", lambda: None)()
