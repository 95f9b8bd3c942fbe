"""Hostile and broken submissions, each graded end to end at each isolation level: whatever one does,
it earns no more than its honest score, the tasks it does not touch are graded normally, the report
is complete, no file of the project or of the grader's directory changes, no process outlives
grading, and nothing reaches the network or shows protected files (tests/adversarial_cases.py).

A level that does not make a promise (the process level keeps neither the network nor the file system
from the worker) fails the cases that test it: those are listed in KNOWN_GAPS with the promise they
break, and marked as expected failures that only count when that promise, and no other, breaks. A case
that breaks a promise on some runs only is listed there too, as an expected failure that may pass."""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from adversarial_cases import (
    ASPECTS,
    CASES,
    PROJECT_ROOT,
    Listeners,
    Setting,
    compare_snapshots,
    grade_case,
    judge,
    kill_processes_carrying,
    processes_carrying,
    resolved_level,
    snapshot,
)
from support import a1

# "default" grades with what GradeOptions chooses for official grading; a named level is graded
# too where it differs from that choice and works on this machine.
LEVELS = ("default", "process", "restricted", "bwrap")


@dataclass(frozen=True)
class Gap:
    aspects: tuple[str, ...]   # the promises (see ASPECTS) the case breaks at this level
    reason: str
    strict: bool = True        # False: it breaks them on some runs only (a race)


_NO_FILE_SYSTEM_ISOLATION = ("the process level runs the worker as the grader's user on the grader's file "
                             "system (DESIGN §9 promises a read-only view without the project only at "
                             "the bwrap level)")
_NO_NETWORK_ISOLATION = ("the process level shares the grader's network namespace (DESIGN §9 promises "
                         "no network only at the bwrap level)")

# By resolved level: the cases that break a promise the level does not make, or that lose a race.
KNOWN_GAPS: dict[str, dict[str, Gap]] = {
    "process": {
        "write_grader_source": Gap(("files",), "grader/checking/compare.py is writable from the worker: "
                                   + _NO_FILE_SYSTEM_ISOLATION),
        "remount_and_write_grader_source": Gap(("files",), "grader/checking/compare.py is writable from the worker "
                                              "without any remount: " + _NO_FILE_SYSTEM_ISOLATION),
        "write_reference_source": Gap(("files",), "reference/a1_fc_numpy/layers.py is writable from the "
                                      "worker: " + _NO_FILE_SYSTEM_ISOLATION),
        "write_grader_cwd_and_results_json": Gap(("files",), "the grader's working directory (found "
                                                 "through /proc/<ppid>/cwd) is writable from the worker: "
                                                 + _NO_FILE_SYSTEM_ISOLATION),
        "read_reference_by_absolute_path": Gap(("score",), "reference/ is readable by absolute path, so "
                                               "affine_forward returns the reference's answer and "
                                               "passes: " + _NO_FILE_SYSTEM_ISOLATION),
        # Found only where a path the worker sees leads to the project (its sys.path, the grader's working
        # directory): on some machines and checkouts, not on others.
        "leak_hidden_checks_and_fixtures": Gap(("contained",), "the hidden checks and the fixtures are "
                                               "readable and their digests reach the task's message: "
                                               + _NO_FILE_SYSTEM_ISOLATION, strict=False),
        "tcp_connect": Gap(("contained",), "a TCP connection to 127.0.0.1 succeeds and delivers data: "
                           + _NO_NETWORK_ISOLATION),
        "udp_sendto": Gap(("contained",), "a UDP datagram to 127.0.0.1 is delivered: " + _NO_NETWORK_ISOLATION),
        "read_reference_through_the_graders_proc": Gap(("score",), "/proc/<grader>/cwd leads to the project, so "
                                                       "affine_forward returns the reference's answer: "
                                                       + _NO_FILE_SYSTEM_ISOLATION),
        # Root's worker at the process level holds every capability: open_by_handle_at reaches the host.
        **({"read_reference_by_file_handle": Gap(("score",), "the worker runs as root with every capability, so "
                                                 "open_by_handle_at opens the host's root directory: "
                                                 + _NO_FILE_SYSTEM_ISOLATION)} if os.geteuid() == 0 else {}),
        "fill_ram_backed_files": Gap(("files",), "files written to the host's /dev/shm and /tmp are closed, so no "
                                   "process holds them, and they outlive the worker: " + _NO_FILE_SYSTEM_ISOLATION),
    },
    "restricted": {},
    "bwrap": {},
}


class KnownGap(AssertionError):
    """A case broke exactly the promises its level is known not to make."""


def case_params() -> list:
    default, _ = resolved_level("default")
    params = []
    for level in LEVELS:
        resolved, problem = resolved_level(level)
        if level != "default" and resolved == default:
            continue  # already graded as the default
        for case in CASES:
            marks = []
            gap = KNOWN_GAPS.get(resolved or "", {}).get(case.name)
            if resolved is None:
                marks.append(pytest.mark.skip(reason=f"the {level} level cannot run here: {problem}"))
            elif gap is not None:
                marks.append(pytest.mark.xfail(strict=gap.strict, raises=KnownGap,
                                               reason=f"{resolved}: {gap.reason}"))
            params.append(pytest.param(level, resolved, case, id=f"{level}-{case.name}", marks=marks))
    return params


@pytest.fixture(scope="module")
def assignment():
    return a1()


@pytest.mark.slow
@pytest.mark.parametrize("level,resolved,case", case_params())
def test_submission_earns_nothing_it_should_not_and_is_contained(assignment, tmp_path, level, resolved, case):
    observation = grade_case(case, level, tmp_path, assignment)
    if observation.result is None and "official grading refused" in observation.grader_error:
        pytest.skip(observation.grader_error.strip().splitlines()[-1])
    verdict = judge(observation, assignment)
    gap = KNOWN_GAPS.get(resolved, {}).get(case.name)
    known = gap.aspects if gap else ()
    for aspect in ASPECTS:
        if aspect not in known:
            assert not verdict.problems(aspect), f"{aspect}:\n" + "\n".join(verdict.problems(aspect))
    broken = [aspect for aspect in known if verdict.problems(aspect)]
    if broken:
        raise KnownGap(verdict.describe())


# -- the corpus and the harness ----------------------------------------------------------------------

def test_the_corpus_covers_attacks_and_faults_each_aimed_at_its_own_tasks(assignment):
    assert len(CASES) >= 26 and len({case.name for case in CASES}) == len(CASES)
    assert {case.kind for case in CASES} == {"attack", "fault"}
    for case in CASES:
        selected = {task.id for task in assignment.spec.select(case.only)}
        assert selected == set(case.targets) | set(case.untouched), case.name
        assert not set(case.targets) & set(case.untouched), case.name
        assert case.outcomes, case.name
        reference = (assignment.reference_directory / case.file).read_text()
        assert all(reference.count(old) == 1 for old, _ in case.edits), case.name


def test_every_case_but_the_syntax_error_compiles(assignment, tmp_path):
    setting = Setting("marker", PROJECT_ROOT, tmp_path, 1, 2)
    for case in CASES:
        text = case.text((assignment.reference_directory / case.file).read_text(), setting)
        if case.name == "syntax_error":
            with pytest.raises(SyntaxError):
                compile(text, case.file, "exec")
        else:
            compile(text, case.file, "exec")
        assert "__MARKER__" not in text and "__PROJECT__" not in text and "__TCP_PORT__" not in text


def test_the_harness_sees_connections_datagrams_files_and_marked_processes(tmp_path):
    with Listeners() as listeners:
        with socket.create_connection(("127.0.0.1", listeners.tcp_port)) as connection:
            connection.sendall(b"hello")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
            datagram.sendto(b"hello", ("127.0.0.1", listeners.udp_port))
        time.sleep(0.1)
        received = listeners.received()
    assert any(r.startswith("TCP") and "hello" in r for r in received)
    assert any(r.startswith("UDP") and "hello" in r for r in received)

    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "kept.py").write_text("x = 1\n")
    before = snapshot([watched])
    with open(watched / "kept.py", "r+b") as kept:   # the same byte written back: only the times change
        first = kept.read(1)
        kept.seek(0)
        kept.write(first)
    (watched / "new.txt").write_text("planted")
    assert compare_snapshots(before, snapshot([watched])) == [f"new: {watched / 'new.txt'}",
                                                               f"changed: {watched / 'kept.py'}"]

    marker = f"grader-adversarial-harness-{time.monotonic_ns()}"
    child = subprocess.Popen([marker, "60"], executable="/bin/sleep", start_new_session=True)
    try:
        deadline = time.monotonic() + 2
        while child.pid not in processes_carrying(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in processes_carrying(marker)
        kill_processes_carrying(marker)
        assert child.wait(timeout=5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not processes_carrying(marker)
