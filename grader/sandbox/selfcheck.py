"""`grader selfcheck`: proves, from inside a sandboxed worker, each promise an isolation level makes,
and picks the level official grading runs at.

A probe module (grader/sandbox/probe.py) is run as a submission; each probe tries what an attacker
would (connect to a socket the grader listens on, write next to the grader's files, read the
reference, open the host's files by handle, remount a read-only bind, trace or signal the grader,
read its /proc entries, fill RAM-backed file systems, fork without bound, leave a process behind)
or what a submission must manage (write its scratch directory), and the grader, never the probe,
decides from what it observes whether the promise held. Official and batch grading run the quick
probes first: `choose_level` takes the strongest level whose promises all hold here and refuses to
grade, naming each broken promise and its fix, when no level keeps the reference unreadable and
the network closed.
"""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from grader.sandbox.errors import StudentException, WorkerFailure
from grader.sandbox.levels import CONFINED_LEVELS, LEVELS, grader_directory, level_problem, running_as_root
from grader.sandbox.remote import StudentProxy, WorkerSession
from grader.sandbox.worker_process import (
    Limits,
    make_scratch_dir,
    process_tree,
    remove_scratch_dir,
    scrubbed_environment,
)

_CONFINED = tuple(reversed(CONFINED_LEVELS))
_ALL = ("process", "restricted", "bwrap")


@dataclass(frozen=True)
class Promise:
    name: str
    levels: tuple[str, ...]   # the levels that make this promise
    quick: bool               # cheap enough to run before every official grading
    fix: str = ""             # what to do on a machine where it does not hold


@dataclass(frozen=True)
class Observation:
    promise: Promise
    held: bool
    observed: str


_FIX_LANDLOCK = ("a kernel with Landlock (Linux >= 5.13 with landlock in its lsm= list), or the grader run as root "
                 "with reference/ unreadable to other users (chmod -R o-rwx reference)")
_FIX_SECCOMP = "install libseccomp2 (apt-get install libseccomp2) and the Python package pyseccomp"
_FIX_ROOT = "run the grader as root (the worker then runs as an unprivileged uid of its own), or use bwrap"

PROMISES = {
    "scratch": Promise("the scratch directory is writable", ("none",) + _ALL, True),
    "environment": Promise("no secret or grading variable in the environment", _ALL, True),
    "no_new_privs": Promise("no_new_privs is set (no setuid binary raises privileges)", _ALL, True),
    "capabilities": Promise("the worker holds no capability (CapEff and CapPrm 0)", _CONFINED, True, _FIX_ROOT),
    "unprivileged": Promise("the worker is not root (its own uid, or a user namespace without capabilities)",
                            _CONFINED, True, _FIX_ROOT),
    "tcp": Promise("a TCP connection to the host fails", _CONFINED, True, _FIX_SECCOMP),
    "udp": Promise("a UDP datagram to the host is not delivered", _CONFINED, True, _FIX_SECCOMP),
    "write": Promise("a write outside the scratch directory fails", _CONFINED, True, _FIX_LANDLOCK),
    "reference": Promise("reference/ and files outside scratch are not readable", _CONFINED, True, _FIX_LANDLOCK),
    "grader_code": Promise("the grader's code beyond the worker's own is not there", _CONFINED, True, _FIX_LANDLOCK),
    "handle": Promise("open_by_handle_at reaches no file of the host", _CONFINED, True, _FIX_ROOT),
    "remount": Promise("no read-only bind can be remounted and nothing mounted", _CONFINED, True, _FIX_ROOT),
    "ptrace": Promise("the grader cannot be traced", _CONFINED, True, _FIX_ROOT),
    "grader_proc": Promise("/proc shows neither the grader's environment nor its files", _CONFINED, True, _FIX_ROOT),
    "signal": Promise("the grader cannot be signalled", _CONFINED, True,
                      "run the grader as root, or a kernel with Landlock ABI 6 (Linux >= 6.12)"),
    "fork_bomb": Promise("a fork bomb is stopped", _ALL, False),
    "memory": Promise("memory over the limit stops the worker", _ALL, False),
    "ram_files": Promise("files in /tmp, /dev/shm and memfds count toward the memory limit", _CONFINED, False),
    "leftovers": Promise("nothing the worker wrote outside scratch outlives it", _CONFINED, False),
    "orphan": Promise("no process outlives the worker", _ALL, False),
}


class _Probe:
    """A worker running the probe module under `limits`, with a canary outside its scratch."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.scratch = make_scratch_dir()
        package = self.scratch / "probe_package"
        package.mkdir()
        (package / "probe.py").write_text((Path(__file__).with_name("probe.py")).read_text())
        self.outside = Path(tempfile.mkdtemp(prefix="grader-selfcheck-"))
        self.outside.chmod(0o755)  # reachable by any uid: only the sandbox may keep the worker out
        self.canary = self.outside / "canary.txt"
        self.canary.write_text("canary")
        self.canary.chmod(0o644)
        self.marker = f"grader-selfcheck-{os.getpid()}-{time.monotonic_ns()}"
        self.package = package
        self.listeners: dict[str, socket.socket] = {}
        self.session = self._session()

    def _session(self) -> WorkerSession:
        return WorkerSession(self.package, self.scratch, self.limits)

    def listen(self, promise: str, kind: int) -> socket.socket:
        """A socket of the grader's on loopback for the probe to reach, kept open until `close`."""
        server = socket.socket(socket.AF_INET, kind)
        server.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            server.listen(1)
        self.listeners[promise] = server
        return server

    def late_arrivals(self) -> dict[str, str]:
        """Promise -> what reached the grader's sockets after the promise's own check looked."""
        late = {}
        for promise, server in self.listeners.items():
            if _arrived(server, 0):
                late[promise] = "the probe reached the grader's socket (seen after the last probe)"
        return late

    @property
    def probe(self):
        return StudentProxy(self.session).probe

    def worker_pids(self) -> list[int]:
        worker = self.session._worker
        return process_tree(worker.process.pid) if worker is not None else []

    def fresh(self) -> None:
        self.session.close()
        self.session = self._session()

    def close(self) -> None:
        self.session.close()
        for server in self.listeners.values():
            server.close()
        remove_scratch_dir(self.scratch)
        remove_scratch_dir(self.outside)
        for directory in ("/dev/shm", tempfile.gettempdir()):
            for leftover in Path(directory).glob(f"{self.marker}*"):
                leftover.unlink(missing_ok=True)


def _check_scratch(p: _Probe) -> tuple[bool, str]:
    result = p.probe.write(str(p.scratch / "written.txt"))
    return result is True and (p.scratch / "written.txt").exists(), f"write in scratch: {result}"


def _check_environment(p: _Probe) -> tuple[bool, str]:
    seen = p.probe.environment()
    allowed = set(scrubbed_environment(p.scratch)) | {"PWD"}  # bubblewrap sets PWD to the scratch directory
    leaked = sorted(k for k in seen if k not in allowed)
    return not leaked, f"unexpected variables: {', '.join(leaked)}" if leaked else "only the scrubbed variables"


def _worker_status(p: _Probe) -> dict[str, str]:
    """The probe's own view of its status (its uid inside any user namespace)."""
    return p.probe.status()


def _check_no_new_privs(p: _Probe) -> tuple[bool, str]:
    status = _worker_status(p)
    return status.get("NoNewPrivs") == "1", f"NoNewPrivs {status.get('NoNewPrivs')}, Seccomp {status.get('Seccomp')}"


def _check_capabilities(p: _Probe) -> tuple[bool, str]:
    status = _worker_status(p)
    held = int(status.get("CapEff", "1"), 16) == 0 and int(status.get("CapPrm", "1"), 16) == 0
    return held, f"CapEff {status.get('CapEff')}, CapPrm {status.get('CapPrm')}, CapBnd {status.get('CapBnd')}"


def _check_unprivileged(p: _Probe) -> tuple[bool, str]:
    inside = _worker_status(p).get("Uid", "?")
    outside = sorted({_uid_of(pid) for pid in p.worker_pids()[-1:]})
    return inside not in ("0", "?"), f"uid {inside} as the worker sees it, {', '.join(map(str, outside))} on the host"


def _uid_of(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


# A connection or datagram over loopback has arrived by the time the probe's connect or sendto
# returns; the grader looks at once, briefly, and again after the last probe (`_Probe.late_arrivals`),
# so a late one is still seen without a wait of its own.
_NETWORK_GLANCE_S = 0.01


def _check_tcp(p: _Probe) -> tuple[bool, str]:
    server = p.listen("tcp", socket.SOCK_STREAM)
    result = p.probe.tcp(server.getsockname()[1])
    if _arrived(server, _NETWORK_GLANCE_S):
        return False, "the probe connected to the grader's listening socket"
    return True, f"connect failed: {result}"


def _check_udp(p: _Probe) -> tuple[bool, str]:
    server = p.listen("udp", socket.SOCK_DGRAM)
    result = p.probe.udp(server.getsockname()[1])
    if _arrived(server, _NETWORK_GLANCE_S):
        return False, "the grader received the probe's datagram"
    return True, f"sendto: {result}"


def _arrived(server: socket.socket, wait_s: float) -> bool:
    """Whether a connection waits to be accepted on `server`, or a datagram to be read."""
    readable, _, _ = select.select([server], [], [], wait_s)
    return bool(readable)


def _check_write(p: _Probe) -> tuple[bool, str]:
    target = p.outside / "written-by-probe.txt"
    result = p.probe.write(str(target))
    return not target.exists(), f"write outside scratch: {result}"


def _check_reference(p: _Probe) -> tuple[bool, str]:
    paths = [p.canary]
    root = grader_directory().parent
    paths += sorted((root / "reference").glob("*/*.py"))[:3]
    visible = [str(path) for path in paths if p.probe.read(str(path)) is not None]
    return not visible, f"readable: {', '.join(visible)}" if visible else f"{len(paths)} files outside scratch unreadable"


def _check_grader_code(p: _Probe) -> tuple[bool, str]:
    got = p.probe.import_grader(str(grader_directory()))
    return not got, f"reached: {', '.join(got)}" if got else "grader.data and the grader's directory are out of reach"


def _check_handle(p: _Probe) -> tuple[bool, str]:
    # The worker's code directory is bound from the host (bwrap) or lies on the host's file system.
    from grader.sandbox.levels import worker_code_directory

    result = p.probe.open_by_handle(str(worker_code_directory()))
    return result is not True, "a file of the host was opened by its handle" if result is True else result


def _check_remount(p: _Probe) -> tuple[bool, str]:
    from grader.sandbox.levels import worker_code_directory

    code = worker_code_directory()
    result = p.probe.remount(str(code), str(p.scratch))
    changed = (code / "escaped-by-remount.txt").exists()
    if changed:
        (code / "escaped-by-remount.txt").unlink()
    return result is not True and not changed and not str(result).startswith(("mounted", "remounted")), str(result)


def _check_ptrace(p: _Probe) -> tuple[bool, str]:
    result = p.probe.trace(os.getpid())
    return result is not True, "the probe attached to the grader with ptrace" if result is True else f"ptrace: {result}"


def _check_grader_proc(p: _Probe) -> tuple[bool, str]:
    seen = p.probe.proc_of(os.getpid(), str(p.canary))
    environment = seen.get("environ")
    leaked = []
    if environment and any(f"{k}=" in environment for k in list(os.environ)[:20]):
        leaked.append("the grader's environment")
    if seen.get("canary") == "canary":
        leaked.append("a file through /proc/<grader>/root")
    return not leaked, ("read " + " and ".join(leaked)) if leaked else (
        f"environ: {seen.get('environ_error', 'not the grader')}; root: {seen.get('canary_error', 'not the grader')}")


def _check_signal(p: _Probe) -> tuple[bool, str]:
    result = p.probe.signal_process(os.getpid())
    return result is not True, "the probe could signal the grader" if result is True else f"kill(grader, 0): {result}"


def _check_fork_bomb(p: _Probe) -> tuple[bool, str]:
    try:
        count = p.probe.fork_bomb(p.limits.processes * 4)
        survivors = len(p.worker_pids())
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


def _check_ram_files(p: _Probe) -> tuple[bool, str]:
    """Each RAM-backed place filled to twice the limit: the write is refused, or the worker is
    stopped for memory, before the limit is passed by much."""
    megabytes = p.limits.memory_bytes // 2**20 * 2
    observed = []
    held = True
    for place, fill in (("/dev/shm", lambda: p.probe.fill(f"/dev/shm/{p.marker}", megabytes)),
                        ("/tmp", lambda: p.probe.fill(f"/tmp/{p.marker}", megabytes)),
                        ("a memfd", lambda: p.probe.fill_memfd(megabytes))):
        try:
            result = fill()
        except WorkerFailure as failure:
            p.fresh()
            stopped = "memory" in str(failure)
            held &= stopped
            observed.append(f"{place}: {'stopped for memory' if stopped else failure}")
            continue
        refused = not isinstance(result, int)
        held &= refused
        observed.append(f"{place}: {'refused: ' + result if refused else f'{result} MiB written'}")
        p.fresh()
    return held, "; ".join(observed)


def _check_leftovers(p: _Probe) -> tuple[bool, str]:
    for place in ("/dev/shm", "/tmp"):
        try:
            p.probe.fill(f"{place}/{p.marker}", 1)
        except WorkerFailure:
            pass
    p.fresh()
    left = [str(path) for directory in ("/dev/shm", tempfile.gettempdir())
            for path in Path(directory).glob(f"{p.marker}*")]
    return not left, f"left: {', '.join(left)}" if left else "nothing left in /tmp or /dev/shm"


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
    "scratch": _check_scratch, "environment": _check_environment, "no_new_privs": _check_no_new_privs,
    "capabilities": _check_capabilities, "unprivileged": _check_unprivileged, "tcp": _check_tcp,
    "udp": _check_udp, "write": _check_write, "reference": _check_reference, "grader_code": _check_grader_code,
    "handle": _check_handle, "remount": _check_remount, "ptrace": _check_ptrace, "grader_proc": _check_grader_proc,
    "signal": _check_signal, "fork_bomb": _check_fork_bomb, "memory": _check_memory,
    "ram_files": _check_ram_files, "leftovers": _check_leftovers, "orphan": _check_orphan,
}


def default_limits() -> Limits:
    return Limits(call_timeout_s=20, memory_bytes=512 * 2**20, processes=32)


def run_selfcheck(level: str, *, quick: bool = False, every_promise: bool = False,
                  limits: Limits | None = None) -> list[Observation]:
    """Observations of the promises `level` makes (every promise with `every_promise`, to show what
    a lower level does not give), the quick ones only with `quick`."""
    limits = dataclasses.replace(limits or default_limits(), sandbox=level)
    probe = _Probe(limits)
    observations: dict[str, Observation] = {}
    try:
        for key, promise in PROMISES.items():
            if (not every_promise and level not in promise.levels) or (quick and not promise.quick):
                continue
            try:
                held, observed = _CHECKS[key](probe)
            except WorkerFailure as failure:
                probe.fresh()
                held, observed = False, f"the probe's worker failed: {failure}"
            except StudentException as error:
                held, observed = False, f"the probe raised {error}"
            observations[key] = Observation(promise, held, observed)
        for key, seen in probe.late_arrivals().items():
            if key in observations:
                observations[key] = Observation(observations[key].promise, False, seen)
    finally:
        probe.close()
    return list(observations.values())


# -- the verdict official grading acts on ------------------------------------------------------------------

@dataclass
class Verdicts:
    """What the quick probes found per level, in this process (each level is proven once)."""

    broken: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def of(self, level: str) -> tuple[str, ...]:
        if level not in self.broken:
            problem = level_problem(level)
            if problem is not None:
                self.broken[level] = (f"{level} cannot start here: {problem}",)
            else:
                self.broken[level] = tuple(
                    f"{o.promise.name}: {o.observed}" + (f" (fix: {o.promise.fix})" if o.promise.fix else "")
                    for o in run_selfcheck(level, quick=True) if not o.held)
        return self.broken[level]


_verdicts = Verdicts()


def broken_promises(level: str) -> tuple[str, ...]:
    """The quick promises of `level` that do not hold here, each with its fix (checked once per process)."""
    return _verdicts.of(level)


def forget_verdicts() -> None:
    _verdicts.broken.clear()


def adopt_verdict(level: str, broken: tuple[str, ...]) -> None:
    """Takes the verdict another process reached on this same machine (a batch's coordinator checks
    once, not once per submission)."""
    _verdicts.broken[level] = tuple(broken)


class SandboxRefused(RuntimeError):
    """No level this machine offers keeps its promises: official grading does not run."""


def choose_level(requested: str, mode: str) -> str:
    """The level a grading runs at. Public mode: `auto` is `process`. Official mode: `auto` is the
    strongest level whose promises all hold here, an explicit confined level must hold its promises,
    and `process` or `none` run as asked (the results say so)."""
    if requested != "auto" and requested not in LEVELS:
        raise ValueError(f"unknown sandbox level {requested!r}; choose auto or one of {', '.join(LEVELS)}")
    if mode != "official":
        if requested == "auto":
            return "process"
        problem = level_problem(requested)
        if problem is not None:
            raise SandboxRefused(f"the {requested} level cannot start here: {problem}")
        return requested
    candidates = CONFINED_LEVELS if requested == "auto" else (requested,)
    if requested in ("process", "none"):
        return requested
    reasons = {}
    for level in candidates:
        broken = broken_promises(level)
        if not broken:
            return level
        reasons[level] = broken
    lines = [f"official grading refused: {'no sandbox level keeps' if requested == 'auto' else f'the {requested} level does not keep'} "
             "its promises on this machine (reference/ unreadable, the network closed, no privilege):"]
    for level, broken in reasons.items():
        lines.append(f"  {level}:")
        lines += [f"    - {b}" for b in broken]
    lines.append("Run `grader selfcheck` for the whole table. `--sandbox process` grades without this protection "
                 "(the results say so).")
    if running_as_root() and requested == "auto":
        lines.append("The grader runs as root here: the restricted level's worker runs as an unprivileged uid.")
    raise SandboxRefused("\n".join(lines))


def describe_level(level: str, mode: str) -> Optional[str]:
    """A warning for the results when grading that counts ran without a confining sandbox."""
    if mode == "official" and level not in _CONFINED:
        return (f"WARNING: graded at the {level} sandbox level, chosen explicitly: the submission could read "
                "the reference and hidden checks and use the network; this grade is not protected.")
    return None
