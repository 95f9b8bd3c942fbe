"""`grader selfcheck`: proves, from inside a sandboxed worker, each promise the isolation level makes.

A probe module is run as a submission; each probe tries something a submission must not manage
(connect to a socket the grader listens on, write next to the grader's files, read the reference,
fork without bound, take too much memory, leave a process behind) or something it must (write its
scratch directory), and the grader, never the probe, decides from what it observes whether the
promise held. Official grading runs the quick probes first and refuses to start when one it relies
on fails.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader.remote import StudentProxy, WorkerSession
from grader.worker_process import (
    Limits, WorkerFailure, make_scratch_dir, process_tree, remove_scratch_dir, scrubbed_environment,
)

_PROBE = '''
import os, socket, subprocess, sys, time

def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"escaped")
        return True
    except OSError as e:
        return str(e)

def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"escaped", ("127.0.0.1", port))
        return True
    except OSError as e:
        return str(e)

def write(path):
    try:
        with open(path, "w") as f:
            f.write("escaped")
        return True
    except OSError as e:
        return str(e)

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return None

def environment():
    return dict(os.environ)

def fork_bomb(limit):
    children = []
    for _ in range(limit):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
        time.sleep(0.001)
    return len(children)

def allocate(megabytes):
    blocks = []
    for _ in range(megabytes):
        blocks.append(bytearray(1024 * 1024))
        time.sleep(0.0005)
    return len(blocks)

def leave_behind(marker):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True
'''


@dataclass(frozen=True)
class Promise:
    name: str
    levels: tuple[str, ...]   # the levels that make this promise
    quick: bool               # cheap enough to run before every official grading


@dataclass(frozen=True)
class Observation:
    promise: Promise
    held: bool
    observed: str


PROMISES = {
    "scratch": Promise("the scratch directory is writable", ("none", "process", "bwrap"), True),
    "environment": Promise("no secret or grading variable in the environment", ("process", "bwrap"), True),
    "tcp": Promise("a TCP connection to the host fails", ("bwrap",), True),
    "udp": Promise("a UDP datagram to the host is not delivered", ("bwrap",), True),
    "write": Promise("a write outside the scratch directory fails", ("bwrap",), True),
    "reference": Promise("reference/ and files outside scratch are not there", ("bwrap",), True),
    "fork_bomb": Promise("a fork bomb is stopped", ("process", "bwrap"), False),
    "memory": Promise("memory over the limit stops the worker", ("process", "bwrap"), False),
    "orphan": Promise("no process outlives the worker", ("process", "bwrap"), False),
}


class _Probe:
    """A worker running the probe module under `limits`, with a canary outside its scratch."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.scratch = make_scratch_dir()
        package = self.scratch / "probe_package"
        package.mkdir()
        (package / "probe.py").write_text(_PROBE)
        self.outside = Path(tempfile.mkdtemp(prefix="grader-selfcheck-"))
        self.canary = self.outside / "canary.txt"
        self.canary.write_text("canary")
        self.package = package
        self.session = self._session()

    def _session(self) -> WorkerSession:
        return WorkerSession(self.package, self.scratch, self.limits)

    @property
    def probe(self):
        return StudentProxy(self.session).probe

    def fresh(self) -> None:
        self.session.close()
        self.session = self._session()

    def close(self) -> None:
        self.session.close()
        remove_scratch_dir(self.scratch)
        remove_scratch_dir(self.outside)


def _check_scratch(p: _Probe) -> tuple[bool, str]:
    result = p.probe.write(str(p.scratch / "written.txt"))
    return result is True and (p.scratch / "written.txt").exists(), f"write in scratch: {result}"


def _check_environment(p: _Probe) -> tuple[bool, str]:
    seen = p.probe.environment()
    allowed = set(scrubbed_environment(p.scratch)) | {"PWD"}  # bubblewrap sets PWD to the scratch directory
    leaked = sorted(k for k in seen if k not in allowed)
    return not leaked, f"unexpected variables: {', '.join(leaked)}" if leaked else "only the scrubbed variables"


def _check_tcp(p: _Probe) -> tuple[bool, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.1)
        result = p.probe.tcp(server.getsockname()[1])
        try:
            connection, _ = server.accept()
            connection.close()
            return False, "the probe connected to the grader's listening socket"
        except socket.timeout:
            return True, f"connect failed: {result}"


def _check_udp(p: _Probe) -> tuple[bool, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.1)
        result = p.probe.udp(server.getsockname()[1])
        try:
            server.recvfrom(64)
            return False, "the grader received the probe's datagram"
        except socket.timeout:
            return True, f"sendto: {result}"


def _check_write(p: _Probe) -> tuple[bool, str]:
    target = p.outside / "written-by-probe.txt"
    result = p.probe.write(str(target))
    return not target.exists(), f"write outside scratch: {result}"


def _check_reference(p: _Probe) -> tuple[bool, str]:
    paths = [p.canary]
    root = Path(__file__).resolve().parent.parent
    paths += sorted((root / "reference").glob("*/*.py"))[:3]
    visible = [str(path) for path in paths if p.probe.read(str(path)) is not None]
    return not visible, f"readable: {', '.join(visible)}" if visible else f"{len(paths)} files outside scratch unreadable"


def _check_fork_bomb(p: _Probe) -> tuple[bool, str]:
    try:
        count = p.probe.fork_bomb(p.limits.processes * 4)
        survivors = _survivors(p)
        return False, f"started {count} processes ({survivors} left)"
    except WorkerFailure as failure:
        p.fresh()
        return True, str(failure)


def _check_memory(p: _Probe) -> tuple[bool, str]:
    megabytes = p.limits.memory_bytes // 2**20 * 2
    try:
        p.probe.allocate(megabytes)
        return False, f"allocated {megabytes} MiB"
    except WorkerFailure as failure:
        p.fresh()
        return "memory" in str(failure), str(failure)


def _check_orphan(p: _Probe) -> tuple[bool, str]:
    marker = f"grader-selfcheck-orphan-{os.getpid()}-{time.monotonic_ns()}"
    try:
        p.probe.leave_behind(marker)
    except WorkerFailure:
        pass  # the call that left a process running is failed for it (level process and up)
    p.fresh()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if not _processes_with(marker):
            return True, "the worker's detached child was killed with it"
        time.sleep(0.1)
    left = _processes_with(marker)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return False, f"{len(left)} process(es) outlived the worker"


def _survivors(p: _Probe) -> int:
    return len(process_tree(p.session._worker.process.pid)) if p.session._worker else 0


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


_CHECKS: dict[str, Callable[[_Probe], tuple[bool, str]]] = {
    "scratch": _check_scratch, "environment": _check_environment, "tcp": _check_tcp, "udp": _check_udp,
    "write": _check_write, "reference": _check_reference, "fork_bomb": _check_fork_bomb,
    "memory": _check_memory, "orphan": _check_orphan,
}


def run_selfcheck(level: str, *, quick: bool = False, every_promise: bool = False,
                  limits: Limits | None = None) -> list[Observation]:
    """Observations of the promises `level` makes (every promise with `every_promise`, to show what
    a lower level does not give), the quick ones only with `quick`."""
    limits = limits or Limits(call_timeout_s=20, memory_bytes=512 * 2**20, processes=32)
    limits = dataclasses.replace(limits, sandbox=level)
    probe = _Probe(limits)
    observations = []
    try:
        for key, promise in PROMISES.items():
            if (not every_promise and level not in promise.levels) or (quick and not promise.quick):
                continue
            try:
                held, observed = _CHECKS[key](probe)
            except WorkerFailure as failure:
                probe.fresh()
                held, observed = False, f"the probe's worker failed: {failure}"
            observations.append(Observation(promise, held, observed))
    finally:
        probe.close()
    return observations


_verdicts: dict[str, tuple[str, ...]] = {}


def broken_promises(level: str) -> tuple[str, ...]:
    """The quick promises of `level` that do not hold here (checked once per process)."""
    if level not in _verdicts:
        _verdicts[level] = tuple(f"{o.promise.name}: {o.observed}" for o in run_selfcheck(level, quick=True)
                                 if not o.held)
    return _verdicts[level]


def forget_verdicts() -> None:
    _verdicts.clear()


def adopt_verdict(level: str, broken: tuple[str, ...]) -> None:
    """Takes the verdict another process reached on this same machine (a batch's coordinator checks
    once, not once per submission)."""
    _verdicts[level] = tuple(broken)
