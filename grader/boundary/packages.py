"""Importing an assignment's directory as a package under a name of the grader's choosing.

Used on both sides: the worker imports a submission as `submission`, the grader imports the
reference as `reference_<A>`. A package whose `__path__` lists several directories resolves each
module from the first that has it, which is how the reference overlays the assignment's provided
files and a submission's scratch copy holds both.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def install_package(name: str, directories: list[Path]) -> types.ModuleType:
    """Registers an empty package `name` whose modules are looked up in `directories`, in order."""
    package = types.ModuleType(name, f"Assignment package loaded from {directories[0]}")
    package.__path__ = [str(d) for d in directories]
    package.__package__ = name
    sys.modules[name] = package
    return package


def uninstall_package(name: str) -> None:
    for module_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module_name]
