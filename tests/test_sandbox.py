"""The isolation levels keep their promises, proven from inside a worker; with a defence switched off
the same probe gets through (so every probe has teeth); official grading picks the strongest level
that holds and refuses to grade when none does."""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox import levels

from grader.sandbox import selfcheck

from grader.sandbox import worker_memory
from grader.assignment import ConfigError
from support import PROJECT_ROOT, a1, grade_checks, make_submission

BWRAP_PROBLEM = levels.bwrap_problem()
RESTRICTED_PROBLEM = levels.restricted_problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bubblewrap unusable here: {BWRAP_PROBLEM}")
needs_restricted = pytest.mark.skipif(RESTRICTED_PROBLEM is not None,
                                      reason=f"the restricted level cannot run here: {RESTRICTED_PROBLEM}")
needs_root = pytest.mark.skipif(not levels.running_as_root(), reason="needs the grader to run as root")
needs_landlock = pytest.mark.skipif(levels.landlock_abi() < 1, reason="this kernel has no Landlock")


def observed(level, **kwargs):
    observations = selfcheck.run_selfcheck(level, every_promise=True, **kwargs)  # once, for every promise
    return {key: o for key, promise in selfcheck.PROMISES.items() for o in observations if o.promise == promise}


def broken(observations, *keys):
    return {key for key in keys if not observations[key].held}


@pytest.fixture
def fresh_machine():
    """Forgets what was proven about the machine before and after a test that changes it."""
    levels.forget_machine()
    selfcheck.forget_verdicts()
    yield
    levels.forget_machine()
    selfcheck.forget_verdicts()


@pytest.mark.parametrize("level", [pytest.param("bwrap", marks=needs_bwrap),
                                   pytest.param("restricted", marks=needs_restricted), "process"])
def test_every_promise_of_a_level_holds(level):
    observations = observed(level)
    made = {key: o for key, o in observations.items() if level in o.promise.levels}
    assert made and all(o.held for o in made.values()), {k: o.observed for k, o in made.items() if not o.held}


def test_without_a_sandbox_the_attacks_get_through():
    observations = observed("none")
    expected = {"tcp", "udp", "write", "reference", "grader_code", "fork_bomb", "memory", "ptrace",
                "grader_proc", "signal", "ram_files", "leftovers"}
    if levels.running_as_root():  # what only root can do
        expected |= {"capabilities", "unprivileged", "handle", "remount"}
    assert broken(observations, *expected) == expected


def test_the_process_level_does_not_pretend_to_isolate_the_network_or_the_file_system():
    observations = observed("process")
    assert broken(observations, "tcp", "write", "reference", "grader_proc") == {"tcp", "write", "reference",
                                                                             "grader_proc"}


# -- each defence of bwrap switched off ---------------------------------------------------------------

_ROOTFUL_BWRAP = ["--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                  "--unshare-cgroup-try", "--hostname", "sandbox"]


@needs_bwrap
@needs_root
def test_bwrap_run_by_root_without_a_user_namespace_gives_the_worker_every_capability(monkeypatch, fresh_machine):
    # bubblewrap started by root keeps the capabilities unless told otherwise: the worker then opens
    # the host's files by handle and mounts at will. The seccomp filter is off too, to show each.
    monkeypatch.setattr(levels, "_namespace_args", lambda: list(_ROOTFUL_BWRAP))
    monkeypatch.setattr(levels, "_seccomp_available", lambda: False)
    assert broken(observed("bwrap", quick=True), "capabilities", "handle", "remount") == {
        "capabilities", "handle", "remount"}


@needs_bwrap
@needs_root
def test_the_seccomp_filter_alone_stops_handles_and_mounts_in_bwrap(monkeypatch, fresh_machine):
    monkeypatch.setattr(levels, "_namespace_args", lambda: list(_ROOTFUL_BWRAP))
    observations = observed("bwrap", quick=True)
    assert not broken(observations, "handle", "remount")
    assert broken(observations, "capabilities") == {"capabilities"}


@needs_bwrap
def test_bwrap_without_its_network_namespace_and_filter_lets_tcp_through(monkeypatch, fresh_machine):
    leaky = [arg for arg in levels._namespace_args() if arg != "--unshare-net"]
    monkeypatch.setattr(levels, "_namespace_args", lambda: leaky)
    monkeypatch.setattr(levels, "_seccomp_available", lambda: False)
    assert broken(observed("bwrap", quick=True), "tcp", "udp") == {"tcp", "udp"}


# The probe's connection and datagram leave only with its next call: after the grader's glance.
LATE_NETWORK_PROBE = """
_late = []


def tcp(port):
    _late.append((socket.SOCK_STREAM, port))
    return "connect deferred"


def udp(port):
    _late.append((socket.SOCK_DGRAM, port))
    return "sendto deferred"


_write = write


def write(path):
    for kind, port in _late:
        s = socket.socket(socket.AF_INET, kind)
        s.connect(("127.0.0.1", port))
        s.send(b"late")
    _late.clear()
    return _write(path)
"""


def test_a_connection_or_datagram_that_arrives_after_its_check_is_still_seen(monkeypatch):
    """Without a sandbox the network is open; a connection made after the grader's glance at its
    socket still breaks the promise, seen when the proof ends."""
    real_init = selfcheck._Probe.__init__

    def init(probe, limits):
        real_init(probe, limits)
        with open(probe.package / "probe.py", "a") as module:
            module.write(LATE_NETWORK_PROBE)

    monkeypatch.setattr(selfcheck._Probe, "__init__", init)
    observations = observed("process", quick=True)
    assert broken(observations, "tcp", "udp") == {"tcp", "udp"}
    assert "after the last probe" in observations["tcp"].observed


@needs_bwrap
def test_official_grading_refuses_a_bwrap_that_lets_the_network_through(monkeypatch, fresh_machine, tmp_path):
    leaky = [arg for arg in levels._namespace_args() if arg != "--unshare-net"]
    monkeypatch.setattr(levels, "_namespace_args", lambda: leaky)
    monkeypatch.setattr(levels, "_seccomp_available", lambda: False)
    shipped = a1()
    with pytest.raises(ConfigError, match="TCP connection"):
        grade_checks(shipped, make_submission(tmp_path, shipped), only="affine.forward", sandbox="bwrap")


@needs_bwrap
def test_ram_backed_files_in_bwrap_count_only_through_the_accounting_and_size_limits(monkeypatch, fresh_machine):
    # Unlimited private tmpfs mounts, and a watch that sees resident memory only: 2x the limit fits.
    monkeypatch.setattr(worker_memory, "private_tmpfs_bytes", lambda pid, mounts=(): 0)
    monkeypatch.setattr(worker_memory, "open_ram_files_bytes", lambda pids, skip_prefixes=(): 0)
    original = levels._system_mounts
    monkeypatch.setattr(levels, "_system_mounts", lambda size: original(64 * 2**30))
    observations = observed("bwrap")
    assert broken(observations, "ram_files") == {"ram_files"}, observations["ram_files"].observed


# -- each defence of the restricted level switched off ------------------------------------------------

@needs_restricted
@needs_landlock
def test_restricted_without_landlock_cannot_keep_world_readable_files_from_the_worker(monkeypatch, fresh_machine):
    monkeypatch.setattr(levels, "landlock_abi", lambda: 0)
    observations = observed("restricted", quick=True)
    assert broken(observations, "reference", "grader_code") == {"reference", "grader_code"}
    assert not broken(observations, "udp", "capabilities")


@needs_restricted
def test_restricted_without_its_seccomp_filter_lets_udp_through(monkeypatch, fresh_machine):
    from grader.sandbox import worker_process

    original = levels.restricted_jail

    def without_seccomp(*args, **kwargs):
        jail = original(*args, **kwargs)
        return levels.WorkerJail(jail.argv, jail.user, jail.group, {**jail.confine, "seccomp": False})

    monkeypatch.setattr(worker_process, "restricted_jail", without_seccomp)
    assert broken(observed("restricted", quick=True), "udp") == {"udp"}


@needs_restricted
@needs_root
def test_restricted_without_the_uid_drop_leaves_root_with_its_capabilities(monkeypatch, fresh_machine):
    from grader.sandbox import worker_process

    monkeypatch.setattr(worker_process, "running_as_root", lambda: False)
    assert broken(observed("restricted", quick=True), "capabilities", "unprivileged") == {
        "capabilities", "unprivileged"}


# -- choosing the level -------------------------------------------------------------------------------

def test_official_grading_refuses_when_no_level_keeps_its_promises(monkeypatch, fresh_machine, tmp_path):
    monkeypatch.setattr(levels, "bwrap_problem", lambda: "bubblewrap is not installed (apt-get install bubblewrap)")
    monkeypatch.setattr(levels, "restricted_problem", lambda: "seccomp is not available (install libseccomp2)")
    shipped = a1()
    with pytest.raises(ConfigError) as refusal:
        grade_checks(shipped, make_submission(tmp_path, shipped), only="affine.forward")
    message = str(refusal.value)
    assert message.startswith("official grading refused")
    assert "apt-get install bubblewrap" in message and "libseccomp2" in message
    # Explicitly unprotected grading still runs, and says so in its results.
    result = grade_checks(shipped, make_submission(tmp_path / "p", shipped), only="affine.forward",
                          sandbox="process")
    assert result.sandbox == "process" and "not protected" in result.output


def test_official_grading_takes_the_strongest_level_that_holds(monkeypatch, fresh_machine):
    monkeypatch.setattr(levels, "bwrap_problem", lambda: "bubblewrap could not create its namespaces here")
    if RESTRICTED_PROBLEM is None:
        assert selfcheck.choose_level("auto", "official") == "restricted"
    monkeypatch.setattr(levels, "bwrap_problem", lambda: None)
    selfcheck.adopt_verdict("bwrap", ())
    assert selfcheck.choose_level("auto", "official") == "bwrap"
    assert selfcheck.choose_level("auto", "public") == "process"


def test_a_bwrap_that_cannot_start_is_found_out_and_named(monkeypatch, fresh_machine, tmp_path):
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    problem = levels.bwrap_problem()
    assert problem and "Permission denied" in problem and "apparmor_restrict_unprivileged_userns" in problem
    shipped = a1()
    with pytest.raises(ConfigError, match="bwrap"):
        grade_checks(shipped, make_submission(tmp_path / "s", shipped), only="affine.forward", sandbox="bwrap")


# -- submissions that attack --------------------------------------------------------------------------

CONFINED = [pytest.param("bwrap", marks=needs_bwrap), pytest.param("restricted", marks=needs_restricted)]


def _cheating(shipped, steal: str) -> str:
    """The reference's layers.py whose affine_forward first tries `steal`, which sets `stolen` to the
    text of the reference's layers.py when it gets it; a stolen reference answers, else zeros."""
    reference = shipped.reference_directory / "layers.py"
    return reference.read_text().replace(
        "def affine_forward(x, w, b):",
        "def affine_forward(x, w, b):\n"
        "    import os, ctypes\n"
        f"    target = {str(reference)!r}\n"
        "    stolen = None\n"
        + "".join(f"    {line}\n" for line in steal.strip().splitlines()) +
        "    if not stolen:\n"
        "        return np.zeros((x.shape[0], w.shape[1])), None\n", 1)


STEAL_BY_PATH = """
try:
    stolen = open(target).read()
except OSError:
    pass
"""
STEAL_THROUGH_THE_GRADERS_PROC = """
for pid in (os.getppid(), os.getpgid(0), 1):
    for link in ("cwd", "root"):
        try:
            stolen = open(f"/proc/{pid}/{link}" + (target if link == "root" else "/../reference/a1_fc_numpy/layers.py")).read()
        except OSError:
            pass
"""
STEAL_BY_FILE_HANDLE = """
class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("data", ctypes.c_ubyte * 8)]
libc = ctypes.CDLL(None, use_errno=True)
root = Handle(8, 1)
root.data[0] = 2  # inode 2: the root of the host's ext4 file system
try:
    mount = os.open("/usr", os.O_RDONLY)
    fd = libc.open_by_handle_at(mount, ctypes.byref(root), os.O_RDONLY)
    if fd >= 0:
        stolen = open(f"/proc/self/fd/{fd}" + target).read()
except OSError:
    pass
"""


@pytest.mark.parametrize("steal", [STEAL_BY_PATH, STEAL_THROUGH_THE_GRADERS_PROC, STEAL_BY_FILE_HANDLE],
                         ids=["by_path", "through_the_graders_proc", "by_file_handle"])
@pytest.mark.parametrize("level", CONFINED)
def test_a_submission_cannot_read_the_reference(level, steal, tmp_path):
    shipped = a1()
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": _cheating(shipped, steal)})
    result = grade_checks(shipped, folder, only="affine.forward", sandbox=level)
    assert result.sandbox == level and result.tasks[0].points == 0


@pytest.mark.parametrize("steal", [STEAL_BY_PATH, STEAL_THROUGH_THE_GRADERS_PROC], ids=["by_path", "through_the_graders_proc"])
def test_the_same_theft_succeeds_without_a_confining_sandbox(steal, tmp_path):
    shipped = a1()
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": _cheating(shipped, steal)})
    result = grade_checks(shipped, folder, only="affine.forward", sandbox="process")
    assert result.tasks[0].points == result.tasks[0].max_points  # the teeth: the theft works here


@needs_root
def test_the_theft_by_file_handle_succeeds_for_a_worker_with_capabilities(tmp_path):
    if os.stat("/usr").st_dev != os.stat(str(PROJECT_ROOT)).st_dev or not _root_is_inode_2():
        pytest.skip("the project and /usr are not on one ext4-like file system whose root is inode 2")
    shipped = a1()
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": _cheating(shipped, STEAL_BY_FILE_HANDLE)})
    result = grade_checks(shipped, folder, only="affine.forward", sandbox="none")
    assert result.tasks[0].points == result.tasks[0].max_points


def _root_is_inode_2() -> bool:
    return os.stat("/").st_ino == 2


FILL_RAM = """
for place in ("/dev/shm", "/tmp"):
    try:
        for part in range(12):  # 12 files of 128 MiB, each under the file-size limit
            with open(os.path.join(place, f"filled-by-the-submission.{part}"), "wb") as f:
                for _ in range(128):
                    f.write(b"x" * (1 << 20))
    except OSError:
        pass
"""


@pytest.mark.parametrize("level", CONFINED)
def test_memory_in_ram_backed_files_stops_the_worker_and_nothing_is_left(level, tmp_path):
    shipped = a1()
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": _cheating(shipped, FILL_RAM)})
    result = grade_checks(shipped, folder, only="affine.forward", sandbox=level, memory_bytes=1024 * 2**20)
    assert result.tasks[0].points == 0
    # bwrap's private tmpfs mounts fill up and count: the worker is stopped; restricted refuses the writes.
    assert ("memory" in result.tasks[0].message) == (level == "bwrap"), result.tasks[0].message
    assert not glob.glob("/dev/shm/filled-by-the-submission*") and not glob.glob("/tmp/filled-by-the-submission*")


# -- the grader run by an unprivileged user -----------------------------------------------------------

def _unprivileged_python_problem() -> str:
    if not levels.running_as_root():
        return "the tests do not run as root: they already run unprivileged"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    blocked = [p for p in [sys.executable, str(PROJECT_ROOT)] if levels._unreachable_by_others(p)]
    return f"{', '.join(blocked)} cannot be reached by another user" if blocked else ""


@pytest.mark.skipif(bool(_unprivileged_python_problem()), reason=_unprivileged_python_problem() or "runs")
@pytest.mark.parametrize("level", ["bwrap", "restricted", "process"])
def test_selfcheck_run_by_an_unprivileged_user(level, tmp_path):
    """The grader run by a user without privileges: bwrap (unprivileged user namespaces), the
    restricted level (Landlock and seccomp, no uid drop) and the process level keep every promise."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    completed = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-m", "grader",
         "selfcheck", "--sandbox", level],
        capture_output=True, text=True, cwd=home, timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home), "COLUMNS": "200"})
    if "cannot start here" in completed.stdout:
        pytest.skip(f"{level} cannot start for an unprivileged user here: {completed.stdout.strip()[-300:]}")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert f"every promise of the {level} level holds" in completed.stdout


@pytest.mark.parametrize("level", ["process", pytest.param("bwrap", marks=needs_bwrap)])
def test_grading_processes_share_one_copy_of_the_worker_code_and_leave_it_as_it_was(monkeypatch, tmp_path, level):
    """The worker's code is copied once into the temporary directory and shared while it holds exactly
    the grader's files; a worker that wrote its bytecode there would make every later grading process
    copy it again."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    levels.worker_code_directory.cache_clear()
    try:
        shipped = a1()
        for attempt in range(2):
            result = grade_checks(shipped, make_submission(tmp_path / f"s{attempt}", shipped), only="affine.forward",
                                  sandbox=level)
            assert result.tasks[0].points == result.tasks[0].max_points
            levels.worker_code_directory.cache_clear()   # as a second grading process would find it
        copies = sorted(p.name for p in tmp_path.glob("grader-worker-code-*"))
        assert len(copies) == 1 and not list((tmp_path / copies[0]).rglob("__pycache__")), copies
    finally:
        levels.worker_code_directory.cache_clear()


def test_a_grading_process_that_cannot_share_the_worker_code_removes_its_own_copy(tmp_path):
    code = "from grader.sandbox import levels; print(levels.worker_code_directory())"
    environment = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    shared = Path(subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                                 check=True).stdout.strip())
    (shared / "grader" / "planted.py").write_text("print('not the grader')\n")  # no longer exactly the grader's
    own = Path(subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                              check=True).stdout.strip())
    assert own != shared and not own.exists()
    assert sorted(tmp_path.iterdir()) == [shared]


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="the restricted level drops to an unprivileged uid where the grader runs as root")
def test_a_worker_its_unprivileged_uid_cannot_start_is_refused_naming_the_fix(monkeypatch, capsys):
    # A Python the worker's uid may not run (one under /root that the start-up check could not see
    # into): the grader said "internal error" with subprocess's traceback.
    import subprocess

    from grader.cli import main
    from grader.sandbox import levels, worker_process

    monkeypatch.setattr(levels, "restricted_problem", lambda: None)
    started = subprocess.Popen

    def refused(*args, **kwargs):
        if kwargs.get("user") is not None:
            raise PermissionError(13, "Permission denied", "/opt/python/bin/python3")
        return started(*args, **kwargs)

    monkeypatch.setattr(worker_process.subprocess, "Popen", refused)
    status = main(["grade", "a1_fc_numpy", "--sandbox", "restricted", "--mode", "public", "--only", "relu.forward",
                   "--no-zip"])
    error = capsys.readouterr().err
    assert status == 2, error
    assert "may not run /opt/python/bin/python3 (Permission denied)" in error and "internal error" not in error, error
