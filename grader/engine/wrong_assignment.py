"""A student file made for another assignment of the course: `layers.py` is a file of several
assignments, and one handed in under the wrong one fails every check with AttributeErrors and
ImportErrors that hide the one cause. The definitions a file holds say which assignment it was
written for; nothing of it runs here (it is read, not imported)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Mapping

from grader.assignment import Assignment

# A file is taken for another assignment's when it defines at most this share of this one's names
# (assignments share a few, softmax_loss) and at least that share of the other's: a file of
# helpers, or one half written, is not.
OURS_SHARE = 0.25
OTHER_SHARE = 0.5
LISTED = 4
_DEFINITION = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def made_for_another_assignment(assignment: Assignment, files: Mapping[str, bytes]) -> list[str]:
    """A warning for each student file that defines few of this assignment's names but most of
    another assignment's file of the same name."""
    warnings = []
    for name, data in files.items():
        defined = _top_level_names(data)
        ours = _top_level_names_of(assignment.directory / name)
        if not defined or not ours or len(defined & ours) > OURS_SHARE * len(ours):
            continue
        for other in assignment.other_assignments:
            theirs = _top_level_names_of(assignment.directory.parent / other / name)
            if theirs and len(defined & theirs) >= OTHER_SHARE * len(theirs):
                warnings.append(f"{name} looks like {other}'s: it defines {_listing(defined & theirs)}, and of "
                                f"{assignment.id}'s {len(ours)} only {len(defined & ours)} (it lacks "
                                f"{_listing(ours - defined)}). Was it made for {other}? It is graded as {assignment.id}")
                break
    return warnings


@functools.lru_cache(maxsize=64)
def _top_level_names_of(path: Path) -> frozenset[str]:
    try:
        return _top_level_names(path.read_bytes())
    except OSError:
        return frozenset()


def _top_level_names(data: bytes) -> frozenset[str]:
    """The functions and classes a module defines at its top level (a line that begins with `def` or
    `class`: read, not parsed, which costs a grading nothing), but private ones."""
    text = data.decode("utf-8", "replace")
    return frozenset(match[1] for match in _DEFINITION.finditer(text) if not match[1].startswith("_"))


def _listing(names: frozenset[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:LISTED])
    return shown + (f" and {len(ordered) - LISTED} more" if len(ordered) > LISTED else "")
