"""A class as its instructor sees it: 21 submissions of a1 (the reference, the stubs, catalogued
mistakes, students' own work, two that copy each other with renamed variables, one that crashes its
worker) graded by `grader batch` with similarity on; report.html is read as text and opened in
headless Chromium, and the gradebook exports to Canvas."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from pathlib import Path

import pytest

from grader.cli import main
from support import a1, make_submission
from test_similarity import build_batch

pytestmark = pytest.mark.slow  # a class of 21 submissions graded end to end: ./grade.sh --selftest --all (CI) runs it

# The checks of a few tasks and one short training task: enough for every section of the report.
ONLY = "affine.*,relu.*,softmax_loss.*,svm_loss.*,optim.*,fc_net.overfit"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    assignment = a1()
    submissions = tmp_path_factory.mktemp("class")
    kinds = build_batch(submissions, assignment)                 # 12: honest, own work, a copied pair, stubs
    for name in ("reference", "reference_again"):
        make_submission(submissions / name, assignment, "reference")
        kinds[name] = "honest"
    crash = make_submission(submissions / "crash", assignment, "reference")
    layers = crash / "layers.py"
    layers.write_text("import os\nos._exit(3)  # the worker dies importing this\n" + layers.read_text())
    kinds["crash"] = "crash"
    for index in range(6):                                           # more of the class: the reference again
        make_submission(submissions / f"student_{index}", assignment, "reference")
        kinds[f"student_{index}"] = "honest"
    assert len(kinds) >= 20
    out = tmp_path_factory.mktemp("batch")
    code = main(["batch", assignment.id, str(submissions), "--out", str(out), "--jobs", "2", "--only", ONLY,
                 "--data", "synthetic", "--similarity", "on", "--quiet"])
    assert code == 0
    return out, kinds


def test_the_report_holds_every_section_of_the_class(graded_class):
    out, kinds = graded_class
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'aria-label="histogram of scores"' in page
    assert "<table id=tasks-table>" in page and "affine.forward" in page
    assert 'aria-label="accuracy against training time for fc_net.overfit"' in page
    for ident in kinds:
        assert (out / "submissions" / ident / "index.html").is_file(), ident
    # The crash is told as the worker's death on the tasks of the file it broke.
    crash_page = (out / "submissions" / "crash" / "index.html").read_text(encoding="utf-8")
    assert "exited with code 3" in crash_page or "stopped the worker" in crash_page


def test_the_copied_pair_is_the_top_similarity_pair_and_no_honest_pair_is_listed(graded_class):
    out, kinds = graded_class
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2 id=similarity>"):]
    rows = [tuple(re.sub(r"<[^>]+>", "", cell) for cell in pair)
            for pair in re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", section)]
    assert rows, "no similar pair listed"
    assert set(rows[0]) == {"copied_from", "copy"}
    listed = {frozenset(pair) for pair in rows}
    assert all(kinds[a] == "copied" and kinds[b] == "copied" for a, b in (tuple(p) for p in listed if len(p) == 2)), \
        listed


def test_the_gradebook_imports_into_canvas(graded_class, tmp_path):
    out, kinds = graded_class
    target = tmp_path / "canvas.csv"
    assert main(["gradebook", str(out), "--format", "canvas", "--out", str(target)]) == 0
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert rows[1][0].strip() == "Points Possible"
    assert {row[3] for row in rows[2:]} <= set(kinds)


def test_the_report_opens_in_a_browser_sorts_and_leaves_a_screenshot(graded_class):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): the page is not opened in a browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    out, kinds = graded_class
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")
            assert page.locator("svg[aria-label='histogram of scores']").count() == 1
            assert page.locator("#tasks-table tbody tr").count() >= 6
            cells = "#submissions tbody tr td:first-child"
            before = page.locator(cells).all_inner_texts()
            assert sorted(before) == sorted(kinds)
            page.click("#submissions th:nth-child(2)")
            scores = [float(s) for s in page.locator("#submissions tbody tr td:nth-child(2)").all_inner_texts()]
            assert scores == sorted(scores) and page.locator(cells).all_inner_texts() != before
            shot = Path(os.environ.get("GRADER_TEST_ARTIFACTS", out)) / "batch_report.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert shot.stat().st_size > 10_000
    assert shutil.which(str(CHROMIUM))
