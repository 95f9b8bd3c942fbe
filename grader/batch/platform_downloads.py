"""Loose files from a learning platform's bulk download, grouped into one submission per student.

Where students upload their files one by one, a platform's "download all submissions" puts every
student's files side by side in one folder, each named after its student:

- Canvas: `doejane_12345_67890_layers.py`, i.e. `<name>_[LATE_]<user id>_<attachment id>_<file>`, and
  `layers-1.py` for a file uploaded again (only the latest submission is in the download);
- Blackboard: `A1_jdoe_attempt_2026-02-03-09-30-00_layers.py`, i.e.
  `<assignment>_<username>_attempt_<date>_<file>`, every attempt kept, with a receipt
  `..._attempt_<date>.txt` beside each;
- Moodle (without "download submissions in folders"): `Jane Doe_12345_assignsubmission_file_layers.py`,
  i.e. `<full name>_<participant id>_assignsubmission_<plugin>_<file>`.

Each student's files are copied under the names they were uploaded with into a folder of their own
(an uploaded zip or notebook stays one, and is graded as a folder holding only it is), which is
graded as a submission named `<name>_<user id>` (Canvas), `<username>` (Blackboard) or
`<full name>_<participant id>` (Moodle). A Canvas user id is the one Canvas's gradebook import finds a
student by (its `ID` column): it is kept with the submission for `grader gradebook --format canvas`. Of a student's Blackboard attempts the latest is graded and
the others are named as passed over. Nothing else of a file is read here.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from grader.files import stands_for

_CANVAS = re.compile(r"^(?P<name>[^\W_]+)_(?P<late>late_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$",
                     re.IGNORECASE)
_BLACKBOARD = re.compile(r"^(?P<assignment>.+?)_(?P<user>[^_]+)_attempt_"
                         r"(?P<when>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})(?:_(?P<file>.+)|\.txt)?$")
_MOODLE = re.compile(r"^(?P<name>.+)_(?P<user>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)$")
_CANVAS_AGAIN = re.compile(r"-(?P<number>\d+)(?=\.[^.]+$)")   # layers-1.py: uploaded again
# What of a student's upload can hold the submission: zips and notebooks besides the student files.
_UPLOADS = (".zip", ".ipynb")
# Larger files are not copied (the intake would refuse them: its largest archive is 80 MiB).
MAX_STAGED_BYTES = 80 * 1024 * 1024


@dataclass(frozen=True)
class PlatformFile:
    """One loose file of a platform's download, read from its name."""

    path: Path
    platform: str      # "Canvas", "Blackboard" or "Moodle"
    student: str       # the submission's name: who uploaded it, as the platform names them
    attempt: str       # sortable; the latest of a student's attempts is graded ("" where only one is kept)
    original: str      # the file's name as the student uploaded it ("" for a platform's receipt)
    again: int = 0     # Canvas: how many times the file was uploaded again
    canvas_id: str = ""  # Canvas: the student's user id, which Canvas's gradebook import matches
    upload: int = 0    # Canvas: the attachment's id, larger for a later upload (two downloads merged)
    late: bool = False  # Canvas: the download's name marks the submission late (LATE)


def moodle_plugin(name: str) -> Optional[str]:
    """The plugin of a Moodle submission's folder or file (`file`, `onlinetext`, ...); None for other names."""
    match = _MOODLE.match(name)
    return match["plugin"] if match is not None else None


def read_name(path: Path) -> Optional[PlatformFile]:
    """What a loose file's name says, where a platform named it; None otherwise. Canvas is read first:
    its student part is anchored at the start of the name (letters, then numbers), where the other
    patterns could find a student in the part of the name the student chose (`mallory_111_3_` +
    `jdoe_attempt_<date>_layers.py` is mallory's file, not jdoe's attempt)."""
    name = path.name
    if (match := _CANVAS.match(name)) is not None:
        again = _CANVAS_AGAIN.search(match["file"])
        original = _CANVAS_AGAIN.sub("", match["file"]) if again else match["file"]
        return PlatformFile(path, "Canvas", f"{match['name']}_{match['user']}", "", original,
                            int(again["number"]) if again else 0, match["user"], int(match["attachment"]),
                            bool(match["late"]))
    if (match := _MOODLE.match(name)) is not None:   # an online text or a comment is no file uploaded
        original = match["file"] if match["plugin"] == "file" else ""
        return PlatformFile(path, "Moodle", f"{match['name']}_{match['user']}", "", original)
    if (match := _BLACKBOARD.match(name)) is not None:
        return PlatformFile(path, "Blackboard", match["user"], match["when"], match["file"] or "")
    return None


@dataclass(frozen=True)
class StudentUpload:
    """A student's files of one attempt, to be staged as a folder and graded."""

    student: str
    platform: str
    files: dict[str, Path]   # the name to stage it under -> the downloaded file
    canvas_id: str = ""      # Canvas: the student's user id (PlatformFile.canvas_id)
    late: bool = False       # Canvas: marked late in the download (PlatformFile.late)


def group(files: Iterable[PlatformFile], student_files: Iterable[str]) -> tuple[list[StudentUpload], list[str]]:
    """Each student's latest attempt, with the files that can hold the submission (the student files by
    name, in any letter case, zips and notebooks), and a line for each file passed over."""
    student_files = tuple(student_files)
    wanted = {name.casefold() for name in student_files}
    by_student: dict[tuple[str, str], list[PlatformFile]] = {}
    passed_over = []
    for file in files:
        if not file.original:
            passed_over.append(f"{file.path.name}: {file.platform}'s record of a submission, not a file uploaded")
            continue
        by_student.setdefault((file.platform, file.student), []).append(file)
    uploads = []
    for (platform, student), found in sorted(by_student.items()):
        latest = max(file.attempt for file in found)
        chosen: dict[str, PlatformFile] = {}
        # The latest upload of a name wins: numbered again by Canvas, then by its attachment id as a
        # number (99999 before 100000), where two downloads were merged.
        for file in sorted(found, key=lambda f: (f.attempt, f.again, f.upload, f.path.name)):
            if file.attempt != latest:
                passed_over.append(f"{file.path.name}: an earlier attempt of {student}, whose latest ({latest}) "
                                   "is graded")
            elif file.original in (".", "..") or file.original.startswith("."):
                passed_over.append(f"{file.path.name}: uploaded by {student} under a name that is no file's")
            elif not file.path.is_file() or file.path.stat().st_size > MAX_STAGED_BYTES:
                passed_over.append(f"{file.path.name}: not a regular file of at most {MAX_STAGED_BYTES // 2**20} MiB")
            elif (file.original.casefold() in wanted or file.original.lower().endswith(_UPLOADS)
                  or any(stands_for(file.original, name) for name in student_files)):
                if file.original in chosen:
                    passed_over.append(f"{chosen[file.original].path.name}: {student} uploaded {file.original} "
                                       f"again later ({file.path.name}), which is graded")
                chosen[file.original] = file   # the last uploaded wins
            else:
                passed_over.append(f"{file.path.name}: uploaded by {student}, not a file to submit, a zip nor a "
                                   "notebook")
        if chosen:
            uploads.append(StudentUpload(student, platform, {name: f.path for name, f in chosen.items()},
                                         found[0].canvas_id, any(f.late for f in chosen.values())))
    return uploads, passed_over


def stage(upload: StudentUpload, folder: Path) -> Path:
    """The student's files copied into `folder` (emptied first) under the names they were uploaded with."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, source in upload.files.items():
        shutil.copyfile(source, folder / name)
    return folder
