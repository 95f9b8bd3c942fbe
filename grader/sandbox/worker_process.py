"""Starting, talking to and killing the worker process that runs a submission.

The grader's clock bounds every request; a worker that does not answer in time, dies, or grows
past its memory limit is killed with its whole process group, and the next request starts a
fresh one. The worker's own output is drained by a thread and capped, so a flood can neither
block the worker nor fill the grader's memory.
"""

from __future__ import annotations

import ctypes  # noqa: F401 - imported here, not first in the child: see _apply_rlimits
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from grader import untrusted_text

from grader.boundary import protocol, wire
from grader.sandbox.errors import SandboxBroken, WorkerCrashed, WorkerLost, WorkerTimeout
from grader.sandbox.levels import (WorkerJail, bwrap_jail, grader_directory, package_directories, restricted_jail,
                                   running_as_root, worker_code_directory, worker_python)
from grader.sandbox.worker_memory import worker_memory_bytes
from grader.sandbox.worker_uid import WorkerUidLease, lease_worker_uid
from grader.worker.loop import CONFINEMENT_FAILED_EXIT  # the worker's status when it could not confine itself

# The largest answer the grader reads: far more than any check's (layers on small inputs, a small
# network's parameters, a test set's predictions), and small enough that what the grader makes of
# an answer (a copy as float64 to compare it, its sketch) stays within its own memory.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import grader.worker.loop as loop; "
    "del sys.path[0]; loop.main()"
)


# Signals that end a process from outside; a crash of the code itself (SIGSEGV, SIGABRT, SIGBUS,
# SIGFPE) is the student's. The code can end its own worker so too (from another thread, another
# process group, or as an exit status that reads alike under bubblewrap), so a worker ended by one is
# the machine's loss only where the kernel's out-of-memory killer killed something meanwhile.
_OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})


def oom_kills() -> Optional[int]:
    """How many processes the kernel's out-of-memory killer has ended on this machine (`oom_kill` of
    /proc/vmstat, a memory cgroup's kills included); None where the kernel does not say."""
    try:
        with open("/proc/vmstat") as vmstat:
            for line in vmstat:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Limits:
    call_timeout_s: float = 30.0
    memory_bytes: int = 4 * 1024**3      # resident memory of the worker and everything it started
    output_bytes: int = 64 * 1024
    cpu_seconds: int = 3600
    file_size_bytes: int = 256 * 1024 * 1024
    open_files: int = 1024
    processes: int = 64                  # the worker and everything it started, at once
    sandbox: str = "process"             # none | process | restricted | bwrap (grader.sandbox.levels)
    # Installed packages the submission may not use (a NumPy assignment's deep-learning frameworks):
    # its imports of them fail, and the restricted and bwrap levels leave their files unreadable.
    hidden_modules: tuple[str, ...] = ()


@dataclass
class OutputLog:
    """The first and last part of what the worker printed; the middle is dropped and counted."""

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    # Sees each complete line as it arrives (a training's progress), if set; what it raises is ignored.
    on_line: Optional[Callable[[str], None]] = None
    _partial: bytearray = field(default_factory=bytearray)

    def add(self, data: bytes) -> None:
        if self.on_line is not None:
            self._tell_lines(data)
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        excess = len(self.tail) - self.limit // 2
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def _tell_lines(self, data: bytes) -> None:
        self._partial += data
        *lines, rest = self._partial.split(b"\n")
        self._partial = bytearray(rest[-4096:])  # a line without end is not kept whole
        for line in lines:
            try:
                self.on_line(untrusted_text.decode(bytes(line[:4096])))
            except Exception:  # noqa: BLE001 - progress display must never stop the drain
                pass

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes of output dropped ...]\n" if self.dropped else ""
        return untrusted_text.decode(bytes(self.head)) + middle + untrusted_text.decode(bytes(self.tail))


class WorkerProcess:
    """One live worker: a process, its channel, its output log and its memory watch."""

    def __init__(self, submission_dir: Path, scratch_dir: Path, limits: Limits, env: dict[str, str],
                 preload: tuple[str, ...] = ()):
        self.limits = limits
        self.output = OutputLog(limits.output_bytes)
        self.killed_reason: str | None = None
        self.answered = False
        self._oom_kills_at_start = oom_kills()
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        self._uid_lease: WorkerUidLease | None = None
        if limits.sandbox == "restricted" and running_as_root():
            self._uid_lease = lease_worker_uid()
            self._uid_lease.give(scratch_dir)
        jail = self._jail(submission_dir, scratch_dir, request_read, response_write, preload)
        self._private_root = limits.sandbox == "bwrap"
        self._private_root_pid: int | None = None
        _become_subreaper()
        reap_adopted_orphans()
        with _workers_lock:  # a worker is never taken for an orphan between its start and its registration
            try:
                self.process = subprocess.Popen(
                    jail.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    cwd=scratch_dir, env=env, pass_fds=(request_read, response_write),
                    start_new_session=True, preexec_fn=None if limits.sandbox == "none" else self._apply_rlimits,
                    user=jail.user, group=jail.group, extra_groups=[] if jail.user is not None else None,
                )
            except PermissionError as exc:
                for descriptor in (request_read, response_write, self._request_write, self._response_read):
                    os.close(descriptor)
                if self._uid_lease is None:
                    raise
                self._uid_lease.release()
                raise SandboxBroken(
                    f"the {limits.sandbox} level runs the worker as an unprivileged user (uid {self._uid_lease.uid}), "
                    f"which may not run {exc.filename or jail.argv[0]} ({exc.strerror}): grade with a Python "
                    "installed where every user may read it (PYTHON=/usr/bin/python3 ./grade.sh makes .venv from "
                    "it), or at another level") from None
            _live_workers.add(self.process.pid)
        self._seen: dict[int, str] = {}  # every process of the worker's tree seen, with its start time
        self._baseline_tree: int | None = None
        os.close(request_read)
        os.close(response_write)
        self._requests = os.fdopen(self._request_write, "wb", buffering=0)
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()
        self._watch = threading.Thread(target=self._watch_memory, daemon=True)
        self._watch.start()
        self._next_id = 1

    def _jail(self, submission_dir: Path, scratch_dir: Path, request_read: int, response_write: int,
              preload: tuple[str, ...]) -> WorkerJail:
        """The command and confinement of the worker at this level. The worker's code comes from a
        copy holding only what it needs, never the grader's own directory."""
        level = self.limits.sandbox
        code = str(worker_code_directory() if level != "none" else grader_directory().parent)

        hidden = self.limits.hidden_modules

        def argv(confine: dict) -> list[str]:
            settings = json.dumps({"submission_dir": str(submission_dir), "preload": list(preload), "confine": confine,
                                   "hidden_modules": list(hidden)})
            # -I ignores every PYTHON* variable, so the command line says the rest. -u: what the student
            # prints must arrive as it is printed (a training's live progress; the log of a worker that
            # is killed). -B: no bytecode written next to the worker's code, which grading processes
            # share only while it holds exactly the grader's files.
            return [worker_python(), "-I", "-u", "-B", "-c", _BOOTSTRAP, code, str(request_read), str(response_write),
                    settings]

        if level == "bwrap":
            jail = bwrap_jail([], scratch_dir, self.limits.memory_bytes, package_directories(hidden))
        elif level == "restricted":
            jail = restricted_jail([], scratch_dir, self._uid_lease.uid if self._uid_lease else None,
                                   package_directories(hidden))
        else:
            jail = WorkerJail([], confine={"no_new_privs": True} if level == "process" else {})
        return WorkerJail(jail.argv + argv(jail.confine), jail.user, jail.group, jail.confine)

    def _apply_rlimits(self) -> None:
        # Runs in the child after it became the worker's user, which may not read the interpreter's
        # own modules (a Python under /root): whatever it uses is imported by the parent beforehand.
        limits = self.limits
        for name, value in (("RLIMIT_CPU", limits.cpu_seconds), ("RLIMIT_FSIZE", limits.file_size_bytes),
                            ("RLIMIT_NOFILE", limits.open_files), ("RLIMIT_CORE", 0)):
            resource.setrlimit(getattr(resource, name), (value, value))
        die_with_parent()  # a grader that dies (SIGKILL included) takes its worker with it

    def _drain_output(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while chunk := stream.read1(65536):
            self.output.add(chunk)

    def _watch_memory(self) -> None:
        # Resident memory, not address space: RLIMIT_AS would break CUDA's large reservations. The
        # whole tree counts, so memory or processes spread over children are caught too.
        if self.limits.sandbox == "none":
            return
        uid = self._uid_lease.uid if self._uid_lease else None
        while self.process.poll() is None:
            tree = process_tree(self.process.pid)
            for pid in tree:
                self._seen.setdefault(pid, start_time(pid))
            if len(tree) > self.limits.processes:
                self.kill(f"started more than {self.limits.processes - 1} processes")
            elif worker_memory_bytes(tree, self._private_root_of(tree), uid) > self.limits.memory_bytes:
                self.kill(f"used more than {self.limits.memory_bytes // 2**20} MiB of memory "
                          "(resident memory and files in RAM-backed file systems together)")
            time.sleep(0.05)

    def _private_root_of(self, tree: list[int]) -> int | None:
        """A process of the tree inside bubblewrap's own file system (whose /tmp is the worker's)."""
        if not self._private_root:
            return None
        if self._private_root_pid in tree:
            return self._private_root_pid
        try:
            host_root = os.stat("/")
        except OSError:
            return None
        for pid in tree:
            try:
                root = os.stat(f"/proc/{pid}/root/")
            except OSError:
                continue
            if (root.st_dev, root.st_ino) != (host_root.st_dev, host_root.st_ino):
                self._private_root_pid = pid
                return pid
        return None

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def exchange(self, operation: protocol.Operation, buffers: list[bytes], timeout_s: float,
                 release: Sequence[int] = (), refuse: Sequence[protocol.RefusedPlace] = (),
                 watch: Optional[protocol.StackWatchSettings] = None,
                 seed: Optional[int] = None) -> tuple[dict, list[bytes]]:
        """Sends one request and waits up to `timeout_s` for its reply: the reply's header, unread
        (the worker wrote it), and its buffers."""
        if self._baseline_tree is None and self.limits.sandbox != "none":
            # The worker's own process tree (and, under bwrap, bubblewrap's two), measured on the answer
            # to an empty request: one that ran none of the submission's code, so that processes a
            # first request of the submission's leaves running count against it, not into the baseline.
            self._round_trip(protocol.Batch(()), [], timeout_s, (), (), None, None)
        return self._round_trip(operation, buffers, timeout_s, release, refuse, watch, seed)

    def _round_trip(self, operation: protocol.Operation, buffers: list[bytes], timeout_s: float,
                    release: Sequence[int], refuse: Sequence[protocol.RefusedPlace],
                    watch: Optional[protocol.StackWatchSettings], seed: Optional[int]) -> tuple[dict, list[bytes]]:
        request_id = self._next_id
        self._next_id += 1
        envelope = protocol.Envelope(request_id, operation, tuple(release), tuple(refuse), watch, seed)
        try:
            wire.write_message(self._requests, envelope.to_json(), buffers)
        except (BrokenPipeError, OSError) as exc:
            raise self._crashed("before it could take the request") from exc
        deadline = time.monotonic() + timeout_s

        def read_exactly(n: int) -> bytes:
            chunks, remaining = [], n
            while remaining:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._response_read], [], [], max(left, 0))
                if not ready:
                    self.kill("timed out")
                    raise WorkerTimeout(f"no answer within {timeout_s:g} s")
                chunk = os.read(self._response_read, min(remaining, 1 << 20))
                if not chunk:
                    raise self._crashed("while answering")
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)

        try:
            header, reply_buffers = wire.read_message(read_exactly, MAX_RESPONSE_BYTES)
        except wire.TooLarge as exc:
            self.kill("sent an answer too large")
            raise WorkerCrashed(f"the answer is larger than {MAX_RESPONSE_BYTES // 2**20} MiB, more than any "
                                "check asks for: the grader does not read it") from exc
        except wire.WireError as exc:
            self.kill("sent a malformed answer")
            raise WorkerCrashed(f"the worker sent a malformed answer ({exc})") from exc
        if header.get("id") != request_id:
            self.kill("answered out of turn")
            raise WorkerCrashed("the worker's answer does not match the request")
        self._check_nothing_left_running()
        self.answered = True
        return header, reply_buffers

    def _check_nothing_left_running(self) -> None:
        """Processes the code started and left running when it answered cost this request, not a
        later one that the process watch would otherwise interrupt."""
        if self.limits.sandbox == "none":
            return
        size = len(process_tree(self.process.pid))
        if self._baseline_tree is None:
            self._baseline_tree = size  # on the answer to the empty request (see `exchange`)
        elif size > self._baseline_tree:
            extra = size - self._baseline_tree
            self.kill(f"left {extra} process(es) running after it answered")
            raise WorkerCrashed(f"the code left {extra} process(es) running after it returned; the worker "
                                "was stopped with them")

    def _crashed(self, when: str) -> WorkerCrashed:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self.kill("exited")
        if self.killed_reason and self.killed_reason != "exited":
            return WorkerCrashed(f"the worker was stopped {when}: it {self.killed_reason}")
        if code == CONFINEMENT_FAILED_EXIT and not self.answered:
            raise SandboxBroken(f"the worker could not confine itself at the {self.limits.sandbox} level: "
                                f"{self.output.text().strip()[-500:]}")
        number = -code if code is not None and code < 0 else None
        if number is None and code is not None and code > 128 and self.limits.sandbox == "bwrap":
            number = code - 128  # bubblewrap exits with 128 + the signal that ended its child
        if number is not None:
            name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
            if number in _OUTSIDE_SIGNALS:
                now, before = oom_kills(), self._oom_kills_at_start
                if now is None or before is None or now > before:
                    return WorkerLost(f"the worker was killed by {name} {when}, a signal the grader did not send "
                                      "(the machine's out-of-memory killer, or an operator)", name)
                alike = f" (or exited with code {code}, which reads alike)" if code is not None and code > 0 else ""
                return WorkerCrashed(f"the worker was ended by {name}{alike} {when}: the grader did not send it and "
                                     "the machine's out-of-memory killer killed nothing meanwhile, so it is the "
                                     "code's own end, not run again (if an operator killed the worker, grade the "
                                     "submission again)")
            return WorkerCrashed(f"the worker was killed by {name} {when}")
        return WorkerCrashed(f"the worker exited with code {code} {when} (did the code call os._exit or exit?)")

    def kill(self, reason: str) -> None:
        if self.killed_reason is None:
            self.killed_reason = reason
        # What left the process group (setsid, a double fork) is still in the tree, or was seen in
        # it, or came back to this process as an orphan.
        stragglers = [(pid, start_time(pid)) for pid in process_tree(self.process.pid)]
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, started in stragglers + list(self._seen.items()):
            if started and start_time(pid) == started:
                _kill(pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        with _workers_lock:
            _live_workers.discard(self.process.pid)
        kill_escaped_orphans()
        if self._uid_lease is not None:
            self._uid_lease.kill_processes()  # whatever escaped the tree still runs as the uid

    def close(self) -> None:
        try:
            self._requests.close()
        except OSError:
            pass
        self.kill("closed")
        os.close(self._response_read)
        self._drain.join(timeout=1)
        if self._uid_lease is not None:
            self._uid_lease.release()


# -- the worker's process tree -------------------------------------------------------------------------

_live_workers: set[int] = set()
_workers_lock = threading.Lock()
_subreaper = False


def _become_subreaper() -> None:
    """Orphans of a worker's children are re-parented to this process instead of init, so that one
    that left the worker's process group can still be found and killed."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return
    _subreaper = True
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """Linux: this process is killed when the thread that started it ends (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _proc_file(path: str) -> bytes:
    """A file of /proc, read whole with plain system calls: the tree is walked after every answer, so
    the cost of Python's file objects adds up over a grading's thousand round trips."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _children(pid: int) -> Optional[list[int]]:
    """The children of every thread of `pid`; None where the process has ended."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found: list[int] = []
    for task in tasks:
        try:
            found += map(int, _proc_file(f"/proc/{pid}/task/{task}/children").split())
        except OSError:
            pass  # the thread or the process ended meanwhile
    return found


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive (zombies included: they still hold their pid)."""
    tree, frontier = [], [root]
    while frontier and len(tree) < 100_000:
        pid = frontier.pop()
        children = _children(pid)
        if children is not None:
            tree.append(pid)
            frontier += children
    return tree


def _stat_fields(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _session_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if len(fields) > 3 else None


def start_time(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap_adopted_orphans() -> None:
    """What a long-lived grader (a batch, a test run) adopted as subreaper since it last killed a worker
    of its own: the descendants of a grading process killed below it. Left alone they stay <defunct>."""
    kill_escaped_orphans()


def kill_escaped_orphans() -> None:
    """Kills this process's children that no live worker accounts for and that left this process's
    session: descendants of workers that outlived them (this process is their subreaper)."""
    own_session = os.getsid(0)
    # The children are listed under the lock that a worker's start holds until it is registered: a
    # worker another thread starts meanwhile is either not a child yet or already counted as live.
    # (Listed outside it, a worker started between the copy of the live set and the listing was
    # killed as an orphan: a grading's speculative start did that to the sandbox proof's worker.)
    with _workers_lock:
        escaped = [child for child in _children(os.getpid()) or []
                   if child not in _live_workers and _session_of(child) not in (None, own_session)]
    for child in escaped:  # an unreaped child keeps its pid: none of these can be a new worker
        for pid in process_tree(child):
            _kill(pid)
        for _ in range(50):  # reap it, so that adopted orphans do not pile up as zombies
            try:
                if os.waitpid(child, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)


def scrubbed_environment(scratch_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the worker sees of the environment: nothing secret, nothing that says 'graded'."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch_dir),
        "TMPDIR": str(scratch_dir),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": os.environ.get("GRADER_WORKER_THREADS", "1"),
        "MKL_NUM_THREADS": os.environ.get("GRADER_WORKER_THREADS", "1"),
        "OPENBLAS_NUM_THREADS": os.environ.get("GRADER_WORKER_THREADS", "1"),
    }
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def make_scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="grader-scratch-"))


def remove_scratch_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
