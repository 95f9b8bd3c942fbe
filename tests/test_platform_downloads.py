"""Loose files of a learning platform's bulk download (Canvas, Blackboard, Moodle) grouped into one
submission per student, graded from a folder of their own: the latest attempt, under the names the
files were uploaded with."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from grader.batch.discover import discover, stage_uploads
from grader.batch.lms import export_grades
from grader.batch.platform_downloads import read_name
from grader.batch.run import grade_batch
from support import a1, make_submission
from test_batch import batch_options

A1 = "a1_fc_numpy"
NAMES = ("layers.py", "optim.py", "models.py")


def test_names_are_read_as_each_platform_writes_them():
    canvas = read_name(Path("garcíajosé_LATE_34567_89012_layers-2.py"))
    assert (canvas.platform, canvas.student, canvas.original, canvas.again) == ("Canvas", "garcíajosé_34567",
                                                                                "layers.py", 2)
    blackboard = read_name(Path("Assignment 1_jdoe_attempt_2026-02-03-09-30-00_optim.py"))
    assert (blackboard.platform, blackboard.student, blackboard.attempt, blackboard.original) == \
        ("Blackboard", "jdoe", "2026-02-03-09-30-00", "optim.py")
    receipt = read_name(Path("Assignment 1_jdoe_attempt_2026-02-03-09-30-00.txt"))
    assert receipt.platform == "Blackboard" and receipt.original == ""
    moodle = read_name(Path("Jane Doe_12345_assignsubmission_file_models.py"))
    assert (moodle.platform, moodle.student, moodle.original) == ("Moodle", "Jane Doe_12345", "models.py")
    assert read_name(Path("layers.py")) is None and read_name(Path("my_homework_1.zip")) is None
    # The part of a Canvas name a student chose cannot make it another platform's file of another student.
    for chosen in ("jdoe_attempt_2026-01-01-00-00-00_layers.py", "x_333_assignsubmission_file_layers.py"):
        smuggled = read_name(Path(f"mallory_111_3_{chosen}"))
        assert (smuggled.platform, smuggled.student, smuggled.original) == ("Canvas", "mallory_111", chosen)


def download(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(source)
    return folder


def test_each_students_latest_files_are_one_submission_under_their_uploaded_names(tmp_path):
    ref, stub = a1().reference_directory, a1().directory
    files = {}
    for name in NAMES:
        files[f"doejane_12345_6789{len(files)}_{name}"] = (ref / name).read_text()
        # Uploaded again: Canvas numbers the new file; only it is graded.
        files[f"smithjohn_LATE_23456_7890{len(files)}_{Path(name).stem}-1.py"] = (ref / name).read_text()
        files[f"smithjohn_LATE_23456_7891{len(files)}_{name}"] = (stub / name).read_text()
        files[f"A1_jlee_attempt_2026-02-01-10-00-00_{name}"] = (stub / name).read_text()
        files[f"A1_jlee_attempt_2026-02-03-09-30-00_{name}"] = (ref / name).read_text()
    files["A1_jlee_attempt_2026-02-03-09-30-00.txt"] = "Name: J Lee\n"
    files["doejane_12345_67999_notes.pdf"] = "%PDF"
    subs = download(tmp_path / "subs", files)
    os.mkfifo(subs / "doejane_12345_68000_optim.py")   # not a regular file: never opened
    (subs / "doejane_12345_68001_models.py").symlink_to("/etc/passwd")
    found, passed_over = discover(A1, subs, NAMES, stage_in=tmp_path / "staged")
    assert [s.id for s in found] == ["doejane_12345", "jlee", "smithjohn_23456"]
    # Canvas's LATE is in the names only: kept as a note of the submission's result.
    assert [s.notes for s in found] == [(), (), ("Canvas marks this submission late (LATE in its download's file "
                                                 "names)",)]
    stage_uploads(found)
    for submission in found:
        assert sorted(p.name for p in submission.path.iterdir()) == sorted(NAMES)
        assert (submission.path / "layers.py").read_text() == (ref / "layers.py").read_text()
    assert sum("an earlier attempt of jlee" in line for line in passed_over) == 3
    assert any(line.startswith("A1_jlee_attempt_2026-02-03-09-30-00.txt: Blackboard's record") for line in passed_over)
    assert any(line.startswith("doejane_12345_67999_notes.pdf: uploaded by doejane_12345, not a file")
               for line in passed_over)
    assert "doejane_12345_68000_optim.py: not a regular file of at most 80 MiB" in passed_over
    assert "doejane_12345_68001_models.py: a symbolic link, not graded" in passed_over


def test_of_two_canvas_downloads_merged_the_later_upload_is_graded_and_the_other_named(tmp_path):
    ref, stub = a1().reference_directory, a1().directory
    files = {f"doejane_12345_99999_{name}": (stub / name).read_text() for name in NAMES}
    files.update({f"doejane_12345_{100000 + i}_{name}": (ref / name).read_text() for i, name in enumerate(NAMES)})
    found, passed_over = discover(A1, download(tmp_path / "subs", files), NAMES, stage_in=tmp_path / "staged")
    stage_uploads(found)
    assert (found[0].path / "layers.py").read_text() == (ref / "layers.py").read_text()
    assert ("doejane_12345_99999_layers.py: doejane_12345 uploaded layers.py again later "
            "(doejane_12345_100000_layers.py), which is graded") in passed_over


def test_a_canvas_file_a_browser_numbered_is_graded_as_the_file_it_stands_for(tmp_path):
    ref = a1().reference_directory
    files = {f"dupbob_222_{i}_{name}": (ref / name).read_text() for i, name in enumerate(NAMES)}
    files["dupbob_222_9_layers (1).py"] = files.pop("dupbob_222_0_layers.py")
    found, passed_over = discover(A1, download(tmp_path / "subs", files), NAMES, stage_in=tmp_path / "staged")
    assert [s.id for s in found] == ["dupbob_222"] and passed_over == []
    stage_uploads(found)
    assert (found[0].path / "layers (1).py").read_text() == (ref / "layers.py").read_text()


def test_a_batch_of_a_canvas_download_grades_each_student_once(tmp_path):
    ref = a1().reference_directory
    files = {f"doejane_12345_6789{i}_{name}": (ref / name).read_text() for i, name in enumerate(NAMES)}
    subs = download(tmp_path / "subs", files)
    make_submission(subs / "Min Kim_56789_assignsubmission_file_", a1(), "reference")
    download(subs / "Min Kim_56789_assignsubmission_onlinetext_", {"onlinetext.html": "<p>done</p>"})
    outcome = grade_batch(batch_options(subs, tmp_path / "out", only="affine.forward", jobs=1, similarity="off"))
    assert {r["id"]: r["score"] for r in outcome.records} == {"doejane_12345": 2.0,
                                                               "Min_Kim_56789_assignsubmission_file": 2.0}
    assert outcome.passed_over == ["Min Kim_56789_assignsubmission_onlinetext_: Moodle's onlinetext submission, "
                                   "not uploaded files: not graded"]
    # Canvas's import finds a student by the user id of its download's names; Moodle's participant id is no user's.
    export = export_grades(tmp_path / "out", "canvas")
    with open(export.path, newline="", encoding="utf-8") as file:
        table = list(csv.reader(file))
    assert [row[:2] for row in table[2:]] == [["Min_Kim_56789_assignsubmission_file", ""], ["doejane_12345", "12345"]]


def test_code_to_read_is_listed_in_the_batchs_summary(tmp_path):
    ref = a1().reference_directory
    layers = (ref / "layers.py").read_text() + "\n\nTABLE = '" + "x" * 70_000 + "'\n"
    subs = tmp_path / "subs"
    make_submission(subs / "carl", a1(), "reference", {"layers.py": layers})
    make_submission(subs / "dana", a1(), "reference")
    outcome = grade_batch(batch_options(subs, tmp_path / "out", only="affine.forward", jobs=1, similarity="off"))
    assert [ident for ident, _ in outcome.summary.to_read] == ["carl"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Code to read" in summary and "| carl | layers.py carries 68 KiB of data in its source" in summary
