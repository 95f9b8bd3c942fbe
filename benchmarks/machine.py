"""Which machine a benchmark ran on, for the first lines of its table."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{platform.system()} {platform.release()}", cpu, f"{os.cpu_count()} CPUs",
             f"Python {platform.python_version()}"]
    try:
        import numpy

        parts.append(f"NumPy {numpy.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def yardstick() -> str:
    """How fast this machine is right now, in two fixed workloads that dominate a grading: a fresh
    interpreter importing torch (each grading does it twice) and a pure-Python loop. A shared VM's
    speed moves by tens of percent from day to day; figures from two days compare through these."""
    def wall(code: str) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - began

    loop = statistics.median(wall("sum(range(10**7))") for _ in range(3))
    try:
        torch = statistics.median(wall("import torch") for _ in range(3))
    except subprocess.CalledProcessError:
        return f"yardstick: Python loop {loop:.2f} s (no torch)"
    return f"yardstick: fresh `import torch` {torch:.2f} s, Python loop of 10**7 {loop:.2f} s (medians of 3)"
