"""Hostile and broken submissions of a1_fc_numpy, and what grading each one must and must not do.

Every case is the reference solution with one student file changed, the way the catalogue of common
mistakes describes a mistake: each edit's `old` occurs exactly once in the reference file and `new`
takes its place. A case's text may name things only known when it runs, as placeholders:
__MARKER__ (a string unique to the run, carried by every process the case starts), __PROJECT__ (the
project's root), __GRADER_CWD__ (the directory the grader runs in), __TCP_PORT__ and __UDP_PORT__
(ports the harness listens on).

`grade_case` grades one case end to end and observes what it did; `judge` turns the observation into
the problems found, one list per promise:

- score: no more than the submission's honest score (its targets earn nothing, with an allowed outcome)
- untouched: the tasks the case does not touch are graded normally, with full points
- report: every selected task has an outcome and a message, no check broke inside the grader, and
  the Gradescope results JSON builds, is valid JSON and adds up
- files: nothing changed under the project's grader/, reference/ and assignments/, nor in the
  directory the grader runs in
- processes: no process carrying the case's marker, and no worker, is left once grading returns
- contained: nothing reached the harness's sockets, and no protected file (the reference, the hidden
  checks, the fixtures) shows in the report or the submission's log
- time: grading took no longer than the case allows (a flood or a bomb must not slow the grader down)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import stat
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from grader.sandbox import selfcheck
from grader.assignment import Assignment
from grader.engine.grading import GradeOptions
from grader.report.gradescope import to_results_json, write_results_json
from grader.results import GradingResult, Outcome
from support import PROJECT_ROOT, a1, grade_checks, make_submission

SEED = 1234
SHORT_TIMEOUT_S = 3.0          # per request, for the cases that sleep, flood or grow
PROCESS_GRACE_S = 2.0          # how long a case's processes may take to disappear after grading
MAX_GRADING_S = 30.0           # a case that slows the grader down more than this fails
WATCHED = ("grader", "reference", "assignments")   # the project's folders no submission may change
LOCK_PATH = Path(tempfile.gettempdir()) / "grader-adversarial-project.lock"

AFFINE_LINE = "    out = x.reshape(x.shape[0], -1) @ w + b\n"
SGD_LINE = '    next_w = w - config["learning_rate"] * dw\n'
NUMPY_IMPORT = "import numpy as np\n"

# Globs over task ids (fnmatch has no alternation): a target and the untouched tasks beside it.
AFFINE_AND_SGD = "[ao][fp]*.[fs]*"          # affine.forward, optim.sgd, optim.sgd_momentum
FC_INIT_AND_SGD = "[fo][cp]*[.][is][ng]*"   # fc_net.init, optim.sgd, optim.sgd_momentum

FAILED = frozenset({Outcome.FAILED})
ERROR = frozenset({Outcome.ERROR})
TIMEOUT = frozenset({Outcome.TIMEOUT})
ANY_LOSS = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT})
# A child left running fails the call that started it (error); a daemon that already left the
# worker's tree is found and killed with the worker instead (the check then fails on its answer).
FAILED_OR_ERROR = frozenset({Outcome.FAILED, Outcome.ERROR})


@dataclass(frozen=True)
class Case:
    name: str
    kind: str                  # attack | fault
    file: str                  # the student file changed
    edits: tuple[tuple[str, str], ...]  # (old, new): a snippet of the reference file and its replacement
    targets: tuple[str, ...]   # tasks the change aims at: each must score 0
    untouched: tuple[str, ...]  # tasks it leaves alone: each must earn full points
    only: str                  # the glob selecting exactly targets + untouched
    outcomes: frozenset[Outcome]  # the outcomes a target may end with
    expected: str              # what should happen, in words
    call_timeout_s: Optional[float] = None  # None: the assignment's own limit
    aims_at_project: bool = False  # tries to change the project's files: runs alone (see `project_lock`)
    max_seconds: float = MAX_GRADING_S  # grading this submission may take no longer

    def text(self, reference_text: str, setting: "Setting") -> str:
        for old, new in self.edits:
            assert reference_text.count(old) == 1, f"{self.name}: {old!r} must occur once in {self.file}"
            reference_text = reference_text.replace(old, setting.fill(new))
        return reference_text


@dataclass(frozen=True)
class Setting:
    """What a case's placeholders stand for in one run."""

    marker: str
    project: Path
    grader_cwd: Path
    tcp_port: int
    udp_port: int

    def fill(self, text: str) -> str:
        for name, value in (("__MARKER__", self.marker), ("__PROJECT__", str(self.project)),
                            ("__GRADER_CWD__", str(self.grader_cwd)), ("__TCP_PORT__", str(self.tcp_port)),
                            ("__UDP_PORT__", str(self.udp_port))):
            text = text.replace(name, value)
        return text


# -- how a case changes a file ---------------------------------------------------------------------

def code(*blocks: str, indent: str = "") -> str:
    """The blocks, each dedented on its own, one after the other, indented by `indent`."""
    text = "".join(textwrap.dedent(block).strip("\n") + "\n" for block in blocks)
    return textwrap.indent(text, indent)


def replace(file: str, old: str, new: str) -> dict:
    return {"file": file, "edits": ((old, new),)}


def in_affine_forward(*blocks: str) -> dict:
    """Replaces the line that computes affine_forward's output; the blocks must set `out`."""
    return replace("layers.py", AFFINE_LINE, code(*blocks, indent="    "))


def in_sgd(*blocks: str) -> dict:
    """Replaces the line that computes sgd's update; the blocks must set `next_w`."""
    return replace("optim.py", SGD_LINE, code(*blocks, indent="    "))


def at_import(file: str, block: str) -> dict:
    """Runs the block when the module is imported, right after its `import numpy as np`."""
    return replace(file, NUMPY_IMPORT, NUMPY_IMPORT + code(block))


def patch_at_import_and_zero(file: str, patch: str, line: str = AFFINE_LINE,
                             zero: str = "out = np.zeros((x.shape[0], w.shape[1]))") -> dict:
    """Patches something when the module is imported, and has the targeted function return what a
    student who did not write it would (zeros), so that only the patch could make it pass."""
    return {"file": file, "edits": ((NUMPY_IMPORT, NUMPY_IMPORT + code(patch)), (line, f"    {zero}\n"))}


LAYERS_CASE = {"targets": ("affine.forward",), "untouched": ("optim.sgd", "optim.sgd_momentum"),
               "only": AFFINE_AND_SGD}
SGD_CASE = {"targets": ("optim.sgd",), "untouched": ("affine.forward", "optim.sgd_momentum"),
            "only": AFFINE_AND_SGD}
OPTIM_IMPORT_CASE = {"targets": ("optim.sgd", "optim.sgd_momentum"), "untouched": ("affine.forward",),
                     "only": AFFINE_AND_SGD}

# A few lines the attacks share: where the project is, seen from inside the worker.
FIND_PROJECT = """
    import os, sys
    roots = ["__PROJECT__"]
    grader_package = sys.modules.get("grader")
    if getattr(grader_package, "__file__", None):
        roots.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(grader_package.__file__))))
"""

REWRITE_FIRST_BYTE = """
    for root in roots:
        try:
            with open(os.path.join(root, RELATIVE), "r+b") as target:
                first = target.read(1)   # rewritten with itself: proves write access, keeps the content
                target.seek(0)
                target.write(first)
        except OSError:
            pass
    out = np.zeros((x.shape[0], w.shape[1]))
"""

STEAL_REFERENCE = """
    import importlib.util
    out = np.zeros((x.shape[0], w.shape[1]))
    for root in roots:
        try:
            spec = importlib.util.spec_from_file_location(
                "stolen_layers", os.path.join(root, "reference", "a1_fc_numpy", "layers.py"))
            stolen = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(stolen)
            out = stolen.affine_forward(x, w, b)[0]
            break
        except Exception:
            pass
"""


def _cases() -> tuple[Case, ...]:
    attacks = [
        Case("always_equal_object", "attack", **in_affine_forward("""
                class AlwaysEqual:
                    def __eq__(self, other): return True
                    def __ne__(self, other): return False
                    def __array__(self, dtype=None, copy=None): return np.zeros((x.shape[0], w.shape[1]))
                out = AlwaysEqual()
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="the object stays in the worker; the grader gets a handle, not an array"),
        Case("ndarray_subclass", "attack", **in_affine_forward("""
                class Agreeable(np.ndarray):
                    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
                    def __ne__(self, other): return np.zeros(np.shape(other), dtype=bool)
                    def __sub__(self, other): return np.zeros(np.shape(other))
                    def __rsub__(self, other): return np.zeros(np.shape(other))
                    def __abs__(self): return np.zeros(self.shape)
                out = np.full((x.shape[0], w.shape[1]), 7.0).view(Agreeable)
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="rebuilt as a base ndarray of its values (7.0), which are wrong"),
        Case("array_function_override", "attack", **in_affine_forward("""
                class Anything:
                    shape, ndim, dtype = (x.shape[0], w.shape[1]), 2, np.dtype(np.float64)
                    def __array_function__(self, func, types, args, kwargs): return True
                    def __eq__(self, other): return True
                out = Anything()
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="the override never runs in the grader; a handle fails the check"),
        Case("array_ufunc_override", "attack", **in_affine_forward("""
                class Anything:
                    __array_priority__ = 10**6
                    shape, ndim, dtype = (x.shape[0], w.shape[1]), 2, np.dtype(np.float64)
                    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs): return np.zeros(self.shape)
                    def __sub__(self, other): return np.zeros(self.shape)
                    def __rsub__(self, other): return np.zeros(self.shape)
                out = Anything()
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="the override never runs in the grader; a handle fails the check"),
        Case("monkeypatch_numpy", "attack", **patch_at_import_and_zero("layers.py", """
                np.allclose = lambda *args, **kwargs: True
                np.array_equal = lambda *args, **kwargs: True
                np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
                np.testing.assert_allclose = lambda *args, **kwargs: None
                np.testing.assert_array_equal = lambda *args, **kwargs: None
                np.testing.assert_array_almost_equal = lambda *args, **kwargs: None
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="NumPy is patched in the worker only; the grader compares with its own"),
        Case("monkeypatch_pytest_and_grader", "attack", **patch_at_import_and_zero("layers.py", """
                import pytest
                pytest.approx = lambda expected, *args, **kwargs: expected
                pytest.fail = lambda *args, **kwargs: None
                try:
                    import grader.checking.compare, grader.checking.gradcheck, grader.checking.shared_checks
                    grader.checking.compare.assert_close = lambda *args, **kwargs: None
                    grader.checking.shared_checks.assert_close = lambda *args, **kwargs: None
                    grader.checking.shared_checks.forward_matches = lambda *args, **kwargs: None
                    grader.checking.compare.CheckFailed = type("CheckFailed", (Exception,), {})
                except ImportError:
                    pass
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="pytest and the grader's modules are patched in the worker only"),
        Case("monkeypatch_time", "attack", **patch_at_import_and_zero("optim.py", """
                import time
                frozen = time.perf_counter()
                time.perf_counter = time.monotonic = lambda: frozen
                time.time = lambda: 0.0
                time.perf_counter_ns = time.monotonic_ns = lambda: 0
                time.sleep = lambda seconds: None
             """, line=SGD_LINE, zero="next_w = np.zeros_like(w)"), **SGD_CASE, outcomes=FAILED,
             expected="time is patched in the worker only; the grader keeps its own clock"),
        *(Case(f"answer_header_{name}", "attack", **in_affine_forward(f"""
                import sys
                wire = sys.modules["grader.boundary.wire"]
                honest = wire.write_message

                def forged(stream, header, buffers):  # this call's answer, then the honest writer again
                    wire.write_message = honest
                    body = b'{{"id": %d, "x": ' % header["id"] + {body} + b"}}"
                    stream.write(wire._FRAME.pack(wire.MAGIC, len(body), 0) + body)
                    stream.flush()

                wire.write_message = forged
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=ERROR,
             expected=f"a header {why} is a malformed answer, the submission's doing: not the grader's failure")
          for name, body, why in (("nested_too_deep", 'b"[" * 50000 + b"]" * 50000', "nested past the parser's limit"),
                                  ("huge_integer", 'b"9" * 5000', "with an integer of 5000 digits"))),
        Case("sys_exit_at_import", "attack", **at_import("layers.py", """
                import sys
                sys.exit(0)
             """), **LAYERS_CASE, outcomes=ERROR,
             expected="importing layers.py fails with SystemExit; optim.py is graded"),
        Case("os_exit_at_import", "attack", **at_import("optim.py", """
                import os
                os._exit(0)
             """), **OPTIM_IMPORT_CASE, outcomes=ERROR,
             expected="the worker dies importing optim.py; a fresh one grades layers.py"),
        Case("os_exit_mid_check", "attack", **in_affine_forward("""
                import os
                os._exit(0)
             """), **LAYERS_CASE, outcomes=ERROR,
             expected="the worker dies inside the call; a fresh one grades the other tasks"),
        Case("forged_results_on_stdout", "attack", **in_affine_forward("""
                import json, os, sys
                forged = json.dumps({"score": 1000.0, "execution_time": 1, "output": "all checks passed",
                                     "tests": [{"name": "affine.forward", "score": 2.0, "max_score": 2.0,
                                                "status": "passed"}]})
                print(forged)
                sys.stderr.write(forged + "\\n")
                os.write(1, (forged + "\\n").encode())
                os.write(2, (forged + "\\n").encode())
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="what the worker prints is a log, never a result"),
        Case("write_grader_source", "attack", **in_affine_forward(
                FIND_PROJECT, 'RELATIVE = os.path.join("grader", "checking", "compare.py")', REWRITE_FIRST_BYTE),
             **LAYERS_CASE, outcomes=FAILED, aims_at_project=True,
             expected="grader/checking/compare.py cannot be written from the worker"),
        Case("remount_and_write_grader_source", "attack", **in_affine_forward(
                FIND_PROJECT, """
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                for root in roots:   # a read-only bind made writable again (MS_REMOUNT | MS_BIND, no MS_RDONLY)
                    for place in (root, os.path.join(root, "grader")):
                        libc.mount(None, place.encode(), None, 32 | 4096, None)
                RELATIVE = os.path.join("grader", "checking", "compare.py")
                """, REWRITE_FIRST_BYTE),
             **LAYERS_CASE, outcomes=FAILED, aims_at_project=True,
             expected="no bind can be remounted writable, and the grader's source is not there to write"),
        Case("write_reference_source", "attack", **in_affine_forward(
                FIND_PROJECT, 'RELATIVE = os.path.join("reference", "a1_fc_numpy", "layers.py")',
                REWRITE_FIRST_BYTE),
             **LAYERS_CASE, outcomes=FAILED, aims_at_project=True,
             expected="reference/a1_fc_numpy/layers.py cannot be written from the worker"),
        Case("write_grader_cwd_and_results_json", "attack", **in_affine_forward("""
                import json, os
                places = ["__GRADER_CWD__"]
                try:
                    places.append(os.readlink(f"/proc/{os.getppid()}/cwd"))
                except OSError:
                    pass
                forged = json.dumps({"score": 1000.0, "tests": []})
                for place in places:
                    for name, text in (("planted-__MARKER__.txt", "planted"), ("results.json", forged)):
                        try:
                            with open(os.path.join(place, name), "w") as planted:
                                planted.write(text)
                        except OSError:
                            pass
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="nothing appears in the directory the grader runs in"),
        Case("read_reference_via_grader_package", "attack", **in_affine_forward(
                FIND_PROJECT.replace('roots = ["__PROJECT__"]', "roots = []"), STEAL_REFERENCE),
             **LAYERS_CASE, outcomes=FAILED,
             expected="reference/ is out of the worker's reach (found from the grader package's path)"),
        Case("read_reference_by_absolute_path", "attack", **in_affine_forward(
                'import os\nroots = ["__PROJECT__"]', STEAL_REFERENCE), **LAYERS_CASE, outcomes=FAILED,
             expected="reference/ is out of the worker's reach (absolute path given)"),
        Case("read_reference_through_the_graders_proc", "attack", **in_affine_forward("""
                import os
                roots = []
                for pid in (os.getppid(), os.getpgid(0), 1):
                    roots.append(f"/proc/{pid}/cwd")
                    roots.append(f"/proc/{pid}/root__PROJECT__")
             """, STEAL_REFERENCE), **LAYERS_CASE, outcomes=FAILED,
             expected="the grader's /proc entries (its working directory, its root) lead nowhere"),
        Case("read_reference_by_file_handle", "attack", **in_affine_forward("""
                import ctypes, os
                class Handle(ctypes.Structure):
                    _fields_ = [("size", ctypes.c_uint), ("kind", ctypes.c_int), ("data", ctypes.c_ubyte * 8)]
                libc = ctypes.CDLL(None, use_errno=True)
                host_root = Handle(8, 1)
                host_root.data[0] = 2   # inode 2, generation 0: the root directory of an ext4 file system
                roots = []
                for mounted in ("/usr", "/tmp", os.getcwd()):
                    try:
                        fd = libc.open_by_handle_at(os.open(mounted, os.O_RDONLY), ctypes.byref(host_root), 0)
                    except OSError:
                        continue
                    if fd >= 0:
                        roots.append(f"/proc/self/fd/{fd}__PROJECT__")
             """, STEAL_REFERENCE), **LAYERS_CASE, outcomes=FAILED,
             expected="open_by_handle_at cannot reach the host's file system"),
        Case("fill_ram_backed_files", "attack", **in_affine_forward("""
                import os
                for place in ("/dev/shm", "/tmp"):
                    try:
                        for part in range(24):   # 24 x 128 MiB = 3 GiB per place, each under the file-size limit
                            with open(os.path.join(place, f"__MARKER__.{part}"), "wb") as f:
                                for _ in range(128):
                                    f.write(b"x" * 2**20)
                    except OSError:
                        pass
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=ANY_LOSS, call_timeout_s=3 * SHORT_TIMEOUT_S,
             expected="files in RAM-backed file systems count toward the memory limit and do not outlive the worker"),
        Case("leak_hidden_checks_and_fixtures", "attack", **in_affine_forward("""
                import hashlib, os, sys
                starts = [os.path.dirname(os.path.abspath(__file__)), os.getcwd(), *sys.path]
                try:
                    starts.append(os.readlink(f"/proc/{os.getppid()}/cwd"))
                except OSError:
                    pass
                wanted = [os.path.join("reference", "a1_fc_numpy", "hidden_checks", "test_hidden_layers.py"),
                          os.path.join("assignments", "a1_fc_numpy", "fixtures", "test_layers.fixtures")]
                stolen, seen = set(), set()
                for start in starts:
                    path = os.path.abspath(start or ".")
                    while path not in seen:
                        seen.add(path)
                        for relative in wanted:
                            try:
                                with open(os.path.join(path, relative), "rb") as found:
                                    stolen.add(hashlib.sha256(found.read()).hexdigest())
                            except OSError:
                                pass
                        path = os.path.dirname(path)
                print("stolen:", *sorted(stolen))
                raise RuntimeError("stolen: " + " ".join(sorted(stolen)))
             """), **LAYERS_CASE, outcomes=ERROR,
             expected="hidden checks and fixtures cannot be read, so nothing of them reaches the report"),
        Case("tcp_connect", "attack", **in_affine_forward("""
                import socket
                try:
                    with socket.create_connection(("127.0.0.1", __TCP_PORT__), timeout=2) as connection:
                        connection.sendall(b"__MARKER__")
                except OSError:
                    pass
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="no TCP connection leaves the worker"),
        Case("udp_sendto", "attack", **in_affine_forward("""
                import socket
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                        datagram.sendto(b"__MARKER__", ("127.0.0.1", __UDP_PORT__))
                except OSError:
                    pass
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED,
             expected="no UDP datagram leaves the worker"),
        Case("fork_bomb", "attack", **in_affine_forward("""
                import os, time
                parent = os.getpid()
                for _ in range(7):   # 2**7 = 128 processes at most, each sleeping 60 s: bounded
                    try:
                        os.fork()
                    except OSError:
                        break
                if os.getpid() != parent:
                    try:
                        os.execv("/bin/sleep", ["__MARKER__", "60"])
                    finally:
                        os._exit(0)
                time.sleep(1)   # the call stays busy, as a fork bomb's parent does
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=ANY_LOSS, call_timeout_s=SHORT_TIMEOUT_S,
             expected="the worker is stopped with all its forks (process count or memory)"),
        Case("fork_bomb_left_running", "attack", **in_affine_forward("""
                import os
                parent = os.getpid()
                for _ in range(7):   # 2**7 = 128 processes at most, each sleeping 60 s: bounded
                    try:
                        os.fork()
                    except OSError:
                        break
                if os.getpid() != parent:
                    try:
                        os.execv("/bin/sleep", ["__MARKER__", "60"])
                    finally:
                        os._exit(0)
                out = np.zeros((x.shape[0], w.shape[1]))   # returns at once, the forks still sleeping
             """), **LAYERS_CASE, outcomes=ANY_LOSS, call_timeout_s=SHORT_TIMEOUT_S,
             expected="the forks are stopped; the task that started them pays, not the next one"),
        Case("memory_bomb", "attack", **in_affine_forward("""
                hoard = []
                for _ in range(32):   # 32 x 256 MiB = 8 GiB
                    hoard.append(np.ones(32 * 2**20))
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=ANY_LOSS, call_timeout_s=SHORT_TIMEOUT_S,
             expected="the worker is stopped at its memory limit"),
        Case("output_flood_1gb", "attack", **in_affine_forward("""
                import sys
                line = "x" * (2**20 - 1)
                for _ in range(1024):   # 1 GiB, newlines included
                    print(line)
                sys.stdout.flush()
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=ANY_LOSS, call_timeout_s=SHORT_TIMEOUT_S, max_seconds=15.0,
             expected="the output is capped and drained without slowing the grader"),
        Case("sleep_past_limit", "attack", **in_affine_forward("""
                import time
                time.sleep(1000)
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=TIMEOUT, call_timeout_s=SHORT_TIMEOUT_S,
             expected="the call times out and the worker is killed"),
        Case("child_outlives_worker", "attack", **in_affine_forward("""
                import subprocess
                subprocess.Popen(["__MARKER__", "300"], executable="/bin/sleep", start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED_OR_ERROR, call_timeout_s=SHORT_TIMEOUT_S,
             expected="a child in a session of its own does not outlive the worker"),
        Case("double_fork_daemon", "attack", **in_affine_forward("""
                import os
                child = os.fork()
                if child == 0:
                    os.setsid()
                    if os.fork() == 0:
                        try:
                            null = os.open(os.devnull, os.O_RDWR)
                            for fd in (0, 1, 2):
                                os.dup2(null, fd)
                            os.closerange(3, 1024)
                            os.execv("/bin/sleep", ["__MARKER__", "300"])
                        finally:
                            os._exit(0)
                    os._exit(0)
                os.waitpid(child, 0)
                out = np.zeros((x.shape[0], w.shape[1]))
             """), **LAYERS_CASE, outcomes=FAILED_OR_ERROR, call_timeout_s=SHORT_TIMEOUT_S,
             expected="a daemon does not outlive the worker"),
    ]
    faults = [
        Case("syntax_error", "fault", **replace("layers.py", "def affine_forward(x, w, b):",
                                                "def affine_forward(x, w, b)"), **LAYERS_CASE, outcomes=ERROR,
             expected="layers.py cannot be imported: error with the syntax error's message"),
        Case("import_error", "fault", **at_import("layers.py", "import a_module_that_does_not_exist\n"),
             **LAYERS_CASE, outcomes=ERROR, expected="layers.py cannot be imported: ModuleNotFoundError"),
        Case("missing_function", "fault", **replace("layers.py", "def affine_forward(x, w, b):",
                                                    "def affine_forward_renamed(x, w, b):"),
             **LAYERS_CASE, outcomes=ERROR, expected="AttributeError: layers has no affine_forward"),
        Case("wrong_shape", "fault", **in_affine_forward("out = (x.reshape(x.shape[0], -1) @ w + b).T"),
             **LAYERS_CASE, outcomes=FAILED, expected="failed: expected shape (N, M), got (M, N)"),
        Case("wrong_dtype", "fault", **replace("models.py", "self.params[name] = value.astype(dtype)",
                                               "self.params[name] = value.astype(np.float32)"),
             targets=("fc_net.init",), untouched=("optim.sgd", "optim.sgd_momentum"), only=FC_INIT_AND_SGD,
             outcomes=FAILED,
             expected="failed: float32 parameters where the model asked for float64"),
        Case("nan_output", "fault", **in_affine_forward("out = np.full((x.shape[0], w.shape[1]), np.nan)"),
             **LAYERS_CASE, outcomes=FAILED, expected="failed: elements are NaN"),
        Case("exception", "fault", **in_sgd('raise ValueError("my own bug")'), **SGD_CASE, outcomes=ERROR,
             expected="error: your code raised ValueError"),
        Case("segfault_abort", "fault", **in_affine_forward("""
                import os
                os.abort()
             """), **LAYERS_CASE, outcomes=ERROR, expected="the worker is killed by SIGABRT"),
        Case("segfault_null_pointer", "fault", **in_affine_forward("""
                import ctypes
                ctypes.string_at(0)
             """), **LAYERS_CASE, outcomes=ERROR, expected="the worker is killed by SIGSEGV"),
        Case("recursion_error", "fault", **in_affine_forward("""
                def deeper(n):
                    return deeper(n + 1)
                out = deeper(0)
             """), **LAYERS_CASE, outcomes=ERROR, call_timeout_s=SHORT_TIMEOUT_S,
             expected="error: your code raised RecursionError"),
        Case("c_stack_overflow", "fault", **in_affine_forward("""
                import sys
                sys.setrecursionlimit(10**6)
                def deeper(n):   # through C (map, sum), so the C stack overflows before the limit
                    return sum(map(deeper, [n + 1]))
                out = deeper(0)
             """), **LAYERS_CASE, outcomes=ERROR, call_timeout_s=SHORT_TIMEOUT_S,
             expected="the worker dies of the overflow (SIGSEGV) or raises; the grader goes on"),
    ]
    return tuple(attacks + faults)


CASES = _cases()


def case_named(name: str) -> Case:
    return next(case for case in CASES if case.name == name)


# -- grading one case ------------------------------------------------------------------------------

def resolved_level(level: str) -> tuple[Optional[str], str]:
    """The isolation level official grading ends up with when asked for `level` ("default": what
    GradeOptions chooses), or None with the reason it cannot run here."""
    requested = GradeOptions().sandbox if level == "default" else level
    try:
        return selfcheck.choose_level(requested, "official"), ""
    except selfcheck.SandboxRefused as exc:
        return None, str(exc)


def grade_options(case: Case, level: str) -> dict:
    """GradeOptions for a case at an isolation level; "default" leaves the level to GradeOptions."""
    options: dict = {"call_timeout_s": case.call_timeout_s} if case.call_timeout_s else {}
    return options | ({"sandbox": level} if level != "default" else {})


@dataclass
class Observation:
    case: Case
    level: str
    result: Optional[GradingResult]
    grader_error: str              # the traceback of an exception out of grading, if one escaped
    seconds: float
    selected: tuple[str, ...]      # the task ids the case's glob selects
    changed_files: list[str]       # under the watched folders and the grader's working directory
    leftover_processes: list[str]  # processes carrying the marker, as they were after the grace time
    leftover_workers: list[str]    # children of the grader still alive after grading
    network: list[str]             # what reached the harness's sockets
    report_json: str = ""          # the Gradescope results JSON as written, when it could be
    report_error: str = ""         # why it could not be written or read back
    leaked: list[str] = field(default_factory=list)  # protected files whose digest shows in the report


def grade_case(case: Case, level: str, workdir: Path, assignment: Optional[Assignment] = None) -> Observation:
    """Grades the case's submission from a fresh working directory under `workdir` and observes the
    project, that directory, the processes and the sockets around it. Processes left carrying the
    case's marker are killed afterwards, whatever the observation says."""
    assignment = assignment or a1()
    marker = f"grader-adversarial-{case.name}-{secrets.token_hex(6)}"
    grader_cwd = workdir / "cwd"
    grader_cwd.mkdir(parents=True)
    selected = tuple(task.id for task in assignment.spec.select(case.only))
    try:
        with Listeners() as listeners, project_lock(exclusive=case.aims_at_project), working_directory(grader_cwd):
            setting = Setting(marker, PROJECT_ROOT, grader_cwd, listeners.tcp_port, listeners.udp_port)
            reference_text = (assignment.reference_directory / case.file).read_text()
            folder = make_submission(workdir / "submission", assignment, "reference",
                                     {case.file: case.text(reference_text, setting)})
            watched = [PROJECT_ROOT / name for name in WATCHED] + [grader_cwd]
            before = snapshot(watched)
            start = time.perf_counter()
            result, grader_error = None, ""
            try:
                result = grade_checks(assignment, folder, only=case.only, seed=SEED,
                                      **grade_options(case, level))
            except Exception:  # noqa: BLE001 - an exception out of grading is what the judge reports
                grader_error = traceback.format_exc()
            seconds = time.perf_counter() - start
            leftovers = wait_until_gone(marker, PROCESS_GRACE_S)
            workers = wait_for_children(PROCESS_GRACE_S)
            after = snapshot(watched)
            network = listeners.received()
            left_in_shared_places = files_carrying(marker)
    finally:
        kill_processes_carrying(marker)
        remove_files_carrying(marker)
    observation = Observation(case, level, result, grader_error, seconds, selected,
                              compare_snapshots(before, after) + left_in_shared_places, leftovers, workers, network)
    if result is not None:
        try:
            path = workdir / "report" / "results.json"
            write_results_json(result, path)
            observation.report_json = path.read_text()
        except Exception:  # noqa: BLE001 - a report that cannot be written is what the judge reports
            observation.report_error = traceback.format_exc()
        observation.leaked = leaked_files(observation.report_json + result.submission_log
                                          + "".join(t.message + t.detail for t in result.tasks), assignment)
    return observation


def files_carrying(marker: str) -> list[str]:
    """Files a case left in the machine's shared temporary places (RAM-backed or not)."""
    return [f"left behind: {path}" for place in ("/dev/shm", tempfile.gettempdir(), "/var/tmp")
            for path in sorted(Path(place).glob(f"{marker}*"))]


def remove_files_carrying(marker: str) -> None:
    for place in ("/dev/shm", tempfile.gettempdir(), "/var/tmp"):
        for path in Path(place).glob(f"{marker}*"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def project_lock(exclusive: bool) -> Iterator[None]:
    """Cases that try to change the project's files run alone: a shared lock for every other case
    (in any process of a parallel run) keeps such a write from showing in their snapshots."""
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Listeners:
    """A TCP and a UDP socket on 127.0.0.1 that no submission should be able to reach."""

    def __enter__(self) -> "Listeners":
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.tcp.close()
        self.udp.close()

    def received(self) -> list[str]:
        """What reached the sockets: connections are queued by the kernel, so none is missed."""
        found = []
        while True:
            try:
                connection, peer = self.tcp.accept()
            except BlockingIOError:
                break
            with connection:
                connection.settimeout(0.5)
                try:
                    data = connection.recv(4096)
                except OSError:
                    data = b""
            found.append(f"TCP connection from {peer[0]}:{peer[1]} sent {data[:60]!r}")
        while True:
            try:
                data, peer = self.udp.recvfrom(4096)
            except BlockingIOError:
                break
            found.append(f"UDP datagram from {peer[0]}:{peer[1]}: {data[:60]!r}")
        return found


def snapshot(roots: list[Path]) -> dict[str, tuple]:
    """Every file under the roots with its size, times and digest; folders by name only (their times
    change whenever Python caches bytecode, which __pycache__ is left out for)."""
    state: dict[str, tuple] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    state[str(path)] = (info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                                        hashlib.sha256(path.read_bytes()).hexdigest())
                else:
                    state[str(path)] = (stat.filemode(info.st_mode),)
            except FileNotFoundError:
                continue
    return state


def compare_snapshots(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    changes = [f"new: {path}" for path in sorted(after.keys() - before.keys())]
    changes += [f"removed: {path}" for path in sorted(before.keys() - after.keys())]
    changes += [f"changed: {path}" for path in sorted(before.keys() & after.keys()) if before[path] != after[path]]
    return changes


def processes_carrying(marker: str) -> dict[int, str]:
    """Live processes whose command line holds the marker (a zombie's is empty)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in command:
            found[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def wait_until_gone(marker: str, grace_s: float) -> list[str]:
    deadline = time.monotonic() + grace_s
    while (found := processes_carrying(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"{pid}: {command}" for pid, command in sorted(found.items())]


def kill_processes_carrying(marker: str) -> None:
    for pid in processes_carrying(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_for_children(grace_s: float) -> list[str]:
    deadline = time.monotonic() + grace_s
    while (found := live_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def live_children() -> list[str]:
    """Processes this one started that still run (grading must have stopped every worker)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = text.rsplit(")", 1)[1].split()[:2]
        if int(parent) == me and state not in ("Z", "X"):
            found.append(f"{entry.name}: {text.split(' ', 1)[1].rsplit(')', 1)[0]})")
    return found


def protected_files(assignment: Assignment) -> list[Path]:
    """What a submission must not see: the reference (with its hidden checks) and the fixtures."""
    assert assignment.reference_directory is not None
    roots = [assignment.reference_directory, assignment.fixtures_directory]
    return [path for root in roots for path in sorted(root.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts]


def leaked_files(text: str, assignment: Assignment) -> list[str]:
    return [str(path.relative_to(PROJECT_ROOT)) for path in protected_files(assignment)
            if hashlib.sha256(path.read_bytes()).hexdigest() in text]


# -- judging -----------------------------------------------------------------------------------------

ASPECTS = ("score", "untouched", "report", "files", "processes", "contained", "time")


@dataclass(frozen=True)
class Verdict:
    """The problems found, per promise; a promise holds when its list is empty."""

    score: list[str]
    untouched: list[str]
    report: list[str]
    files: list[str]
    processes: list[str]
    contained: list[str]
    time: list[str]

    @property
    def ok(self) -> bool:
        return not any(self.problems(aspect) for aspect in ASPECTS)

    def problems(self, aspect: str) -> list[str]:
        return getattr(self, aspect)

    def failing(self) -> tuple[str, ...]:
        return tuple(aspect for aspect in ASPECTS if self.problems(aspect))

    def describe(self) -> str:
        return "\n".join(f"{aspect}: {problem}" for aspect in ASPECTS for problem in self.problems(aspect))


def honest_score(case: Case, assignment: Assignment) -> float:
    """What the submission earns without the attack or the fault: its untouched tasks' points."""
    return sum(assignment.spec.task(task_id).points for task_id in case.untouched)


def judge(observation: Observation, assignment: Optional[Assignment] = None) -> Verdict:
    assignment = assignment or a1()
    case, result = observation.case, observation.result
    if result is None:
        crashed = [f"grading raised:\n{observation.grader_error}"]
        return Verdict(crashed, crashed, crashed, _files(observation), _processes(observation),
                       observation.network, _time(observation))
    tasks = {task.task_id: task for task in result.tasks}
    score = []
    if result.score > honest_score(case, assignment):
        score.append(f"score {result.score:g} is above the honest {honest_score(case, assignment):g}")
    for task_id in case.targets:
        task = tasks.get(task_id)
        if task is not None and (task.points != 0 or task.outcome not in case.outcomes):
            allowed = "/".join(sorted(o.value for o in case.outcomes))
            score.append(f"{task_id}: {task.points:g} points, {task.outcome.value} (expected 0, {allowed}): "
                         f"{task.message[:200]}")
    untouched = [f"{task_id}: {task.points:g}/{task.max_points:g}, {task.outcome.value}: {task.message[:200]}"
                 for task_id in case.untouched
                 if (task := tasks.get(task_id)) is not None
                 and (task.outcome is not Outcome.PASSED or task.points != task.max_points)]
    untouched += [f"{task_id}: not in the result" for task_id in case.untouched if task_id not in tasks]
    return Verdict(score, untouched, _report(observation, result), _files(observation), _processes(observation),
                   observation.network + [f"{path} shows in the report" for path in observation.leaked],
                   _time(observation))


def _report(observation: Observation, result: GradingResult) -> list[str]:
    problems = []
    if set(observation.case.targets) | set(observation.case.untouched) != set(observation.selected):
        problems.append(f"the glob {observation.case.only!r} selects {observation.selected}")
    ids = [task.task_id for task in result.tasks]
    if sorted(ids) != sorted(observation.selected):
        problems.append(f"the result holds {ids}, not the selected {list(observation.selected)}")
    for task in result.tasks:
        if not isinstance(task.outcome, Outcome) or not task.message.strip():
            problems.append(f"{task.task_id}: outcome {task.outcome!r} with message {task.message!r}")
        if not 0 <= task.points <= task.max_points:
            problems.append(f"{task.task_id}: {task.points} points of {task.max_points}")
        for check in task.checks:
            if "the check itself failed" in check.message:
                problems.append(f"{check.name}: the grader broke: {check.message[:300]}")
    if observation.report_error:
        return problems + [f"the results JSON could not be written: {observation.report_error}"]
    try:
        report = json.loads(observation.report_json)
        json.dumps(to_results_json(result), allow_nan=False)
    except ValueError as error:
        return problems + [f"the results JSON is not valid JSON: {error}"]
    tests = report.get("tests", [])
    if len(tests) != len(observation.selected):
        problems.append(f"the results JSON has {len(tests)} tests for {len(observation.selected)} tasks")
    if abs(report.get("score", -1) - sum(test.get("score", 0) for test in tests)) > 1e-9:
        problems.append(f"the results JSON's score {report.get('score')} is not the sum of its tests'")
    for test in tests:
        missing = {"name", "score", "max_score", "status", "output", "extra_data"} - test.keys()
        if missing or test["status"] not in ("passed", "failed") or not test["output"]:
            problems.append(f"a malformed test in the results JSON (missing {sorted(missing)}): {test}"[:300])
    return problems


def _files(observation: Observation) -> list[str]:
    return observation.changed_files


def _processes(observation: Observation) -> list[str]:
    return ([f"left running: {process}" for process in observation.leftover_processes]
            + [f"a worker still runs: {process}" for process in observation.leftover_workers])


def _time(observation: Observation) -> list[str]:
    limit = observation.case.max_seconds
    if observation.seconds <= limit:
        return []
    return [f"grading took {observation.seconds:.1f} s, more than {limit:g} s"]
