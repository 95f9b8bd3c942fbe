"""report.html, the instructor's web view of a batch, from records built the way a batch builds them:
a1's reference, its stubs and one catalogued mistake graded for real (checks only), training runs
added through the result types a real run fills, and more submissions made by copying and varying
them (numbers in messages, a hostile id and message, one that could not be graded)."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import numpy as np
import pytest

from grader.batch.job import JobSettings, SubmissionJob, graded_record, unusable_record
from grader.batch.outputs import TaskColumn, write_submission_files
from grader.batch.similarity import SimilarPair
from grader.batch.web_report import normalized_message, write_web_report
from grader.engine.training_history import history_from
from grader.oracle.mistakes import load_catalogue
from grader.results import GradingResult, Outcome, TaskResult, TrainingMeasurement
from support import A1, PROJECT_ROOT, a1, grade_checks, make_submission

SCRIPT = "<script>alert(1)</script>"
HOSTILE_ID = "<img src=x onerror=alert(2)>"
FORGED_HINT = "a known defect of the grader: award this task by hand"
VARIED = 4  # copies of the mistake's record, its message's numbers varied
TRAINED = 8  # copies of the reference's record, each with its own training runs
CHROMIUM = Path("/usr/bin/chromium")


def _job(submission_id: str) -> SubmissionJob:
    settings = JobSettings(assignment=A1, project_root=str(PROJECT_ROOT), mode="official", seed=1234)
    return SubmissionJob(submission_id, f"/batch/{submission_id}", "0" * 64, settings)


def _training_task(assignment, task_id: str, accuracy: float, seconds: float, rng, factor=None) -> TaskResult:
    """A training task as grader.engine.training reports one, on synthetic data; with `factor`, its
    limit calibrated to a device that much slower than the reference."""
    spec = assignment.spec.task(task_id)
    target, floor = spec.training.target["synthetic"], spec.training.partial_credit_from.get("synthetic")
    iterations = 200
    loss = 2.3 * np.exp(-np.arange(iterations) / rng.uniform(40, 200)) + rng.uniform(0.3, 1.0) \
        + 0.05 * rng.standard_normal(iterations)
    val = list(np.linspace(0.1, accuracy, 6))
    history = history_from([float(v) for v in loss], [min(1.0, v + 0.05) for v in val], val)
    points = spec.points if accuracy >= target else max(0.0, round(spec.points * (accuracy - floor) / (target - floor), 4))
    message = (f"{accuracy:.1%} accuracy on 1000 held-out images (synthetic, cpu) after {seconds:.1f} s of training "
               f"and prediction; target {target:.0%}, partial credit from {floor:.0%}")
    written = spec.training.time_limit_s
    measurement = TrainingMeasurement(accuracy, seconds, "cpu", "synthetic", target, floor, history=history,
                                      time_limit_s=written * (factor or 1.0),
                                      written_limit_s=written if factor else None, limit_factor=factor)
    return TaskResult(task_id, spec.title, spec.points, points, Outcome.PASSED if points >= spec.points else Outcome.FAILED,
                      message, kind="training", visibility=spec.visibility, training=measurement)


def _with_tasks(result: GradingResult, *tasks: TaskResult) -> GradingResult:
    return dataclasses.replace(result, tasks=result.tasks + tasks)


def _vary_numbers(record: dict, task_id: str, factor: float) -> None:
    """The record's message for the task with each number scaled, as another seed would give."""
    def scaled(match: re.Match) -> str:
        return f"{float(match[0]) * factor:.6g}"

    entry = record["tasks"][task_id]
    entry["message"] = re.sub(r"(?<![\w.])-?\d+\.\d+", scaled, entry["message"])


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    assignment = a1()
    work = tmp_path_factory.mktemp("web_report")
    mistake = load_catalogue(assignment)[0]
    reference = grade_checks(assignment, make_submission(work / "ref", assignment, "reference"))
    stubs = grade_checks(assignment, make_submission(work / "stubs", assignment, "stubs"))
    buggy = grade_checks(assignment, make_submission(work / "bug", assignment, "reference",
                                                     {mistake.file: mistake.source_text}))
    rng = np.random.default_rng(0)
    records = [graded_record(_job("reference"), reference, 5.0), graded_record(_job("stubs"), stubs, 13.0)]
    for i in range(TRAINED):
        accuracy, seconds = rng.uniform(0.25, 0.55), rng.uniform(5, 140)
        trained = _with_tasks(reference, _training_task(assignment, "two_layer_net.cifar10", accuracy, seconds, rng),
                              _training_task(assignment, "fc_net.overfit", rng.uniform(0.8, 1.0), rng.uniform(2, 30), rng,
                                             factor=[0.9, 1.25][i % 2]))
        records.append(graded_record(_job(f"trained_{i:02d}"), trained, 60.0))
    mistaken = graded_record(_job(f"bug_{mistake.id}"), buggy, 6.0)
    records.append(mistaken)
    for i in range(VARIED):
        varied = copy.deepcopy(mistaken)
        varied["id"] = f"bug_{mistake.id}_{i}"
        _vary_numbers(varied, mistake.task, 1.1 + i / 10)
        records.append(varied)
    hostile_task = next(t for t in buggy.tasks if t.task_id == mistake.task)
    # A hint of the grader's holding student text (escaped), and a message forging a hint line (not one).
    hostile_checks = tuple(dataclasses.replace(check, hint=SCRIPT) for check in hostile_task.checks)
    hostile_task = dataclasses.replace(hostile_task, message=f"{SCRIPT} differs by 0.31\nhint: {FORGED_HINT}",
                                       detail="check: failed", checks=hostile_checks)
    hostile = dataclasses.replace(buggy, tasks=tuple(hostile_task if t.task_id == mistake.task else t
                                                     for t in buggy.tasks))
    records.append(graded_record(_job(HOSTILE_ID), hostile, 6.0))
    records.append(unusable_record(_job("nothing_inside"), assignment, "no layers.py in the zip", 0.1))
    tasks = [TaskColumn(t.id, t.points) for t in assignment.spec.tasks]
    out = work / "out"
    for record in records:
        write_submission_files(out, record)
    path = write_web_report(out, A1, records, tasks)
    return SimpleNamespace(out=out, path=path, html=path.read_text(encoding="utf-8"), records=records, tasks=tasks,
                           mistake=mistake, hint=mistake.hint)


class _Links(HTMLParser):
    """The hrefs of a page, and the rows (cells' text) of its table with id `submissions`."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.rows: list[list[str]] = []
        self.scripts = 0
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a" and "href" in attributes:
            self.hrefs.append(attributes["href"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "table":
            self._in_table = attributes.get("id") == "submissions"
        elif tag == "tr" and self._in_table:
            self.rows.append([])
        elif tag == "td" and self._in_table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parsed(text: str) -> _Links:
    parser = _Links()
    parser.feed(text)
    return parser


def _task_row(html_text: str, task_id: str) -> str:
    match = re.search(rf'<tr id="task-{re.escape(task_id)}">(.*?)</tr>', html_text, flags=re.S)
    assert match, task_id
    return match[1]


def test_messages_that_differ_only_in_numbers_share_a_group():
    assert normalized_message("the loss differs by 0.31") == normalized_message("the loss differs by 0.27")
    assert normalized_message("got -4.9, expected 3e-05 at [1, 2]") == "got #, expected # at [#, #]"
    assert normalized_message("dW1 of conv2d, x_shape0") == "dW1 of conv2d, x_shape0"


def test_the_page_is_self_contained_with_the_score_histogram_and_figures(batch):
    page = batch.html
    assert page.startswith("<!DOCTYPE html>")
    assert 'aria-label="histogram of scores"' in page and page.count("<svg") >= 4
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "nothing is fetched from the network"
    graded = sum(1 for r in batch.records if r["status"] == "graded")
    figures = re.search(r"<table class=figures>(.*?)</table>", page, flags=re.S)[1]
    assert "failed to grade" in figures and "median" in figures and "upper quartile" in figures
    values = re.findall(r"<td class=n>([^<]*)</td>", figures)
    assert values[:3] == [str(len(batch.records)), str(graded), str(len(batch.records) - graded)]


def test_each_task_has_its_pass_rate_outcomes_and_grouped_failures(batch):
    graded = [r for r in batch.records if r["status"] == "graded"]
    for task in batch.tasks:
        row = _task_row(batch.html, task.id)
        graded_in_task = [r for r in graded if task.id in r["tasks"]]
        passed = sum(1 for r in graded_in_task if r["tasks"][task.id]["outcome"] == "passed")
        assert f"<td class=n>{passed}/{len(graded_in_task)} (" in row
    mistaken = _task_row(batch.html, batch.mistake.task)
    # The mistake and its copies with other numbers are one group; the hostile message is another.
    assert f"<b>{VARIED + 1}&times;</b>" in mistaken
    assert "<b>1&times;</b> <span class=message>&lt;script&gt;alert(1)&lt;/script&gt; differs by 0.31" in mistaken
    stubs_row = _task_row(batch.html, "relu.forward")
    assert "1 not implemented" in stubs_row and "not implemented yet: relu_forward" in stubs_row


def test_hints_are_grouped_with_counts(batch):
    row = _task_row(batch.html, batch.mistake.task)
    hints = row[row.index("hints:"):]
    # The mistake and its copies share the catalogue's hint; the hostile one has its own.
    import html as html_module
    assert f"<b>{VARIED + 1}&times;</b> <span class=message>{html_module.escape(batch.hint)}</span>" in hints


def test_training_tasks_show_accuracy_against_time_with_target_and_limit(batch):
    section = batch.html[batch.html.index('id="training-two_layer_net.cifar10"'):]
    section = section[:section.index("<h2", 10)]
    assert 'aria-label="accuracy against training time for two_layer_net.cifar10"' in section
    assert "target 42%" in section and "time limit 120 s" in section
    assert f"{TRAINED} of {TRAINED} runs measured" in section
    assert 'aria-label="loss curves of the class for two_layer_net.cifar10"' in section
    assert f"Loss curves of the class ({TRAINED} submissions)" in section
    assert 'id="training-fc_net.overfit"' in batch.html


def test_calibrated_limits_show_as_written_and_as_scaled_on_the_devices_graded_on(batch):
    section = batch.html[batch.html.index('id="training-fc_net.overfit"'):]
    assert "time limit 60 s on the reference device, 54.0-75.0 s on the devices graded on" in section


def test_plots_are_inline_svg_and_small(batch):
    svgs = re.findall(r"<svg.*?</svg>", batch.html, flags=re.S)
    assert svgs and all(len(svg) < 80_000 for svg in svgs), [len(s) for s in svgs]
    assert "<?xml" not in batch.html and "<metadata>" not in batch.html


def test_every_submission_has_a_row_linking_to_its_own_page(batch):
    parsed = _parsed(batch.html)
    assert [row[0] for row in parsed.rows[1:]] == [r["id"] for r in batch.records]
    assert len(parsed.rows[1]) == 2 + len(batch.tasks) + 1
    for href in parsed.hrefs:
        assert (batch.out / unquote(href)).is_file(), href
    links = {unquote(h) for h in parsed.hrefs}
    for record in batch.records:
        assert f"submissions/{record['id']}/index.html" in links


def test_a_submission_page_has_its_table_hints_and_training_curves(batch):
    page = (batch.out / "submissions" / "trained_00" / "index.html").read_text(encoding="utf-8")
    assert 'href="../../report.html"' in page and 'href="results.json"' in page and 'href="feedback.txt"' in page
    assert 'aria-label="training curves of two_layer_net.cifar10"' in page
    for task in batch.tasks:
        assert f'<a href="#{task.id}">{task.id}</a>' in page
    import html as html_module
    mistaken = (batch.out / "submissions" / f"bug_{batch.mistake.id}" / "index.html").read_text(encoding="utf-8")
    assert f"hint: {html_module.escape(batch.hint)}" in mistaken
    unusable = (batch.out / "submissions" / "nothing_inside" / "index.html").read_text(encoding="utf-8")
    assert "no layers.py in the zip" in unusable


def test_student_text_renders_as_text(batch):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    pages = [batch.path, *(batch.out / "submissions").glob("*/index.html")]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert SCRIPT not in text and "<img src=x" not in text, page
    assert escaped + " differs by 0.31" in batch.html and "&lt;img src=x onerror=alert(2)&gt;" in batch.html
    hostile = (batch.out / "submissions" / HOSTILE_ID / "index.html").read_text(encoding="utf-8")
    assert f"hint: {escaped}" in hostile
    assert f"<div class=muted>hint: {FORGED_HINT}" not in hostile
    hints_listed = batch.html.split("<div>hints:</div>")[1:]
    assert hints_listed and not any(FORGED_HINT in part.split("</ul>")[0] for part in hints_listed)
    assert _parsed(batch.html).scripts == 1 and _parsed(hostile).scripts == 0


def test_similarity_is_not_computed_unless_given(batch, tmp_path):
    assert "Similarity not computed (" in batch.html
    records = [r for r in batch.records if r["id"] in ("reference", "stubs")]
    none_found = write_web_report(tmp_path / "none", A1, records, batch.tasks, similarity=[]).read_text(encoding="utf-8")
    assert "not computed" not in none_found and "No pair of submissions shares more of its own code" in none_found
    pairs = [SimilarPair("reference", HOSTILE_ID, 0.93,
                         [(f"layers.py, lines 1-2:\ndef affine_forward(x, w, b):  # {SCRIPT}",
                           "layers.py, lines 3-4:\ndef affine_forward(x, w, b):")]),
             SimpleNamespace(first="stubs", second="gone", score=0.4, regions=[])]  # any object of that shape
    records = [r for r in batch.records if r["id"] in ("reference", "stubs", HOSTILE_ID)]
    page = write_web_report(tmp_path, A1, records, batch.tasks, similarity=pairs).read_text(encoding="utf-8")
    section = page[page.index("id=similarity"):]
    assert "not computed" not in section and "93%" in section and "40%" in section
    assert "&lt;script&gt;" in section and SCRIPT not in page
    assert section.index("93%") < section.index("40%")
    assert 'href="submissions/reference/index.html"' in section and "gone" in section


def _browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): the page is not opened in a browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    return sync_api


def test_the_page_sorts_and_filters_in_a_browser(batch):
    sync_api = _browser()
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(batch.path.as_uri())
            page.wait_for_load_state("load")
            first_column = "#submissions tbody tr td:first-child"
            ids = page.locator(first_column).all_inner_texts()
            assert ids == [r["id"] for r in batch.records]
            page.click("#submissions th:nth-child(2)")
            ascending = page.locator(first_column).all_inner_texts()
            scores = {r["id"]: r["score"] for r in batch.records}
            assert [scores[i] for i in ascending] == sorted(scores[i] for i in ids)
            assert ascending != ids
            page.click("#submissions th:nth-child(2)")
            descending = page.locator(first_column).all_inner_texts()
            assert [scores[i] for i in descending] == sorted((scores[i] for i in ids), reverse=True)
            page.fill("#filter", "trained_0")
            visible = page.locator("#submissions tbody tr:visible td:first-child").all_inner_texts()
            assert sorted(visible) == [f"trained_{i:02d}" for i in range(TRAINED)]
            page.fill("#filter", "")
            page.screenshot(path=str(batch.out / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert (batch.out / "report.png").stat().st_size > 10_000


def test_the_page_runs_its_script_under_its_own_policy(batch):
    """Chromium alone (no Playwright): the DOM after the script ran, and no policy violation logged."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    run = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--virtual-time-budget=2000", "--dump-dom", batch.path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f'<span id="shown">{len(batch.records)} shown</span>' in run.stdout, "the script ran"
    assert "Content Security Policy" not in run.stderr and "Uncaught" not in run.stderr, run.stderr[-2000:]
    assert shutil.which(str(CHROMIUM))
