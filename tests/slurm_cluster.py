"""A real Slurm cluster of one node, this machine, for the tests of the Slurm executor.

Everything it needs lives in one temporary folder: munged with its own key and socket, slurmctld and
slurmd in the foreground with a slurm.conf that names this host as the one node (its CPUs, a little
less than its memory, one GPU declared as a GRES over /dev/null, so that a job asking for a GPU is
placed and sees CUDA_VISIBLE_DEVICES), no accounting, the daemons' state, spool, pid and log files.
Clients find it through SLURM_CONF. `start` raises ClusterUnavailable, saying why, where Slurm is not
installed or its daemons do not come up (the tests then skip); `stop` cancels what is left, ends the
daemons and every process their jobs left (found by the SLURM_CONF in their environment), and removes
the folder.

Debian: apt-get install slurmctld slurmd slurm-client munge (.ci/run installs them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PARTITION = "grader"
START_TIMEOUT_S = 60.0
INSTALL = "apt-get install slurmctld slurmd slurm-client munge"


class ClusterUnavailable(Exception):
    """The cluster cannot run here: not installed, not root, or a daemon did not come up."""


def find_binaries() -> dict[str, str]:
    """Each daemon's and client's path; ClusterUnavailable naming those missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    found = {name: shutil.which(name, path=search) for name in DAEMONS + CLIENTS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ClusterUnavailable(f"Slurm is not installed here: no {', '.join(missing)} ({INSTALL})")
    return {name: str(path) for name, path in found.items()}


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different (held together while chosen)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise ClusterUnavailable("no MemTotal in /proc/meminfo")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"({path.name}: nothing written)"
    return "\n".join(text[-lines:]) or f"({path.name}: empty)"


@dataclass
class SlurmCluster:
    root: Path
    node: str
    cpus: int
    binaries: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment of the daemons and of every client: this cluster's configuration."""
        path = os.pathsep.join([os.path.dirname(self.binaries["sbatch"]), os.environ.get("PATH", "")])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *command: str, check: bool = True, timeout: float = 30) -> str:
        """A client command against this cluster; its output."""
        done = subprocess.run([self.binaries.get(command[0], command[0]), *command[1:]], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    # -- configuration ------------------------------------------------------------------------

    def write_configuration(self) -> None:
        root, node = self.root, self.node
        for folder in ("state", "spool", "log"):
            (root / folder).mkdir()
        key = root / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        real_memory = max(256, int(memory_mb() * 0.9))
        controller_port, node_port = free_ports(2)
        (root / "gres.conf").write_text(f"NodeName={node} Name=gpu File=/dev/null\n")
        self.conf.write_text(f"""\
ClusterName=gradertest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / 'munge.socket'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=2
MinJobAge=600
MailProg=/bin/true
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={real_memory} Gres=gpu:1 State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")

    # -- starting and stopping ----------------------------------------------------------------

    def start_daemon(self, name: str, *arguments: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        try:
            self.processes[name] = subprocess.Popen([self.binaries[name], *arguments], env=self.env,
                                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def why_down(self, name: str, what: str) -> ClusterUnavailable:
        """Its log file where it wrote one (its output repeats it), else its output."""
        log, output = self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"
        shown = log if log.exists() and log.stat().st_size else output
        return ClusterUnavailable(f"{name} {what}; its log ends:\n{tail(shown)}")

    def wait_for(self, ready, name: str, deadline: float) -> None:
        while not ready():
            for daemon, process in self.processes.items():
                if process.poll() is not None:
                    raise self.why_down(daemon, f"exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise self.why_down(name, f"was not ready within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.25)

    def node_state(self) -> str:
        try:
            return self.run("sinfo", "--noheader", "--Node", f"--nodes={self.node}", "--format=%t",
                            check=False, timeout=10).strip()
        except subprocess.TimeoutExpired:
            return ""

    def start(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        self.write_configuration()
        socket_path = self.root / "munge.socket"
        self.start_daemon("munged", "--foreground", "--force", f"--key-file={self.root / 'munge.key'}",
                          f"--socket={socket_path}", f"--pid-file={self.root / 'munged.pid'}",
                          f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={self.root / 'munged.seed'}")
        self.wait_for(socket_path.exists, "munged", deadline)
        self.start_daemon("slurmctld", "-D", "-f", str(self.conf))
        self.start_daemon("slurmd", "-D", "-f", str(self.conf))
        self.wait_for(lambda: self.node_state() == "idle", "slurmd", deadline)

    def stop(self) -> None:
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.run("scancel", f"--partition={PARTITION}", check=False, timeout=10)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.run(
                        "squeue", "--noheader", "--states=RUNNING,COMPLETING,PENDING", check=False, timeout=10).strip():
                    time.sleep(0.25)
            except subprocess.TimeoutExpired:
                pass
        for name in reversed(DAEMONS):  # slurmd first, munged last
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in self.leftovers():  # a job's slurmstepd or its processes, orphaned by slurmd's end
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self) -> list[int]:
        """Processes this cluster started and that still run: their environment names its slurm.conf."""
        marker = f"SLURM_CONF={self.conf}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found


def start_cluster(cpus: Optional[int] = None) -> SlurmCluster:
    """A running one-node cluster; ClusterUnavailable (nothing left running) where there can be none."""
    binaries = find_binaries()
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"the test cluster's daemons run as root (SlurmUser=root); this is uid {os.geteuid()}")
    # A short path: munge's socket is an AF_UNIX address (about 100 bytes at most).
    root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    root.chmod(0o755)  # munged wants its socket's folder reachable by all
    cluster = SlurmCluster(root, socket.gethostname().split(".")[0],
                           cpus or len(os.sched_getaffinity(0)), binaries)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
