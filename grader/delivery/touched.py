"""Which assignments a student has started: a student file whose fences hold something other than
the stub's `raise NotImplementedError`. Prints their ids, one a line (all of them when none is
started yet), for `./grade.sh` without an assignment."""

from __future__ import annotations

from pathlib import Path

from grader.assignment import available_assignments, find_project_root, load_assignment
from grader.stub_text import fence_bodies, is_untouched_body


def started(directory: Path, student_files: list[str]) -> bool:
    for name in student_files:
        path = directory / name
        if path.is_file() and not all(is_untouched_body(b) for b in fence_bodies(path.read_text())):
            return True
    return False


def main() -> None:
    root = find_project_root()
    ids = available_assignments(root)
    touched = [a for a in ids if started(root / "assignments" / a, load_assignment(a, root).spec.student_files)]
    print("\n".join(touched or ids))


if __name__ == "__main__":
    main()
