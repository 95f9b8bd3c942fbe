"""Unprivileged uids for workers, one per live worker, when the grader runs as root.

A uid of its own keeps a worker from signalling, tracing or reading the files of the grader and of
the other workers (of this and of concurrent grading processes), lets the kernel count its
processes, and makes everything it started and every file it left in a shared temporary directory
findable afterwards. The uids come from a range no account uses; a lease is an exclusive lock on a
file in a directory only root can write, so it ends when its holder does, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from pathlib import Path

FIRST_UID = 1_990_000_000
UID_COUNT = 4096
# Shared temporary directories where a worker without Landlock could leave files.
SHARED_TEMPORARY_DIRECTORIES = ("/tmp", "/var/tmp", "/dev/shm")


class WorkerUidLease:
    def __init__(self, uid: int, lock_fd: int):
        self.uid = uid
        self._lock_fd = lock_fd
        self._given: list[Path] = []
        # A kill under way in another thread (the worker's watch) finishes before the uid is given
        # back, so it can never reach the next worker that gets the uid.
        self._mutex = threading.Lock()

    def kill_processes(self) -> None:
        with self._mutex:
            if self._lock_fd >= 0:
                kill_processes_of(self.uid)

    def give(self, directory: Path) -> None:
        """`directory` and what it holds become the uid's, so that the worker can write there."""
        self._given.append(Path(directory))
        _chown_tree(Path(directory), self.uid)

    def release(self) -> None:
        """Kills what still runs as the uid, takes back the directories it was given (a later worker
        with the same uid must not find them its own), removes what it left in shared temporary
        directories, and gives the uid back."""
        with self._mutex:
            if self._lock_fd < 0:
                return
            kill_processes_of(self.uid)
            for directory in self._given:
                _chown_tree(directory, os.geteuid())
            remove_files_of(self.uid)
            os.close(self._lock_fd)
            self._lock_fd = -1


def _chown_tree(directory: Path, uid: int) -> None:
    for root, folders, files in os.walk(directory):
        for name in [root] + [os.path.join(root, n) for n in folders + files]:
            try:
                os.lchown(name, uid, uid)
            except OSError:
                pass


def _lock_directory() -> Path:
    directory = Path(tempfile.gettempdir()) / "grader-worker-uids"
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise PermissionError(f"{directory} must be a directory of root's that only root can use "
                              f"(it is mode {oct(info.st_mode & 0o777)}, owner {info.st_uid}); remove it")
    return directory


def lease_worker_uid() -> WorkerUidLease:
    """A uid no other live worker on this machine holds."""
    directory = _lock_directory()
    start = secrets.randbelow(UID_COUNT)  # concurrent graders, and successive workers, rarely meet
    for offset in range(UID_COUNT):
        uid = FIRST_UID + (start + offset) % UID_COUNT
        fd = os.open(directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_processes_of(uid)   # left by a grader that died before it could clean up
        remove_files_of(uid)
        return WorkerUidLease(uid, fd)
    raise RuntimeError(f"all {UID_COUNT} worker uids are in use")


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def kill_processes_of(uid: int) -> None:
    for _ in range(3):  # a process may fork while the first round is under way
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def files_of(uid: int) -> list[Path]:
    """Entries owned by `uid` directly in the shared temporary directories."""
    found = []
    for directory in SHARED_TEMPORARY_DIRECTORIES:
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_uid == uid:
                            found.append(Path(entry.path))
                    except OSError:
                        pass
        except OSError:
            pass
    return found


def bytes_in_files_of(uid: int) -> int:
    """Space taken by what `uid` left in the shared temporary directories (its own folders included)."""
    total = 0
    for path in files_of(uid):
        for root, _, names in os.walk(path) if path.is_dir() and not path.is_symlink() else [(str(path.parent), [], [path.name])]:
            for name in names:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    pass
    return total


def remove_files_of(uid: int) -> None:
    for path in files_of(uid):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                pass
