"""A worker killed by a signal the grader did not send (an operator's `kill`, the kernel's out-of-memory
killer) is the machine's failure, not the student's: the work is done again once in a fresh worker,
and a second loss is an error that names both and does not blame the code. The grader's own kills
(timeout, memory and process watches) and the code's own crashes stay the student's, and are not
retried.

The tests kill workers from this process, as an operator would: the student's code writes its pid
and start time to `worker.pid` in its working directory (the submission's scratch directory) and
waits, and a thread here finds that process among this process's descendants and SIGKILLs it. Under
bubblewrap the worker sees its pid in its own pid namespace, so the thread matches the innermost pid
of each descendant's `NSpid` and its start time.
"""

import functools
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

import grader.engine.grading
import grader.engine.submission
import grader.sandbox.worker_process
from grader.results import Outcome
from grader.sandbox.worker_process import Limits, WorkerProcess, process_tree, start_time
from grader.sandbox.remote import WorkerSession
from support import PROJECT_ROOT, a1, grade_checks, grade_folder, make_submission

# Appended to a student file: `_announce(...)` logs each call to calls.txt and, on the first `kills`
# calls, tells the test which process to kill and waits for it.
ANNOUNCE = '''

def _announce(kills):
    import os, time
    from pathlib import Path
    with open("calls.txt", "a") as calls:
        calls.write("call\\n")
    if len(Path("calls.txt").read_text().splitlines()) > kills:
        return
    started = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    Path("worker.pid.new").write_text(f"{os.getpid()} {started}")
    os.replace("worker.pid.new", "worker.pid")
    time.sleep(20)
    raise RuntimeError("the test never killed this worker")
'''

RETRY_NOTE = "the first worker was lost to SIGKILL, a signal the grader did not send"


def wrap_function(text: str, function: str, prologue: str) -> str:
    """`text` (a student file) with `function` replaced by one that runs `prologue` first."""
    return text + ANNOUNCE + f'''

_original_{function} = {function}


def {function}(*args, **kwargs):
{textwrap.indent(textwrap.dedent(prologue).strip(), "    ")}
    return _original_{function}(*args, **kwargs)
'''


@pytest.fixture(scope="module")
def assignment():
    return a1()


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """The submissions' scratch directories (their workers' working directories) are made under one
    folder the test watches, and kept after grading so the test can count the calls logged there."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(grader.engine.submission, "make_scratch_dir",
                        lambda: Path(tempfile.mkdtemp(prefix="grader-scratch-", dir=root)))
    monkeypatch.setattr(grader.engine.submission, "remove_scratch_dir", lambda path: None)
    renew = grader.engine.submission.PreparedSubmission.renew

    def renew_keeping_the_log(self):  # a training task renews the scratch before each try
        log = self.scratch / "calls.txt"
        kept = log.read_bytes() if log.exists() else None
        renew(self)
        if kept is not None:
            log.write_bytes(kept)

    monkeypatch.setattr(grader.engine.submission.PreparedSubmission, "renew", renew_keeping_the_log)
    return root


def calls_logged(scratch_root: Path) -> int:
    (scratch,) = scratch_root.iterdir()
    return len((scratch / "calls.txt").read_text().splitlines())


# The machine's count of out-of-memory kills as the grader reads it (grader.sandbox.worker_process
# .oom_kills): an OutsideKiller that stands for the kernel's OOM killer counts its kills there.
OOM_KILLS = [0]


@pytest.fixture(autouse=True)
def machine_oom_count(monkeypatch):
    OOM_KILLS[0] = 0
    monkeypatch.setattr(grader.sandbox.worker_process, "oom_kills", lambda: OOM_KILLS[0])


class OutsideKiller:
    """A thread that SIGKILLs each worker announcing itself in a `worker.pid` under `root`, once: the
    machine's out-of-memory killer (counted as one), or, with `oom=False`, an operator (not counted)."""

    def __init__(self, root: Path, oom: bool = True):
        self.root = root
        self.oom = oom
        self.killed: list[int] = []
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "OutsideKiller":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            for announcement in self.root.glob("*/worker.pid"):
                text = announcement.read_text()
                if text in self._done:
                    continue
                pid = self._host_pid(*text.split())
                if pid is not None:
                    if self.oom:
                        OOM_KILLS[0] += 1
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                    self._done.add(text)

    @staticmethod
    def _host_pid(inner_pid: str, started: str) -> int | None:
        """The descendant of this process that has `inner_pid` in its own pid namespace and started
        at `started`: only a worker this test started is ever killed."""
        for pid in process_tree(os.getpid())[1:]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            namespaced = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if namespaced and namespaced[-1] == inner_pid and start_time(pid) == started:
                return pid
        return None


def grade_affine_forward(assignment, tmp_path, layers_text, call_timeout_s=20.0, sandbox="auto"):
    folder = make_submission(tmp_path / "submission", assignment, "reference", {"layers.py": layers_text})
    result = grade_checks(assignment, folder, only="affine.forward", call_timeout_s=call_timeout_s, sandbox=sandbox)
    (task,) = result.tasks
    return task


def affine_forward_that(assignment, prologue: str) -> str:
    return wrap_function((assignment.reference_directory / "layers.py").read_text(), "affine_forward", prologue)


# -- killed from outside: tried again --------------------------------------------------------------------

@pytest.mark.parametrize("sandbox", ["auto", "process"])  # auto: bubblewrap where it works, as official grading
def test_a_check_whose_worker_is_killed_from_outside_is_run_again_and_scores(assignment, tmp_path, scratch_root,
                                                                             sandbox):
    with OutsideKiller(scratch_root) as killer:
        task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, "_announce(kills=1)"),
                                    sandbox=sandbox)
    assert len(killer.killed) == 1
    assert task.outcome is Outcome.PASSED and task.points == task.max_points, task.message
    retried = [c for c in task.checks if any(RETRY_NOTE in n for n in c.notes)]
    assert len(retried) == 1, [c.notes for c in task.checks]
    assert "the check was run again from the start" in retried[0].notes[0]
    assert calls_logged(scratch_root) == len(task.checks) + 1  # the lost call, then one per check


def test_a_check_whose_worker_is_killed_twice_is_an_error_that_names_both_and_blames_nobody(
        assignment, tmp_path, scratch_root):
    with OutsideKiller(scratch_root) as killer:
        task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, "_announce(kills=2)"))
    assert len(killer.killed) == 2
    assert task.outcome is Outcome.ERROR and task.points == 0
    (lost,) = [c for c in task.checks if c.outcome is not Outcome.PASSED]
    assert lost.outcome is Outcome.ERROR
    assert "lost twice, to SIGKILL and SIGKILL" in lost.message
    assert "not your code's error" in lost.message and "regrade" in lost.message
    assert "os._exit" not in lost.message and "os._exit" not in task.detail
    assert task.message == lost.message


def test_an_import_killed_from_outside_is_imported_again(assignment, tmp_path, scratch_root):
    """A module whose import was lost is not remembered as broken: the retry imports it again."""
    layers = (assignment.reference_directory / "layers.py").read_text() + ANNOUNCE + "\n_announce(kills=1)\n"
    with OutsideKiller(scratch_root) as killer:
        task = grade_affine_forward(assignment, tmp_path, layers)
    assert len(killer.killed) == 1
    assert task.outcome is Outcome.PASSED, task.message
    assert sum(any(RETRY_NOTE in n for n in c.notes) for c in task.checks) == 1


def test_a_worker_killed_by_an_operator_is_the_codes_end_and_says_to_grade_again(assignment, tmp_path,
                                                                              scratch_root):
    # Nothing on the machine tells an operator's SIGKILL from the code's own: without an out-of-memory
    # kill meanwhile, it is not run again, and the message says what an operator should do.
    with OutsideKiller(scratch_root, oom=False) as killer:
        task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, "_announce(kills=1)"))
    assert len(killer.killed) == 1
    assert task.outcome is Outcome.ERROR and task.points < task.max_points
    (ended,) = [c for c in task.checks if c.outcome is not Outcome.PASSED]
    assert "killed nothing meanwhile, so it is the code's own end" in ended.message, ended.message
    assert "if an operator killed the worker, grade the submission again" in ended.message
    assert not any(RETRY_NOTE in n for c in task.checks for n in c.notes)


def test_a_check_run_again_after_a_loss_sends_its_seed_again(assignment, tmp_path, scratch_root, monkeypatch):
    """A check's seed travels with its first request; the run again from the start, in a fresh worker,
    sends the same seed with its own first request, so it draws what the lost run drew."""
    sent = []
    real_exchange = WorkerProcess.exchange

    def exchange(worker, operation, buffers, timeout_s, **options):
        if options.get("seed") is not None:
            sent.append(options["seed"])
        return real_exchange(worker, operation, buffers, timeout_s, **options)

    monkeypatch.setattr(WorkerProcess, "exchange", exchange)
    with OutsideKiller(scratch_root) as killer:
        task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, "_announce(kills=1)"))
    assert len(killer.killed) == 1 and task.outcome is Outcome.PASSED, task.message
    assert len(sent) == len(task.checks) + 1 and len(set(sent)) == len(task.checks)


def test_a_training_task_whose_worker_is_killed_from_outside_is_trained_again(assignment, tmp_path, scratch_root):
    models = wrap_function((assignment.reference_directory / "models.py").read_text(),
                           "create_overfit_solver_instance", "_announce(kills=1)")
    folder = make_submission(tmp_path / "submission", assignment, "reference", {"models.py": models})
    with OutsideKiller(scratch_root) as killer:
        (task,) = grade_folder(assignment, folder, only="fc_net.overfit", data="synthetic", device="cpu").tasks
    assert len(killer.killed) == 1
    assert task.outcome is Outcome.PASSED and task.points == task.max_points, task.message
    assert RETRY_NOTE in task.detail and "the training was run again" in task.detail
    assert calls_logged(scratch_root) == 2


# -- the code's own crashes and the grader's own kills: not tried again --------------------------------------

@pytest.mark.parametrize("crash,message", [
    ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    ("import os; os._exit(3)", "exited with code 3"),
], ids=["sigsegv", "os_exit"])
def test_the_codes_own_crash_is_its_error_and_not_retried(assignment, tmp_path, scratch_root, crash, message):
    task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, f"_announce(0); {crash}"))
    assert task.outcome is Outcome.ERROR and task.points == 0
    assert all(c.outcome is Outcome.ERROR and message in c.message and not c.notes for c in task.checks), \
        [(c.message, c.notes) for c in task.checks]
    assert "lost" not in task.message and "regrade" not in task.message
    assert calls_logged(scratch_root) == len(task.checks)  # each check called it once: no second run


@pytest.mark.parametrize("suicide", [
    "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    "import os, signal; os.kill(0, signal.SIGTERM)",
    "import os, signal, threading; signal.pthread_kill(threading.main_thread().ident, signal.SIGKILL)",
    "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import os; os.kill(os.getppid(), 9)'], check=True)",
    "import resource, signal; signal.signal(signal.SIGXCPU, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_CPU, (1, 1)); exec('while True: pass')",
    "import os; os._exit(137)",   # under bubblewrap, the status a SIGKILL gives
    "import os, signal, threading, time; t = threading.Thread(target=time.sleep, args=(5,)); t.start(); "
    "os.kill(t.native_id, signal.SIGKILL)",
    "import os, signal; os.setsid(); os.killpg(os.getpgrp(), signal.SIGTERM)",
], ids=["sigkill", "group_sigterm", "thread_sigkill", "child_kills_parent", "cpu_limit", "exit_137",
        "other_thread_id", "new_session_group"])
def test_a_worker_cannot_kill_itself_to_pass_for_lost_and_be_graded_again(assignment, tmp_path, scratch_root,
                                                                        suicide):
    # Read as sent from outside, its own SIGKILL would say "not your code's error" and buy a second
    # try (a second training run, where the first went badly): the seccomp filter denies the plain
    # routes, and whatever ends the worker so, with no out-of-memory kill on the machine meanwhile, is
    # the code's own end.
    from grader.sandbox.levels import bwrap_problem

    if bwrap_problem() is not None:
        pytest.skip("the filter that denies it is applied by the sandbox levels, and bubblewrap is unusable here")
    task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, f"_announce(0); {suicide}"),
                                sandbox="bwrap")
    assert task.outcome is Outcome.ERROR and task.points == 0, task.message
    assert "lost" not in task.message and "regrade" not in task.message, task.message
    assert calls_logged(scratch_root) == len(task.checks)  # each check called it once: no second run


SLEEP = """
    _announce(0)
    import time
    time.sleep(60)
"""
HOG_MEMORY = """
    _announce(0)
    import numpy, time
    hog = numpy.ones(2**30 // 8)
    time.sleep(20)
"""
MANY_PROCESSES = """
    _announce(0)
    import subprocess, time
    children = [subprocess.Popen(["sleep", "20"]) for _ in range(80)]
    time.sleep(20)
"""


@pytest.mark.parametrize("prologue,outcome,message,timeout_s,memory_mib", [
    (SLEEP, Outcome.TIMEOUT, "no answer within 1 s", 1, 4096),
    (HOG_MEMORY, Outcome.ERROR, "used more than 256 MiB of memory", 20, 256),
    (MANY_PROCESSES, Outcome.ERROR, "started more than 63 processes", 20, 4096),
], ids=["timeout", "memory_watch", "process_watch"])
def test_the_graders_own_kills_are_not_retried(assignment, tmp_path, scratch_root, monkeypatch, prologue, outcome,
                                               message, timeout_s, memory_mib):
    """Each of these ends in a SIGKILL too, but one the grader sent, for a reason it reports."""
    monkeypatch.setattr(grader.engine.grading, "Limits", functools.partial(Limits, memory_bytes=memory_mib * 2**20))
    task = grade_affine_forward(assignment, tmp_path, affine_forward_that(assignment, prologue), timeout_s)
    assert task.outcome is outcome and task.points == 0
    assert all(c.outcome is outcome and message in c.message and not c.notes for c in task.checks), \
        [(c.message, c.notes) for c in task.checks]
    # A function that timed out is not called again by the later checks; the watches' kills are per call.
    assert calls_logged(scratch_root) == (1 if outcome is Outcome.TIMEOUT else len(task.checks))


ADOPTER = r"""
import os, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import grader.sandbox.worker_process as wp
from grader.sandbox.worker_process import Limits
from grader.sandbox.remote import WorkerSession

if sys.argv[2] == "off":
    wp.reap_adopted_orphans = lambda: None
wp._become_subreaper()
# A grading process killed below this one leaves its descendants to it: here, a detached child of a
# shell that exits at once; the child dies soon after, a zombie of this process.
subprocess.run(["sh", "-c", "setsid sleep 0.2 >/dev/null 2>&1 & exit 0"], check=True)
time.sleep(1.0)


def zombies():
    out = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "stat="], capture_output=True, text=True).stdout
    return sum(1 for line in out.split() if line.startswith("Z"))


before = zombies()
scratch = Path(sys.argv[3])
(scratch / "submission").mkdir()
session = WorkerSession(scratch / "submission", scratch, Limits(sandbox="process"))
session.start()  # a new worker: the grader reaps what it adopted
after = zombies()
session.close()
print(before, after)
"""


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_a_long_lived_grader_reaps_the_orphans_it_adopts(tmp_path, defended):
    script = tmp_path / "adopter.py"
    script.write_text(ADOPTER)
    (tmp_path / "scratch").mkdir()
    done = subprocess.run([sys.executable, str(script), str(PROJECT_ROOT), "on" if defended else "off",
                           str(tmp_path / "scratch")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split()[-2:])
    assert before >= 1  # the orphan was adopted and died
    assert after == (0 if defended else before), done.stdout


def test_a_worker_started_while_another_thread_reaps_orphans_is_not_taken_for_one(tmp_path, monkeypatch):
    """A grading starts its worker while the sandbox proof starts the probe's, in another thread; each
    start first reaps the orphans this process adopted. A worker started between one thread's look at
    the live workers and its listing of this process's children must not be killed as an orphan."""
    import grader.sandbox.worker_process as worker_process
    from grader.sandbox.remote import StudentProxy

    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "answer.py").write_text("def value():\n    return 42\n")
    (tmp_path / "scratch").mkdir()
    other = WorkerSession(tmp_path / "submission", tmp_path / "scratch", Limits(sandbox="process"))
    started, done = threading.Event(), threading.Event()

    def start_and_stay() -> None:  # a worker dies with the thread that started it: this one stays
        other.start()
        started.set()
        done.wait(60)

    list_children = worker_process._children
    starter = threading.Thread(target=start_and_stay)

    def children_while_another_thread_starts_a_worker(pid: int) -> list[int]:
        if pid == os.getpid() and not starter.is_alive() and not started.is_set():
            starter.start()
            started.wait(3)  # a start that waits for this listing to end waits in vain here
        return list_children(pid)

    monkeypatch.setattr(worker_process, "_children", children_while_another_thread_starts_a_worker)
    try:
        worker_process.kill_escaped_orphans()
        assert started.wait(30)
        assert StudentProxy(other).answer.value() == 42
        assert other.worker_starts == 1, "the worker was killed as an orphan and started again"
    finally:
        done.set()
        starter.join(timeout=10)
        other.close()
