"""The instructor's web view of a batch: `report.html` in --out, one static page (styles, plots and
its small sorting script inline: it opens from file:// with no server and no network), and beside
each submission's results.json a page of its own, `submissions/<id>/index.html`.

Everything comes from the batch's records (grader.batch.job) and, where computed, the pairs of
similar submissions (grader.batch.similarity). Every piece of a submission's text (its id, messages,
hints, file names, excerpts) is escaped where it enters the HTML and never reaches the script, which
is a constant; the page's Content-Security-Policy lets only that script run, by its digest.

Plots are drawn by matplotlib straight onto a `Figure` (never pyplot, so no backend or global state
is touched; the SVG canvas needs no display) and inlined as SVG, text kept as text to keep them small.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence
from urllib.parse import quote

from grader.batch.outputs import TaskColumn
from grader.batch.store import GRADED
from grader.files import write_atomically

OUTCOMES = ("passed", "failed", "error", "timeout", "not_implemented", "skipped")
# Messages and hints listed per task; the rest are counted.
COMMON_SHOWN = 5
# Submissions named beside each common message.
EXAMPLES_SHOWN = 3
# Points kept of each submission's loss curve in the class's plot: 300 curves stay a small SVG.
CLASS_CURVE_POINTS = 60
SIMILAR_SHOWN = 100

_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#6a1b9a", "timeout": "#ef6c00",
            "not_implemented": "#757575", "skipped": "#bdbdbd"}
_SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "grader", "font.size": 8}

# A number in a message, not part of a name (W1, conv2d and x_shape0 keep their digits).
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w])")
_TARGET = re.compile(r"\btarget (\d+(?:\.\d+)?)%")

_SCRIPT = """
(function () {
  var table = document.getElementById("submissions");
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  function key(row, column, numeric) {
    var cell = row.cells[column];
    var value = cell.getAttribute("data-sort");
    if (value === null) { value = cell.textContent; }
    return numeric ? parseFloat(value) : value.toLowerCase();
  }
  Array.prototype.forEach.call(headers, function (header, column) {
    header.addEventListener("click", function () {
      var numeric = header.getAttribute("data-type") === "number";
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, column, numeric), y = key(b, column, numeric);
        if (numeric) {
          if (isNaN(x)) { x = -Infinity; }
          if (isNaN(y)) { y = -Infinity; }
        }
        var order = x < y ? -1 : (x > y ? 1 : 0);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  function apply() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var text = row.textContent.toLowerCase();
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !match;
      if (match) { count += 1; }
    });
    shown.textContent = count + " shown";
  }
  filter.addEventListener("input", apply);
  apply();
})();
"""
_SCRIPT_DIGEST = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_REPORT_POLICY = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_DIGEST}'"
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 78em; padding: 0 1em; color: #212121; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; vertical-align: top; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
#submissions th { cursor: pointer; user-select: none; background: #f5f5f5; }
#submissions th[aria-sort=ascending]::after { content: " \\25B2"; }
#submissions th[aria-sort=descending]::after { content: " \\25BC"; }
.passed { color: #2e7d32; } .failed { color: #c62828; } .error { color: #6a1b9a; }
.timeout { color: #ef6c00; } .not_implemented, .skipped { color: #757575; }
.bar { display: flex; width: 12em; height: .8em; margin-top: .3em; }
.bar span { display: block; height: 100%; }
.message { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-word; }
pre { background: #f7f7f7; padding: .5em; overflow-x: auto; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
.figures td { min-width: 5em; } .muted { color: #757575; }
.plot svg { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
th.task span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; font-weight: normal; }
#submissions td.message { max-width: 30em; }
#tasks-table td:last-child { max-width: 45em; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: .5em; }
"""


@dataclass
class _Group:
    """Alike messages (numbers aside) of one task across the batch."""

    sample: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Run:
    """One submission's run of one training task, as its results.json recorded it."""

    submission: str
    outcome: str
    accuracy: Optional[float]
    train_seconds: Optional[float]
    time_limit_s: Optional[float]        # as applied: scaled to its device where the limit is calibrated
    target: Optional[float]
    history: Optional[dict[str, Any]]
    written_limit_s: Optional[float] = None


def write_web_report(out: Path, assignment_id: str, records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn],
                     similarity: Optional[Sequence[Any]] = None) -> Path:
    """Writes `out/report.html` and `out/submissions/<id>/index.html` for each record; returns the
    report's path.

    `records` are the batch's (grader.batch.job: graded, unusable or not graded), `tasks` the
    gradebook's columns. `similarity` holds pairs with `first` and `second` (submission ids),
    `score` (0 to 1) and `regions` (pairs of excerpts, the first submission's then the second's);
    left empty, the page says that similarity was not computed."""
    out = Path(out)
    training = {task.id: _training_runs(records, task.id) for task in tasks}
    training = {task_id: runs for task_id, runs in training.items() if runs}
    sections = [
        _overview(assignment_id, records),
        _task_section(records, tasks),
        *(_training_section(task_id, runs) for task_id, runs in training.items()),
        _submissions_section(records, tasks),
        _similarity_section(similarity, {r["id"] for r in records}),
    ]
    page = _page(f"Batch of {assignment_id}", "\n".join(sections), _REPORT_POLICY, script=_SCRIPT)
    path = out / "report.html"
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(path, page)
    for record in records:
        folder = out / "submissions" / record["id"]
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / "index.html", _submission_page(assignment_id, record, tasks, folder))
    return path


# The batch page's sections.

def _overview(assignment_id: str, records: Sequence[dict[str, Any]]) -> str:
    graded = [r for r in records if r["status"] == GRADED]
    top = max((r["max_score"] for r in records), default=0.0)
    scores = sorted(r["score"] for r in graded)
    figures = [("submissions", str(len(records))), ("graded", str(len(graded))),
               ("failed to grade", str(len(records) - len(graded)))]
    if scores:
        quartiles = statistics.quantiles(scores, n=4, method="inclusive") if len(scores) > 1 else [scores[0]] * 3
        # Of the graded submissions (summary.md's mean also counts an unusable one as 0): said in the header.
        figures += [("mean of graded", f"{statistics.fmean(scores):.4g}"),
                    ("median of graded", f"{statistics.median(scores):.4g}"),
                    ("lower quartile", f"{quartiles[0]:.4g}"), ("upper quartile", f"{quartiles[2]:.4g}"),
                    ("lowest", f"{scores[0]:.4g}"), ("highest", f"{scores[-1]:.4g}"), ("out of", f"{top:g}")]
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    table = ("<table class=figures><tr>" + "".join(f"<th>{_e(name)}</th>" for name, _ in figures) + "</tr><tr>"
             + "".join(f"<td class=n>{value}</td>" for _, value in figures) + "</tr></table>")
    by_status = ", ".join(f"{n} {_e(status)}" for status, n in sorted(statuses.items()))
    plot = _histogram(scores, top) if scores else "<p class=muted>No submission was graded.</p>"
    return (f"<h1>Batch of {_e(assignment_id)}</h1>\n<p>{by_status}. Scores of graded submissions only; "
            f"a submission that failed to grade scores 0 in the gradebook.</p>\n{table}\n"
            f"<h2 id=distribution>Score distribution</h2>\n{plot}")


def _task_section(records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn]) -> str:
    graded = [r for r in records if r["status"] == GRADED]
    rows = []
    for task in tasks:
        entries = [(r, r["tasks"][task.id]) for r in graded if task.id in r["tasks"]]
        counts = {o: sum(1 for _, e in entries if e["outcome"] == o) for o in OUTCOMES}
        passed, total = counts["passed"], len(entries)
        mean = statistics.fmean(e["points"] for _, e in entries) if entries else 0.0
        messages = _group(((r["id"], e["message"]) for r, e in entries if e["outcome"] != "passed" and e["message"]))
        hints = _group((r["id"], hint) for r, _ in entries for hint in _hints(r, task.id))
        breakdown = ", ".join(f"<span class={o}>{n} {o.replace('_', ' ')}</span>" for o, n in counts.items() if n)
        rows.append(
            f"<tr id=\"task-{_e(task.id)}\"><td>{_e(task.id)}</td><td class=n>{task.max_points:g}</td>"
            f"<td class=n>{_rate(passed, total)}<div class=bar>{_bar(counts, total)}</div></td>"
            f"<td class=n>{mean:.2f}</td><td>{breakdown or '-'}</td>"
            f"<td>{_groups_html(messages, 'failure')}{_groups_html(hints, 'hint')}</td></tr>")
    return ("<h2 id=tasks>Tasks</h2>\n<p>Over graded submissions. Messages that differ only in their numbers are "
            "counted together; one of them is shown.</p>\n<div class=scroll><table id=tasks-table><thead><tr><th>task</th><th class=n>points</th>"
            "<th class=n>passed</th><th class=n>mean points</th><th>outcomes</th>"
            "<th>most common failures and hints (submissions)</th></tr></thead><tbody>\n"
            + "\n".join(rows) + "\n</tbody></table></div>")


def _training_section(task_id: str, runs: list[_Run]) -> str:
    measured = [r for r in runs if r.accuracy is not None and r.train_seconds is not None]
    limits = sorted(r.time_limit_s for r in runs if r.time_limit_s is not None)
    limit = statistics.median(limits) if limits else None
    written = next((r.written_limit_s for r in runs if r.written_limit_s is not None), None)
    target = next((r.target for r in runs if r.target is not None), None)
    facts = [f"{len(measured)} of {len(runs)} runs measured"]
    if target is not None:
        facts.append(f"target {target:.0%}")
    if written is not None and limits and (limits[0] != written or limits[-1] != written):
        # Calibrated: each run's limit was scaled to the device it trained on.
        span = f"{limits[0]:.1f} s" if limits[0] == limits[-1] else f"{limits[0]:.1f}-{limits[-1]:.1f} s"
        facts.append(f"time limit {written:g} s on the reference device, {span} on the devices graded on")
    elif limit is not None:
        facts.append(f"time limit {limit:g} s")
    if measured:
        reached = sum(1 for r in measured if target is not None and r.accuracy >= target)
        facts.append(f"{reached} reached the target" if target is not None else "")
    histories = [r.history for r in runs if r.history and r.history.get("loss")]
    curves = _class_loss_plot(task_id, histories) if histories else "<p class=muted>No loss history was recorded.</p>"
    scatter = _scatter(task_id, measured, target, limit) if measured else "<p class=muted>No run was measured.</p>"
    return (f"<h2 id=\"training-{_e(task_id)}\">Training: {_e(task_id)}</h2>\n<p>{_e('; '.join(f for f in facts if f))}"
            "</p>\n<h3>Accuracy against training time</h3>\n" + scatter
            + f"\n<h3>Loss curves of the class ({len(histories)} submissions)</h3>\n" + curves)


def _submissions_section(records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn]) -> str:
    header = ("<th data-type=text>submission</th><th class=n data-type=number>score</th>"
              + "".join(f"<th class=\"n task\" data-type=number title=\"{_e(t.id)}\"><span>{_e(t.id)}</span></th>"
                        for t in tasks)
              + "<th data-type=text>status</th>")
    rows = []
    for record in records:
        cells = [f"<td><a href=\"{_link(record['id'])}\">{_e(record['id'])}</a></td>",
                 f"<td class=n data-sort=\"{record['score']!r}\">{record['score']:.4g}</td>"]
        for task in tasks:
            entry = record["tasks"].get(task.id)
            if entry is None:
                cells.append("<td class=n data-sort=\"-1\"></td>")
            else:
                cells.append(f"<td class=\"n {_e(entry['outcome'])}\" data-sort=\"{entry['points']!r}\" "
                             f"title=\"{_e(entry['outcome'])}\">{entry['points']:.3g}</td>")
        status = record["status"] + (": " + record["errors"] if record["errors"] else "")
        cells.append(f"<td class=message>{_e(_clip(status, 200))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<h2 id=submissions-list>Submissions</h2>\n<p><label>Filter <input id=filter type=search "
            "placeholder=\"id, status, message\"></label> <span id=shown></span> "
            "<span class=muted>Click a column's header to sort by it.</span></p>\n"
            f"<div class=scroll><table id=submissions><thead><tr>{header}</tr></thead><tbody>\n" + "\n".join(rows)
            + "\n</tbody></table></div>")


def _similarity_section(similarity: Optional[Sequence[Any]], known: set[str]) -> str:
    if similarity is None:
        return ("<h2 id=similarity>Similarity</h2>\n<p class=muted>Similarity not computed (--similarity off, or a "
                "batch too small for auto).</p>")
    if not similarity:
        return ("<h2 id=similarity>Similarity</h2>\n<p>No pair of submissions shares more of its own code than the "
                "threshold. What the class shares is not counted: the stubs, the provided files and the reference "
                "solution, so submissions that are copies of the reference are not paired with each other.</p>")
    pairs = sorted(similarity, key=lambda p: -float(p.score))
    rows = []
    for pair in pairs[:SIMILAR_SHOWN]:
        excerpts = list(getattr(pair, "regions", None) or ())
        regions = "".join(
            f"<div class=pair><pre>{_e(first)}</pre><pre>{_e(second)}</pre></div>" for first, second in excerpts)
        details = (f"<details><summary>{len(excerpts)} similar region{'s' * (len(excerpts) != 1)}</summary>"
                   f"{regions}</details>") if excerpts else ""
        rows.append(f"<tr><td>{_submission_link(pair.first, known)}</td><td>{_submission_link(pair.second, known)}</td>"
                    f"<td class=n>{float(pair.score):.0%}</td><td>{details}</td></tr>")
    more = f"<p>... and {len(pairs) - SIMILAR_SHOWN} more pairs.</p>" if len(pairs) > SIMILAR_SHOWN else ""
    return ("<h2 id=similarity>Similarity</h2>\n<p>Pairs of submissions whose code is alike, most alike first.</p>\n"
            "<table><thead><tr><th>submission</th><th>submission</th><th class=n>similarity</th><th>regions</th></tr>"
            "</thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>" + more)


# One submission's page.

def _submission_page(assignment_id: str, record: dict[str, Any], tasks: Sequence[TaskColumn], folder: Path) -> str:
    tests = {(t.get("extra_data") or {}).get("task"): t for t in record["results"].get("tests", [])}
    rows = []
    for task in tasks:
        entry = record["tasks"].get(task.id)
        if entry is None:
            continue
        hints = "".join(f"<div class=muted>hint: {_e(h)}</div>" for h in _hints(record, task.id))
        rows.append(f"<tr><td><a href=\"#{_e(task.id)}\">{_e(task.id)}</a></td>"
                    f"<td class=n>{entry['points']:g} / {entry['max_points']:g}</td>"
                    f"<td class={_e(entry['outcome'])}>{_e(entry['outcome'].replace('_', ' '))}</td>"
                    f"<td class=message>{_e(entry['message'])}{hints}</td></tr>")
    details = []
    for task in tasks:
        test = tests.get(task.id)
        if test is None or record["tasks"].get(task.id, {}).get("outcome") == "passed" and not _is_training(test):
            continue
        run = _run_of(record, test)
        plot = _submission_training_plot(task.id, run) if run and run.history and run.history.get("loss") else ""
        details.append(f"<h3 id=\"{_e(task.id)}\">{_e(test.get('name', task.id))}</h3>\n{plot}"
                       f"<pre>{_e(test.get('output', ''))}</pre>")
    files = " ".join(f"<a href=\"{name}\">{name}</a>" for name in ("results.json", "feedback.txt")
                     if (folder / name).is_file())
    note = record["results"].get("output") or ""
    body = (f"<p><a href=\"../../report.html\">Batch of {_e(assignment_id)}</a></p>\n"
            f"<h1>{_e(record['id'])}</h1>\n<p>{record['score']:g} of {record['max_score']:g} points; "
            f"{_e(record['status'])}; seed {_e(str(record.get('seed')))}. {files}</p>\n"
            + (f"<pre>{_e(note)}</pre>\n" if note else "")
            + (f"<p class=error>{_e(record['errors'])}</p>\n" if record.get("errors") else "")
            + "<table><thead><tr><th>task</th><th class=n>points</th><th>outcome</th><th>message</th></tr></thead>"
            "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
            + ("<h2>Details</h2>\n" + "\n".join(details) if details else ""))
    return _page(f"{record['id']}: {assignment_id}", body, _PAGE_POLICY)


# Reading the records.

def _training_runs(records: Sequence[dict[str, Any]], task_id: str) -> list[_Run]:
    runs = []
    for record in records:
        if record["status"] != GRADED:
            continue
        for test in record["results"].get("tests", []):
            if (test.get("extra_data") or {}).get("task") == task_id and _is_training(test):
                run = _run_of(record, test)
                if run is not None:
                    runs.append(run)
    return runs


def _is_training(test: dict[str, Any]) -> bool:
    return (test.get("extra_data") or {}).get("kind") == "training"


def _run_of(record: dict[str, Any], test: dict[str, Any]) -> Optional[_Run]:
    extra = test.get("extra_data") or {}
    if "accuracy" not in extra and "history" not in extra:
        return None   # not trained (an earlier error, a skip): nothing to draw
    target = _TARGET.search(record["tasks"].get(extra.get("task"), {}).get("message", "") or test.get("output", ""))
    return _Run(record["id"], extra.get("outcome", ""), _number(extra.get("accuracy")),
                _number(extra.get("train_seconds")), _number(extra.get("time_limit_s")),
                float(target[1]) / 100 if target else None, extra.get("history"),
                _number(extra.get("written_limit_s")))


def _hints(record: dict[str, Any], task_id: str) -> list[str]:
    """The distinct hints the task's checks gave, as its results.json lists them apart from the output
    (never read from the output's text, where the submission's own message could forge a "hint:" line)."""
    for test in record["results"].get("tests", []):
        extra = test.get("extra_data") or {}
        if extra.get("task") == task_id:
            hints = extra.get("hints")
            return [str(h) for h in dict.fromkeys(hints) if str(h).strip()] if isinstance(hints, list) else []
    return []


def normalized_message(message: str) -> str:
    """A message with its numbers replaced by '#': what messages that differ only in values share."""
    return _NUMBER.sub("#", message)


def _group(messages: Iterable[tuple[str, str]]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for submission, message in messages:
        group = groups.setdefault(normalized_message(message), _Group(message))
        group.count += 1
        if len(group.examples) < EXAMPLES_SHOWN:
            group.examples.append(submission)
    return sorted(groups.values(), key=lambda g: -g.count)


# HTML pieces.

def _groups_html(groups: list[_Group], kind: str) -> str:
    if not groups:
        return ""
    items = []
    for group in groups[:COMMON_SHOWN]:
        examples = ", ".join(f"<a href=\"{_link(s)}\">{_e(s)}</a>" for s in group.examples)
        items.append(f"<li><b>{group.count}&times;</b> <span class=message>{_e(_clip(group.sample, 400))}</span> "
                     f"<span class=muted>({examples}{', ...' if group.count > len(group.examples) else ''})</span></li>")
    rest = sum(g.count for g in groups[COMMON_SHOWN:])
    more = f"<li class=muted>{len(groups) - COMMON_SHOWN} other {kind}s ({rest} submissions)</li>" if rest else ""
    label = "failures" if kind == "failure" else "hints"
    return f"<div>{label}:</div><ul>" + "".join(items) + more + "</ul>"


def _bar(counts: dict[str, int], total: int) -> str:
    if not total:
        return ""
    return "".join(f"<span style=\"width:{100 * n / total:.1f}%;background:{_COLOURS[o]}\" title=\"{n} {o}\"></span>"
                   for o, n in counts.items() if n)


def _page(title: str, body: str, policy: str, script: str = "") -> str:
    tail = f"<script>{script}</script>\n" if script else ""
    return ("<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
            "<meta name=viewport content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n{tail}</body>\n</html>\n")


def _submission_link(submission: str, known: set[str]) -> str:
    return f"<a href=\"{_link(submission)}\">{_e(submission)}</a>" if submission in known else _e(submission)


def _link(submission: str) -> str:
    return _e("submissions/" + quote(submission, safe="") + "/index.html")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"


def _rate(passed: int, total: int) -> str:
    return f"{passed}/{total} ({100 * passed / total:.0f}%)" if total else "-"


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# Plots.

def _figure(width: float, height: float, **margins: float) -> Any:
    """A figure with fixed margins: a layout engine would cost more than the drawing, for hundreds
    of pages."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(**{"left": 0.1, "right": 0.97, "bottom": 0.2, "top": 0.95, **margins})
    return figure


def _svg(figure: Any, label: str) -> str:
    """The figure as inline SVG: no XML prologue, no metadata, text as text (a fraction of the size)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_SETTINGS):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = text.replace("<svg ", f"<svg role=\"img\" aria-label=\"{_e(label)}\" ", 1)
    return f"<div class=plot>{text}</div>"


def _histogram(scores: list[float], top: float) -> str:
    figure = _figure(6.5, 2.4)
    axes = figure.add_subplot()
    bins = 20
    upper = top if top > 0 else max(scores + [1.0])
    axes.hist(scores, bins=bins, range=(0, upper), color="#1565c0", edgecolor="white")
    axes.set_xlabel(f"score (of {upper:g})")
    axes.set_ylabel("submissions")
    axes.set_xlim(0, upper)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, "histogram of scores")


def _scatter(task_id: str, runs: list[_Run], target: Optional[float], limit: Optional[float]) -> str:
    figure = _figure(6.5, 3.0, right=0.8, bottom=0.16)
    axes = figure.add_subplot()
    for outcome in OUTCOMES:
        chosen = [r for r in runs if r.outcome == outcome]
        if chosen:
            axes.scatter([r.train_seconds for r in chosen], [100 * r.accuracy for r in chosen], s=18,
                         color=_COLOURS[outcome], label=outcome.replace("_", " "), alpha=0.8, linewidths=0)
    if target is not None:
        axes.axhline(100 * target, color="#424242", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    if limit is not None:
        axes.axvline(limit, color="#424242", linestyle=":", linewidth=1, label=f"time limit {round(limit, 1):g} s")
    axes.set_xlabel("training time (s)")
    axes.set_ylabel("accuracy (%)")
    axes.set_xlim(left=0)
    axes.set_ylim(0, 100)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, f"accuracy against training time for {task_id}")


def _class_loss_plot(task_id: str, histories: list[dict[str, Any]]) -> str:
    from matplotlib.collections import LineCollection

    figure = _figure(6.5, 2.8)
    axes = figure.add_subplot()
    lines = []
    for history in histories:
        points = [(x, y) for x, y in zip(history.get("loss_iterations") or [], history["loss"])
                  if _number(y) is not None]
        step = max(1, math.ceil(len(points) / CLASS_CURVE_POINTS))
        kept = points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
        if kept:
            lines.append(kept)
    if lines:
        alpha = max(0.08, min(0.8, 8 / len(lines)))
        axes.add_collection(LineCollection(lines, colors="#1565c0", alpha=alpha, linewidths=0.8))
        axes.autoscale()
        if all(y > 0 for line in lines for _, y in line):
            axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("training loss")
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, f"loss curves of the class for {task_id}")


def _submission_training_plot(task_id: str, run: _Run) -> str:
    history = run.history or {}
    figure = _figure(6.5, 2.4, wspace=0.3)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    points = [(x, y) for x, y in zip(history.get("loss_iterations") or [], history.get("loss") or [])
              if _number(y) is not None]
    if points:
        loss_axes.plot(*zip(*points), color="#1565c0", linewidth=0.8)
    if history.get("first_non_finite"):
        loss_axes.axvline(history["first_non_finite"], color=_COLOURS["failed"], linewidth=1, label="first NaN/inf")
        loss_axes.legend(loc="upper right", fontsize=7, frameon=False)
    loss_axes.set_xlabel("iteration")
    loss_axes.set_ylabel("training loss")
    for key, colour in (("train_accuracy", "#9e9e9e"), ("val_accuracy", "#1565c0")):
        values = [100 * v if _number(v) is not None else math.nan for v in history.get(key) or []]
        if values:
            accuracy_axes.plot(range(len(values)), values, marker=".", color=colour,
                               label=key.replace("_", " "))
    if run.target is not None:
        accuracy_axes.axhline(100 * run.target, color="#424242", linestyle="--", linewidth=1, label="target")
    accuracy_axes.set_xlabel("check (start, each epoch, end)")
    accuracy_axes.set_ylabel("accuracy (%)")
    accuracy_axes.set_ylim(0, 100)
    accuracy_axes.legend(loc="upper left", fontsize=7, frameon=False)
    for axes in (loss_axes, accuracy_axes):
        axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, f"training curves of {task_id}")
