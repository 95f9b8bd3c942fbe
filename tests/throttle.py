"""A deliberately slowed machine for tests: a process tree that runs only part of the time.

A thread of the test process stops every process of the tree (SIGSTOP) for `off_s`, lets it run
(SIGCONT) for `on_s`, and so on, so that CPU-bound work in the tree takes (on + off) / on times as
long, as on a slower device, without cgroups or privileges beyond signalling one's own children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from grader.sandbox.worker_process import process_tree


class Throttle:
    def __init__(self, root: int, on_s: float = 0.01, off_s: float = 0.01):
        self.root, self.on_s, self.off_s = root, on_s, off_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Throttle":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._signal(signal.SIGCONT)

    def _signal(self, which: signal.Signals) -> None:
        for pid in process_tree(self.root):
            try:
                os.kill(pid, which)
            except (ProcessLookupError, PermissionError):
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._signal(signal.SIGSTOP)
            self._stop.wait(self.off_s)
            self._signal(signal.SIGCONT)
            self._stop.wait(self.on_s)


def run_throttled(command: list[str], *, slowed: bool, timeout: float, slowdown: float = 3.0,
                  **kwargs) -> subprocess.CompletedProcess:
    """`command` run to its end, `slowdown` times slower when `slowed` (running one part in `slowdown`)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    if not slowed:
        out, err = process.communicate(timeout=timeout)
    else:
        with Throttle(process.pid, on_s=0.01, off_s=0.01 * (slowdown - 1)):
            out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, process.returncode, out, err)
