"""Whose a submission of a batch is: the instructor's names for it (its folder or archive, a Gradescope
export's metadata), never its own MANIFEST.json, whose claim is reported in its result."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from grader.batch.discover import discover
from grader.batch.run import BatchOptions, grade_batch
from hostile_text import assert_valid_json
from support import A1, a1, make_submission


def claim(folder: Path, **manifest: object) -> None:
    (folder / "MANIFEST.json").write_text(json.dumps({"assignment": A1, **manifest}))


def test_a_manifest_claiming_another_student_keeps_its_folders_id_and_is_reported(tmp_path):
    subs = tmp_path / "subs"
    claim(make_submission(subs / "mallory", a1(), "stubs"), student="alice")
    make_submission(subs / "alice", a1(), "reference")
    with zipfile.ZipFile(subs / "trudy.zip", "w") as archive:
        archive.writestr("MANIFEST.json", json.dumps({"id": "bob\n::error::x"}))
        archive.writestr("layers.py", "x = 1\n")
    claim(make_submission(subs / "carol", a1(), "reference"), student="carol")  # its own name: nothing to say
    found = {s.id: s for s in discover(A1, subs)[0]}
    assert sorted(found) == ["alice", "carol", "mallory", "trudy"]
    assert found["mallory"].path == subs / "mallory" and found["alice"].notes == found["carol"].notes == ()
    assert "names the student 'alice'" in found["mallory"].notes[0] and "graded as mallory" in found["mallory"].notes[0]
    assert "'bob\\n::error::x'" in found["trudy"].notes[0]  # quoted, so the claim cannot start a line


def test_a_gradescope_exports_names_win_over_a_manifest(tmp_path):
    subs = tmp_path / "subs"
    claim(make_submission(subs / "submission_7", a1()), student="someone-else")
    (subs / "submission_metadata.yml").write_text("submission_7:\n  :submitters:\n  - :sid: '2024007'\n")
    (found,) = discover(A1, subs)[0]
    assert found.id == "2024007" and "'someone-else'" in found.notes[0]


def test_no_id_reads_as_a_spreadsheet_formula(tmp_path):
    subs = tmp_path / "subs"
    for name in ("=HYPERLINK(x)", "+1", "@SUM", "-x", "__"):
        make_submission(subs / name, a1())
    assert sorted(s.id for s in discover(A1, subs)[0]) == ["1", "HYPERLINK_x", "SUM", "submission", "x"]


def test_the_batch_grades_a_false_claim_under_its_own_id_and_says_so(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    claim(make_submission(subs / "mallory", a1(), "stubs"), student="alice")
    make_submission(subs / "alice", a1(), "reference")
    outcome = grade_batch(BatchOptions(assignment=A1, submissions=subs, out=out, jobs=1, seed=5, training=False,
                                     mode="official", only="affine.forward"))
    assert {r["id"]: r["score"] for r in outcome.records} == {"alice": 2.0, "mallory": 0.0}
    with open(out / "gradebook.csv", newline="") as file:
        assert [(row["id"], row["total"]) for row in csv.DictReader(file)] == [("alice", "2"), ("mallory", "0")]
    mallory = assert_valid_json(out / "submissions" / "mallory" / "results.json")
    assert mallory["output"].startswith("Its MANIFEST.json names the student 'alice'; it was graded as mallory")
    assert "names the student 'alice'" in (out / "submissions" / "mallory" / "feedback.txt").read_text()
    assert "MANIFEST" not in assert_valid_json(out / "submissions" / "alice" / "results.json")["output"]
