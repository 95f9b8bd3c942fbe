"""The submission zip: exactly the student's files, a MANIFEST.json, and the local results.json for
information (official grading regrades and never reads it)."""

from __future__ import annotations

import datetime
import hashlib
import json
import zipfile
from pathlib import Path

from grader import __version__
from grader.assignment import Assignment
from grader.engine.grading import library_versions
from grader.files import atomic_file, find_student_files
from grader.report.gradescope import to_results_json
from grader.results import GradingResult


class ZipError(Exception):
    """The zip cannot be written as asked; the message names the file at fault."""


def manifest(assignment: Assignment, files: dict[str, bytes]) -> dict:
    return {
        "assignment": assignment.id,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        "grader_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }


def read_student_files(assignment: Assignment, source: Path) -> dict[str, bytes]:
    """The student files of `source`, found where the intake finds them (its top, or one folder below)."""
    found = find_student_files(source, assignment.spec.student_files, assignment.id, assignment.other_assignments)
    if found.ambiguous:
        raise ZipError(f"cannot write the submission zip: the files to submit are in several folders of "
                       f"{source} ({found.listing()})")
    files = {}
    for name in assignment.spec.student_files:
        path = found.folder / name
        if not path.is_file():
            raise ZipError(f"cannot write the submission zip: {path} is missing")
        data = path.read_bytes()
        if not data.strip():
            raise ZipError(f"cannot write the submission zip: {path} is empty")
        files[name] = data
    return files


def write_submission_zip(assignment: Assignment, source: Path, destination: Path,
                         result: GradingResult | None) -> dict:
    files = read_student_files(assignment, source)
    info = manifest(assignment, files)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(destination) as file, zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("MANIFEST.json", json.dumps(info, indent=2) + "\n")
        if result is not None:
            archive.writestr("results.json", json.dumps(to_results_json(result), indent=2) + "\n")
    return info
