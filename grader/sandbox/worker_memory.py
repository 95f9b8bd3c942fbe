"""How much memory a worker holds: what its processes keep resident, and what it put in RAM-backed
files, which no process's resident size shows (a file written to a tmpfs and closed, a memfd
written with write()).

Counted, for the worker's whole process tree:
- resident memory of every process (RSS; a tmpfs file mapped by a process is counted twice, which
  errs on the side of the limit);
- RAM-backed files its processes hold open (memfds, files in /dev/shm or another tmpfs, deleted or
  not), each once;
- the used space of its private tmpfs mounts (bubblewrap's /tmp and /dev/shm), seen through
  /proc/<pid>/root;
- what its own uid left in the shared temporary directories (restricted level as root).
"""

from __future__ import annotations

import functools
import os
from typing import Iterable, Optional


def resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@functools.lru_cache(maxsize=1)
def _ram_backed_devices() -> frozenset[int]:
    """Device numbers of this machine's tmpfs mounts (memfds live on one too)."""
    devices = set()
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split(" - ")
                if len(fields) == 2 and fields[1].split()[0] in ("tmpfs", "shm", "ramfs"):
                    try:
                        devices.add(os.stat(line.split()[4]).st_dev)
                    except OSError:
                        pass
    except OSError:
        pass
    return frozenset(devices)


def _is_ram_backed(target: str, device: int) -> bool:
    return target.startswith("/memfd:") or device in _ram_backed_devices() or target.startswith("/dev/shm/")


def open_ram_files_bytes(pids: Iterable[int], skip_prefixes: tuple[str, ...] = ()) -> int:
    """Space of the RAM-backed files the processes hold open, each file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            link = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(link)
                if not target.startswith("/") or target.startswith(skip_prefixes):
                    continue
                info = os.stat(link)
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen or not _is_ram_backed(target, info.st_dev):
                continue
            seen.add(key)
            total += info.st_blocks * 512
    return total


def private_tmpfs_bytes(pid: int, mounts: tuple[str, ...] = ("tmp", "dev/shm")) -> int:
    """Used space of the tmpfs mounts in the private file system `pid` sees."""
    total = 0
    for mount in mounts:
        try:
            usage = os.statvfs(f"/proc/{pid}/root/{mount}")
        except OSError:
            continue
        total += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
    return total


def worker_memory_bytes(tree: list[int], private_root_pid: Optional[int], uid: Optional[int]) -> int:
    """All the memory the worker's tree holds (see the module's docstring)."""
    total = sum(map(resident_bytes, tree))
    if private_root_pid is not None:
        total += private_tmpfs_bytes(private_root_pid)
        # Files in the private mounts are counted above; their paths inside start with these.
        total += open_ram_files_bytes(tree, skip_prefixes=("/tmp/", "/dev/shm/"))
    else:
        total += open_ram_files_bytes(tree)
    if uid is not None:
        from grader.sandbox.worker_uid import bytes_in_files_of

        total += bytes_in_files_of(uid)
    return total
