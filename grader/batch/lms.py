"""`grader gradebook`: a batch's grades in the CSV layout a learning management system imports.

The grades are read from the batch's database (`DIR/batch.sqlite`, written by `grader batch`), one
total per submission, and written as one of FORMATS:

- `canvas`: Canvas's Grade Import CSV. The layout is the one Canvas's gradebook export writes and its
  import reads back ("How do I import grades in the Gradebook?", Canvas Instructor Guide,
  https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807;
  the required columns spelled out in https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/
  calculating-final-grades/import-csv-file-carmen-grades): the columns `Student`, `ID`, `SIS User ID`,
  `SIS Login ID`, `Section`, then one per assignment named `<Assignment name> (<assignment id>)`, and a
  second row `Points Possible` that holds each assignment's points. Canvas finds a student by `ID`,
  `SIS User ID` or `SIS Login ID`; a column name without a Canvas assignment id makes a new assignment.
- `moodle`: Moodle's CSV grade import (https://docs.moodle.org/311/en/Grade_import): a header row, one
  row per student, and on import the instructor maps an identifying column to a user field ("Email
  address" to useremail, "ID number" to useridnumber, or a username) and the grade column to a grade
  item. The columns are `Email address`, `ID number`, `Username` (the names Moodle's own export gives
  them) and one grade column named after the assignment.
- `csv`: `id,total,max`, one row per submission.

Who a submission is in the LMS: without a roster, its id (the name of its folder or archive, or its
submitters in a Gradescope export) is the student's login (Canvas `SIS Login ID`, Moodle `Username`)
and name; a submission from Canvas's own download also has its Canvas user id (`ID`, read from the
download's file names by grader.batch.platform_downloads), which Canvas matches first, so that such a
batch imports into Canvas without a roster. A roster's blank `canvas_id` is filled the same way.
A group's submission (a Gradescope export naming several submitters) gives each member a row of
their own with the group's grade; a roster names such a submission on each member's row. A roster is a CSV file with a header naming some of ROSTER_COLUMNS (any order, any case):
`submission` (required: the submission's id as `grader batch` names it), `name`, `canvas_id`,
`sis_user_id`, `sis_login_id`, `section` (Canvas), `email`, `idnumber`, `username` (Moodle). With a
roster, the file has one row per roster row, in its order: a submission the roster does not name is
left out with a warning, a roster row whose submission is not in the batch gets an empty grade.
A submission the grader itself could not grade (status `error`) gets an empty grade and a warning:
it is not the student's zero.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from grader.batch.store import CANVAS_IDS_KEY, DATABASE_NAME, ERROR, FOUND_KEY, MEMBERS_KEY
from grader.files import write_atomically
from grader.options import LMS_FORMATS, ROSTER_COLUMNS

FORMATS = LMS_FORMATS
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "Points Possible"
MOODLE_COLUMNS = ("Email address", "ID number", "Username")


class LmsExportError(Exception):
    """What keeps the grades from being written: not a batch, an unreadable roster, an unknown format."""


@dataclass(frozen=True)
class Student:
    """One student as the LMS knows them (a roster row); blank where the roster does not say."""

    submission: str
    name: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""
    idnumber: str = ""
    username: str = ""

    @classmethod
    def from_submission(cls, ident: str, canvas_id: str = "") -> Student:
        return cls(submission=ident, name=ident, canvas_id=canvas_id, sis_login_id=ident, username=ident)


assert ROSTER_COLUMNS == tuple(f.name for f in fields(Student)), "grader.options names the roster's columns"


@dataclass(frozen=True)
class Grade:
    student: Student
    score: Optional[float]  # None: left empty (no submission, or the grader failed)


@dataclass(frozen=True)
class Export:
    path: Path
    rows: int
    warnings: list[str]


def read_batch(folder: Path) -> tuple[dict[str, str], list[dict[str, Any]], list[str]]:
    """The batch's settings, the records of its graded submissions that its latest run found, in id
    order, and the ids of those graded by an earlier run only (gone from the submissions folder since:
    a resubmission the platform named anew), which are left out."""
    database = folder / DATABASE_NAME
    if not folder.is_dir() or not database.is_file():
        raise LmsExportError(f"{folder} is not a batch: it holds no {DATABASE_NAME} (give the --out folder "
                             "of `grader batch`)")
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            settings = dict(connection.execute("SELECT key, value FROM meta"))
            rows = connection.execute("SELECT record FROM submissions WHERE state = 'done' AND record IS NOT NULL "
                                      "ORDER BY id").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise LmsExportError(f"{database} cannot be read as a batch's database: {exc}") from None
    records = [json.loads(row[0]) for row in rows]
    try:
        found = set(json.loads(settings[FOUND_KEY])) if FOUND_KEY in settings else None
    except ValueError:
        found = None
    if found is None:
        return settings, records, []
    return settings, [r for r in records if r["id"] in found], [r["id"] for r in records if r["id"] not in found]


def read_roster(path: Path) -> list[Student]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not part of the header
    except (OSError, UnicodeDecodeError) as exc:
        raise LmsExportError(f"roster {path}: cannot be read: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = [column.strip().lower() for column in next(reader, [])]
    unknown = [column for column in header if column not in ROSTER_COLUMNS]
    if unknown or "submission" not in header:
        raise LmsExportError(f"roster {path}: its header must name a 'submission' column and otherwise only "
                             f"{', '.join(ROSTER_COLUMNS[1:])}" + (f"; not {', '.join(map(repr, unknown))}" if unknown else ""))
    students = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        values = {column: cell.strip() for column, cell in zip(header, row)}
        students.append(Student(**{column: values.get(column, "") for column in ROSTER_COLUMNS}))
    return students


def grades_for(records: Sequence[dict[str, Any]], roster: Optional[Sequence[Student]],
               canvas_ids: Optional[dict[str, str]] = None,
               members: Optional[dict[str, list[str]]] = None) -> tuple[list[Grade], list[str]]:
    """Each student's grade, and warnings: submissions left out, grades left empty, a roster's Canvas id
    that is not the one the submission's download names, a submission a roster names on several rows
    that is no group's. `canvas_ids`: the Canvas user ids of the submissions that a Canvas download
    named; `members`: the submitters of each group's submission."""
    canvas_ids, members = canvas_ids or {}, members or {}
    warnings = []
    scores: dict[str, Optional[float]] = {}
    for record in records:
        if record["status"] == ERROR:
            warnings.append(f"{record['id']}: not graded (the grader failed: see gradebook.csv); its grade is left empty")
            scores[record["id"]] = None
        else:
            scores[record["id"]] = float(record["score"])
    if roster is None:
        return [Grade(Student.from_submission(person, canvas_ids.get(ident, "")), score)
                for ident, score in scores.items() for person in members.get(ident) or [ident]], warnings
    named = {student.submission for student in roster}
    rows = {}
    for student in roster:
        rows[student.submission] = rows.get(student.submission, 0) + 1
    for ident, count in rows.items():
        if ident and count > 1 and ident not in members:
            warnings.append(f"{ident}: named on {count} rows of the roster, though no group's submission; each row "
                            "gets its grade")
    for ident in scores:
        if ident not in named:
            warnings.append(f"{ident}: not in the roster, left out")
    grades = []
    for student in roster:
        downloaded = canvas_ids.get(student.submission, "")
        if downloaded and not student.canvas_id:
            student = replace(student, canvas_id=downloaded)
        elif downloaded and student.canvas_id != downloaded:
            warnings.append(f"{student.submission}: the roster's canvas_id {student.canvas_id} is not the user id "
                            f"{downloaded} of the Canvas download's file names; the roster's is written")
        grades.append(Grade(student, scores.get(student.submission)))
    return grades, warnings


def canvas_csv(grades: Sequence[Grade], column: str, points_possible: float) -> str:
    rows = [[*CANVAS_COLUMNS, column], [CANVAS_POINTS_ROW, "", "", "", "", _number(points_possible)]]
    rows += [[g.student.name, g.student.canvas_id, g.student.sis_user_id, g.student.sis_login_id, g.student.section,
              _number(g.score)] for g in grades]
    return _csv(rows)


def moodle_csv(grades: Sequence[Grade], column: str) -> str:
    rows = [[*MOODLE_COLUMNS, column]]
    rows += [[g.student.email, g.student.idnumber, g.student.username, _number(g.score)] for g in grades]
    return _csv(rows)


def plain_csv(grades: Sequence[Grade], points_possible: float) -> str:
    rows = [["id", "total", "max"]]
    rows += [[g.student.submission, _number(g.score), _number(points_possible)] for g in grades]
    return _csv(rows)


def export_grades(batch_dir: Path, lms_format: str, *, roster: Optional[Path] = None, out: Optional[Path] = None,
                  assignment_name: Optional[str] = None, assignment_id: Optional[str] = None) -> Export:
    """Writes the batch's grades in `lms_format` to `out` (default DIR/grades_<format>.csv)."""
    if lms_format not in FORMATS:
        raise LmsExportError(f"unknown format {lms_format!r}: expected one of {', '.join(FORMATS)}")
    settings, records, gone = read_batch(batch_dir)
    students = read_roster(roster) if roster is not None else None
    grades, warnings = grades_for(records, students, _json_mapping(settings, CANVAS_IDS_KEY),
                                  _json_mapping(settings, MEMBERS_KEY))
    warnings += [f"{ident}: graded by an earlier run but no longer in the submissions folder, left out" for ident in gone]
    points_possible = max((float(r["max_score"]) for r in records), default=0.0)
    name = assignment_name or settings.get("assignment", "grade")
    if lms_format == "canvas":
        text = canvas_csv(grades, f"{name} ({assignment_id})" if assignment_id else name, points_possible)
    elif lms_format == "moodle":
        text = moodle_csv(grades, name)
    else:
        text = plain_csv(grades, points_possible)
    path = out if out is not None else batch_dir / f"grades_{lms_format}.csv"
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise LmsExportError(f"cannot write {path}: {exc}") from None
    return Export(path, len(grades), warnings)


def _json_mapping(settings: dict[str, str], key: str) -> dict[str, Any]:
    """A mapping the batch's meta table keeps as JSON (empty where a batch of an earlier version has none)."""
    try:
        read = json.loads(settings.get(key, "{}"))
    except ValueError:
        return {}
    return {str(k): v for k, v in read.items()} if isinstance(read, dict) else {}


def _number(value: Optional[float]) -> str:
    return "" if value is None else f"{value:g}"


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
