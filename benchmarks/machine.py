"""Which machine a benchmark ran on, for the first lines of its table."""

from __future__ import annotations

import os
import platform


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
