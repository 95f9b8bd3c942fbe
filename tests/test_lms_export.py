"""`grader gradebook`: a batch's grades in the layouts Canvas and Moodle import, named through a roster."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from grader.batch.lms import CANVAS_COLUMNS, MOODLE_COLUMNS, LmsExportError, export_grades, read_roster
from grader.batch.store import BatchStore
from grader.cli import main


def record(ident: str, score: float, status: str = "graded", max_score: float = 10.0) -> dict:
    return {"id": ident, "status": status, "score": score, "max_score": max_score, "seed": 1, "tasks": {},
            "errors": "", "seconds": 0.0, "results": {}, "feedback": ""}


@pytest.fixture
def batch(tmp_path) -> Path:
    """A batch's folder as `grader batch` leaves it: alice 7.5, bob 0 (unusable), carol not graded (error)."""
    out = tmp_path / "out"
    store = BatchStore(out)
    try:
        store.bind({"assignment": "a1_fc_numpy", "mode": "official", "seed": "1"})
        run = store.begin_run([])
        for rec in (record("alice", 7.5), record("bob", 0.0, "unusable"), record("carol", 0.0, "error")):
            attempt = store.claim(rec["id"], f"subs/{rec['id']}", "hash", run)
            store.finish(rec["id"], run, attempt, rec)
    finally:
        store.close()
    return out


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_canvas_has_the_documented_header_and_points_possible_row(batch):
    export = export_grades(batch, "canvas", assignment_name="Assignment 1", assignment_id="12345")
    written = rows(export.path)
    # The example of Canvas's guide: five student columns, then "<name> (<id>)", then Points Possible.
    assert written[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Assignment 1 (12345)"]
    assert list(CANVAS_COLUMNS) == written[0][:5]
    assert written[1] == ["Points Possible", "", "", "", "", "10"]
    # Without a roster, the submission's id is the student's name and login.
    assert written[2:] == [["alice", "", "", "alice", "", "7.5"], ["bob", "", "", "bob", "", "0"],
                           ["carol", "", "", "carol", "", ""]]
    assert export.path == batch / "grades_canvas.csv"
    assert export.warnings == ["carol: not graded (the grader failed: see gradebook.csv); its grade is left empty"]


def test_canvas_without_an_assignment_id_names_the_column_after_the_batchs_assignment(batch):
    assert rows(export_grades(batch, "canvas").path)[0][-1] == "a1_fc_numpy"


def test_moodle_parses_with_its_identifier_columns_and_one_grade_column(batch, tmp_path):
    out = tmp_path / "moodle.csv"
    export_grades(batch, "moodle", out=out, assignment_name="Homework 1")
    with open(out, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == ["Email address", "ID number", "Username", "Homework 1"]
        assert list(MOODLE_COLUMNS) == reader.fieldnames[:3]
        by_user = {row["Username"]: row["Homework 1"] for row in reader}
    assert by_user == {"alice": "7.5", "bob": "0", "carol": ""}


def test_plain_csv_is_id_total_max(batch):
    assert rows(export_grades(batch, "csv").path) == [["id", "total", "max"], ["alice", "7.5", "10"],
                                                      ["bob", "0", "10"], ["carol", "", "10"]]


def test_a_roster_names_the_students_leaves_out_the_unnamed_and_keeps_the_unsubmitted(batch, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffSubmission,Name,canvas_id,sis_user_id,sis_login_id,section,email,idnumber\n"
                      "alice,\"Liddell, Alice\",101,S1,aliddell,Sec 1,alice@uni.edu,2024001\n"
                      "dave,Dave Null,104,S4,dnull,Sec 2,dave@uni.edu,2024004\n"
                      "carol,Carol C,103,S3,ccc,Sec 1,carol@uni.edu,2024003\n", encoding="utf-8")
    canvas = export_grades(batch, "canvas", roster=roster, assignment_name="HW1", assignment_id="7")
    assert rows(canvas.path)[2:] == [["Liddell, Alice", "101", "S1", "aliddell", "Sec 1", "7.5"],
                                     ["Dave Null", "104", "S4", "dnull", "Sec 2", ""],   # no submission
                                     ["Carol C", "103", "S3", "ccc", "Sec 1", ""]]       # not graded
    assert "bob: not in the roster, left out" in canvas.warnings and canvas.rows == 3
    moodle = export_grades(batch, "moodle", roster=roster, assignment_name="HW1")
    assert rows(moodle.path)[1:] == [["alice@uni.edu", "2024001", "", "7.5"], ["dave@uni.edu", "2024004", "", ""],
                                     ["carol@uni.edu", "2024003", "", ""]]


def test_a_roster_with_an_unknown_column_or_no_submission_column_is_refused(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,mail\nalice,a@b\n")
    with pytest.raises(LmsExportError, match="not 'mail'"):
        read_roster(roster)
    roster.write_text("name\nAlice\n")
    with pytest.raises(LmsExportError, match="must name a 'submission' column"):
        read_roster(roster)


def test_the_command_writes_the_file_and_warns(batch, tmp_path, capsys):
    out = tmp_path / "canvas.csv"
    assert main(["gradebook", str(batch), "--format", "canvas", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"wrote 3 grade(s) for canvas to {out}" in captured.out
    assert "warning: carol: not graded" in captured.err
    assert rows(out)[0][:5] == list(CANVAS_COLUMNS)


def test_an_unknown_format_or_a_folder_that_is_not_a_batch_is_a_usage_error(batch, tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:
        main(["gradebook", str(batch), "--format", "blackboard"])
    assert usage.value.code == 2 and "invalid choice: 'blackboard'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["gradebook", str(folder), "--format", "csv"]) == 2
        assert f"{folder} is not a batch: it holds no batch.sqlite" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "grades_csv.csv").exists()
    assert main(["gradebook", str(batch), "--format", "csv", "--roster", str(tmp_path / "none.csv")]) == 2
    assert "roster" in capsys.readouterr().err
    with pytest.raises(LmsExportError, match="unknown format 'xls'"):
        export_grades(batch, "xls")


def found_batch(out: Path, records: list[dict], **found) -> Path:
    """A batch's folder whose latest run found `records`, with what discovery read beside their ids
    (`canvas_ids`, `members`)."""
    store = BatchStore(out)
    try:
        store.bind({"assignment": "a1_fc_numpy", "mode": "official", "seed": "1"})
        run = store.begin_run([])
        for rec in records:
            attempt = store.claim(rec["id"], f"subs/{rec['id']}", "hash", run)
            store.finish(rec["id"], run, attempt, rec)
        store.record_found([rec["id"] for rec in records], **found)
    finally:
        store.close()
    return out


def test_a_canvas_downloads_user_ids_fill_the_id_column_and_a_rosters_blanks(tmp_path):
    out = found_batch(tmp_path / "out", [record("doejane_12345", 9.0), record("leeamy_23456", 4.0),
                                         record("kimmin_34567", 5.0)],
                      canvas_ids={"doejane_12345": "12345", "leeamy_23456": "23456", "kimmin_34567": "34567"})
    assert [row[:2] for row in rows(export_grades(out, "canvas").path)[2:]] == [
        ["doejane_12345", "12345"], ["kimmin_34567", "34567"], ["leeamy_23456", "23456"]]
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,name,canvas_id\ndoejane_12345,\"Doe, Jane\",\nleeamy_23456,\"Lee, Amy\",999\n")
    export = export_grades(out, "canvas", roster=roster, out=tmp_path / "c.csv")
    assert [row[:2] for row in rows(export.path)[2:]] == [["Doe, Jane", "12345"], ["Lee, Amy", "999"]]
    assert ("leeamy_23456: the roster's canvas_id 999 is not the user id 23456 of the Canvas download's file names; "
            "the roster's is written") in export.warnings


def test_a_groups_submission_gives_each_member_the_groups_grade(tmp_path):
    out = found_batch(tmp_path / "out", [record("23456+34567", 9.0), record("45678", 4.0)],
                      members={"23456+34567": ["23456", "34567"]})
    assert rows(export_grades(out, "csv").path)[1:] == [["23456", "9", "10"], ["34567", "9", "10"], ["45678", "4", "10"]]
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,name,sis_user_id\n23456+34567,Ann,23456\n23456+34567,Ben,34567\n"
                      "45678,Cy,45678\n45678,Cy again,45678\n")
    export = export_grades(out, "canvas", roster=roster, out=tmp_path / "c.csv")
    assert [(row[0], row[-1]) for row in rows(export.path)[2:]] == [("Ann", "9"), ("Ben", "9"), ("Cy", "4"),
                                                                    ("Cy again", "4")]
    assert export.warnings == ["45678: named on 2 rows of the roster, though no group's submission; each row gets its "
                               "grade"]
