"""`grader batch --executor ray` against a real Ray cluster: a head node that the tests start with
`ray start --head` (its GCS, raylet and their workers: a process tree of its own, in a temporary
directory, with a token of its own) and stop. The batch connects to it by address
(`--ray-address`), as to a course's cluster, and each submission is graded in a worker process of
that cluster, never in the batch's own process or a Ray instance it started.

- the gradebook of four a1 submissions graded on the cluster is the local executor's, and each was
  graded by a task named after it in a worker process of the cluster's raylet;
- a worker killed while it grades (SIGKILL) is handed out again and its result arrives, its first
  attempt recorded as lost with what Ray said.

They skip, saying why (the end of the head's log), where the head cannot start here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from batch_submissions import attempts, gradebook
from grader.batch.run import BatchOptions, grade_batch
from grader.delivery.submission_zip import write_submission_zip
from grader.oracle.mistakes import load_catalogue
from support import A1, PROJECT_ROOT, a1, make_submission

pytestmark = pytest.mark.slow  # a real Ray cluster: ./grade.sh --selftest --all (CI) runs it

SEED = 20261206
TASKS = "affine.*,relu.*"
HEAD_START_S = 90.0
BATCH_TIMEOUT_S = 120.0
# What a grading task's worker process is called (grader.batch.ray_executor.task_name).
TASK_TITLE = "ray::grade "


# -- the cluster ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    started: int  # clock ticks after boot: with the pid, this process and no later one of the same pid
    title: str    # argv[0], or the title Ray gives its workers (ray::<task>)


def process(pid: int) -> Optional[Process]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) ": state ppid ..., starttime 20th
    if fields[0] == "Z":
        return None
    return Process(pid, int(fields[1]), int(fields[19]), cmdline.split(b"\0", 1)[0].decode(errors="replace").strip())


def all_processes() -> list[Process]:
    found = (process(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [p for p in found if p is not None]


@dataclass
class RayCluster:
    head: subprocess.Popen   # `ray start --head --block`: every process of the cluster descends from it
    address: str
    env: dict[str, str]      # what a driver needs to connect: the cluster's token
    temp_dir: Path
    log: Path

    def processes(self) -> list[Process]:
        """The cluster's processes: the head and its descendants (its daemons, the raylet's workers,
        the sandboxes of their gradings)."""
        found = all_processes()
        children: dict[int, list[Process]] = {}
        for p in found:
            children.setdefault(p.ppid, []).append(p)
        tree, below = [], [self.head.pid]
        while below:
            for p in children.get(below.pop(), []):
                tree.append(p)
                below.append(p.pid)
        return tree

    def raylet(self) -> int:
        (pid,) = [p.pid for p in self.processes() if p.title.endswith("/raylet")]
        return pid

    def batch(self, subs: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
        """`grader batch` pointed at the cluster by address, as an instructor runs it."""
        command = [sys.executable, "-m", "grader", "batch", A1, str(subs), "--out", str(out), "--executor", "ray",
                   "--ray-address", self.address, "--seed", str(SEED), "--mode", "official", "--only", TASKS,
                   "--skip-training", "--similarity", "off", "--quiet", *options]
        return subprocess.run(command, cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True,
                              timeout=BATCH_TIMEOUT_S)

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        for name in ("gcs_server.err", "raylet.err"):  # where a daemon that died says why
            for path in self.temp_dir.glob(f"session_*/logs/{name}"):
                text += path.read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:]) or "(nothing)"

    def stop(self) -> None:
        """Ends this cluster and nothing else. Not `ray stop --force`: it kills every Ray process of the
        machine, found by name, another test's or engineer's cluster too. The head, asked to end, ends
        the processes it started; whatever of its tree outlives it is killed."""
        tree = self.processes()   # before the head ends: then its orphans have another parent
        if self.head.poll() is None:
            self.head.send_signal(signal.SIGTERM)
            try:
                self.head.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.head.kill()
                self.head.wait()
        for p in tree:
            now = process(p.pid)
            if now is not None and now.started == p.started:   # still that process
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Runs a command as its child and is the subreaper of everything below it, for as long as it runs.
# Asked to end (SIGTERM), it asks the command to end.
KEEPER = """
import ctypes, signal, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
sys.exit(child.wait())
"""


def start_head() -> RayCluster:
    """`ray start --head` with a temporary directory, ports and a token of its own; returns once `ray
    status` sees its node. Raises ClusterUnavailable (the cluster stopped) where it cannot start."""
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        ray = Path(shutil.which("ray") or "ray")
    # A short path: Ray's sockets live under it, and a socket's path has at most 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    # Token authentication with a token of this cluster: the machine's ~/.ray/auth_token (which makes
    # `ray start` ask for a token its clients do not send) plays no part, and no other driver connects.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    command = [str(ray), "start", "--head", "--block", "--port", str(port),
               "--temp-dir", str(temp_dir), "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard=false",
               "--dashboard-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
               "--disable-usage-stats"]
    log = temp_dir / "head.log"
    # In this process's session, under a keeper that adopts what the head's daemons leave behind: a
    # grading in this process (the sandbox's self-check, a local batch) makes it the subreaper of its
    # descendants and kills the children that left its session, taking them for a worker's escaped
    # descendants (grader.sandbox.worker_process.kill_escaped_orphans); Ray's daemons must not be those.
    with open(log, "wb") as output:
        head = subprocess.Popen([sys.executable, "-c", KEEPER, *command], stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, env=env)
    cluster = RayCluster(head, "", env, temp_dir, log)
    deadline = time.monotonic() + HEAD_START_S
    try:
        while time.monotonic() < deadline:
            if head.poll() is not None:
                raise ClusterUnavailable(f"`ray start --head` exited with {head.returncode}:\n{cluster.log_tail()}")
            # Where the head says it is (its node's address, which its workers know it by).
            recorded = temp_dir / "ray_current_cluster"
            cluster.address = recorded.read_text().strip() if recorded.exists() else ""
            if not cluster.address.endswith(f":{port}"):
                time.sleep(0.2)
                continue
            try:
                status = subprocess.run([str(ray), "status", "--address", cluster.address], env=env,
                                        capture_output=True, text=True, timeout=15)
            except subprocess.TimeoutExpired:
                continue
            if status.returncode == 0 and re.search(r"Active:\s*\n\s*1 node_", status.stdout):
                return cluster
            time.sleep(0.5)
        raise ClusterUnavailable(f"`ray status` did not see the head's node within {HEAD_START_S:.0f} s:\n"
                                 f"{cluster.log_tail()}")
    except BaseException:
        cluster.stop()
        raise


class ClusterUnavailable(Exception):
    pass


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    try:
        started = start_head()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Ray cluster here: {exc}")
    try:
        yield started
    finally:
        started.stop()


@contextmanager
def watching(cluster: RayCluster) -> Iterator[dict[str, set[tuple[int, int]]]]:
    """The cluster's grading workers while the block runs: each task's title, with the (pid, ppid) of
    every worker process seen running it (sampled every 50 ms: a grading takes a second or more)."""
    seen: dict[str, set[tuple[int, int]]] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            grading = [p for p in cluster.processes() if p.title.startswith(TASK_TITLE)]
            for p in grading:
                if p.ppid not in {q.pid for q in grading}:   # not its sandbox, forked and not yet started
                    seen.setdefault(p.title, set()).add((p.pid, p.ppid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def finished(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"grader batch exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"


# -- a batch on the cluster -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Path:
    """Four a1 submissions: the reference (a folder and a zip), the stubs, a catalogued mistake."""
    assignment = a1()
    subs = tmp_path_factory.mktemp("four") / "subs"
    reference = make_submission(subs / "ref_folder", assignment)
    write_submission_zip(assignment, reference, subs / "ref_zip.zip", None)
    make_submission(subs / "stubs", assignment, "stubs")
    mistake = {m.id: m for m in load_catalogue(assignment)}["relu_backward_masks_on_dout"]
    make_submission(subs / "bug_relu", assignment, "reference", {mistake.file: mistake.source_text})
    return subs


def test_a_batch_graded_on_the_cluster_by_address_gives_the_local_executors_gradebook(cluster, four, tmp_path):
    local = grade_batch(BatchOptions(assignment=A1, submissions=four, out=tmp_path / "local", jobs=2, seed=SEED,
                                     training=False, mode="official", only=TASKS, similarity="off"))
    with watching(cluster) as seen:
        finished(cluster.batch(four, tmp_path / "ray", "--jobs", "2"))

    assert gradebook(tmp_path / "ray") == gradebook(tmp_path / "local")
    scores = {row["id"]: float(row["total"]) for row in gradebook(tmp_path / "ray")}
    full = float(gradebook(tmp_path / "ray")[0]["max"])
    assert len(local.records) == 4 and scores["ref_folder"] == scores["ref_zip"] == full > 0
    assert scores["stubs"] == 0 and 0 < scores["bug_relu"] < full
    assert all(tries == [(1, "done")] for tries in attempts(tmp_path / "ray").values())
    # Each graded by a task of its own, in a worker process the cluster's raylet started: a Ray
    # instance of the batch's own (ray.init() without the address) has a raylet of its own.
    raylet = cluster.raylet()
    assert set(seen) == {TASK_TITLE + ident for ident in scores}, seen
    assert all(ppid == raylet for workers in seen.values() for _, ppid in workers), (raylet, seen)
    assert len({pid for workers in seen.values() for pid, _ in workers}) == 4  # a fresh worker each


# -- a worker lost while it grades ----------------------------------------------------------------

def slow_layers() -> str:
    """The reference's layers with a ReLU that takes a quarter of a second a call: seconds of grading."""
    text = (a1().reference_directory / "layers.py").read_text()
    old = "    out = np.maximum(x, 0)\n"
    assert old in text
    return text.replace(old, "    import time\n    time.sleep(0.25)\n" + old, 1)


def test_a_worker_killed_while_it_grades_is_handed_out_again_and_its_result_arrives(cluster, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    make_submission(subs / "quick", a1())
    make_submission(subs / "slow", a1(), "reference", {"layers.py": slow_layers()})
    killed: list[int] = []
    problems: list[BaseException] = []
    done = threading.Event()

    def kill_the_slow_one() -> None:
        try:
            raylet = cluster.raylet()
            first_seen: dict[int, float] = {}
            while not done.is_set():
                for p in cluster.processes():
                    if p.title == TASK_TITLE + "slow" and p.ppid == raylet:
                        if time.monotonic() - first_seen.setdefault(p.pid, time.monotonic()) >= 2.0:
                            os.kill(p.pid, signal.SIGKILL)   # its grading under way
                            killed.append(p.pid)
                            return
                time.sleep(0.05)
            raise AssertionError("no worker graded the slow submission for 2 s")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            problems.append(exc)

    killer = threading.Thread(target=kill_the_slow_one, daemon=True)
    killer.start()
    with watching(cluster) as seen:
        result = cluster.batch(subs, out, "--jobs", "2")
    done.set()
    killer.join(timeout=5)
    finished(result)
    assert not problems, problems

    (pid,) = killed
    rows = {row["id"]: row for row in gradebook(out)}
    assert rows["slow"]["status"] == rows["quick"]["status"] == "graded"
    assert rows["slow"]["total"] == rows["quick"]["total"] == rows["quick"]["max"]
    tries = attempts(out)
    assert tries["quick"] == [(1, "done")]
    (first, second) = tries["slow"]
    assert first[0] == 1 and first[1].startswith("Ray task: WorkerCrashedError: The worker died"), first
    assert second == (2, "done")
    # The second attempt ran in another worker of the cluster.
    workers = {worker for worker, _ in seen[TASK_TITLE + "slow"]}
    assert pid in workers and len(workers) == 2, (pid, seen)
