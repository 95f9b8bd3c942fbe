"""Taking a submission in: the student's files, from a folder or a zip, next to pristine copies of
the provided files, in a scratch directory the worker runs in."""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.assignment import Assignment
from grader.worker_process import make_scratch_dir, remove_scratch_dir

# Source files are kilobytes; a cap this size also keeps a submission from carrying a dataset.
MAX_FILE_BYTES = 2 * 1024 * 1024


class UnusableSubmission(Exception):
    """The submission cannot be graded at all (exit status 3)."""


@dataclass(frozen=True)
class PreparedSubmission:
    scratch: Path        # the worker's working directory
    package: Path        # scratch/submission: provided files + the student's files
    source: str          # where it came from, for the report
    missing: tuple[str, ...]

    def cleanup(self) -> None:
        remove_scratch_dir(self.scratch)


def prepare_submission(assignment: Assignment, source: Path | None) -> PreparedSubmission:
    source = source or assignment.directory
    if not source.exists():
        raise UnusableSubmission(f"the submission {source} does not exist")
    scratch = make_scratch_dir()
    package = scratch / "submission"
    package.mkdir()
    try:
        for name in assignment.spec.provided_files:
            shutil.copyfile(assignment.directory / name, package / name)
        init = assignment.directory / "__init__.py"
        if init.is_file() and "__init__.py" not in assignment.spec.provided_files:
            shutil.copyfile(init, package / "__init__.py")
        if source.is_dir():
            found = _from_directory(assignment, source, package)
        elif zipfile.is_zipfile(source):
            found = _from_zip(assignment, source, package)
        else:
            raise UnusableSubmission(f"{source} is neither a folder nor a zip archive")
    except BaseException:
        remove_scratch_dir(scratch)
        raise
    missing = tuple(n for n in assignment.spec.student_files if n not in found)
    if len(missing) == len(assignment.spec.student_files):
        remove_scratch_dir(scratch)
        raise UnusableSubmission(f"{source} holds none of the files to submit ({', '.join(missing)})")
    return PreparedSubmission(scratch, package, str(source), missing)


def _from_directory(assignment: Assignment, source: Path, package: Path) -> set[str]:
    found = set()
    for name in assignment.spec.student_files:
        path = source / name
        if path.is_file() and not path.is_symlink():
            if path.stat().st_size > MAX_FILE_BYTES:
                raise UnusableSubmission(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB")
            shutil.copyfile(path, package / name)
            found.add(name)
    return found


def _from_zip(assignment: Assignment, source: Path, package: Path) -> set[str]:
    """Only the student files are taken, from the archive's root or a single top folder; every
    entry name is checked before anything is written, and nothing is written outside scratch."""
    wanted = set(assignment.spec.student_files)
    found = set()
    try:
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                path = PurePosixPath(info.filename)
                if path.is_absolute() or ".." in path.parts:
                    raise UnusableSubmission(f"{source}: entry {info.filename!r} points outside the archive")
                if info.is_dir() or path.name not in wanted or len(path.parts) > 2:
                    continue
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise UnusableSubmission(f"{source}: entry {info.filename!r} is not a regular file")
                if info.file_size > MAX_FILE_BYTES:
                    raise UnusableSubmission(f"{source}: entry {info.filename!r} is larger than "
                                             f"{MAX_FILE_BYTES // 2**20} MiB")
                if path.name in found:
                    raise UnusableSubmission(f"{source}: {path.name} appears twice in the archive")
                with archive.open(info) as member:
                    data = member.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    raise UnusableSubmission(f"{source}: entry {info.filename!r} is larger than it claims")
                (package / path.name).write_bytes(data)
                found.add(path.name)
    except zipfile.BadZipFile as exc:
        raise UnusableSubmission(f"{source} is not a readable zip archive ({exc})") from exc
    return found
