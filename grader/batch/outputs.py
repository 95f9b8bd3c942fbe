"""What a batch leaves in --out besides its database, all rebuilt from the database's records:
`gradebook.csv`, `summary.md`, and per submission `submissions/<id>/results.json` (Gradescope) and
`submissions/<id>/feedback.txt` (the report a student reads).

What a submission's code wrote reaches these files through its messages: a gradebook cell holds it
on one line without control characters, summary.md holds it as Markdown text (grader.report.markdown),
the terminal shows it inert (grader.untrusted_text). Files are written as UTF-8 whatever the locale.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from grader.engine.source_review import TO_READ
from grader.batch.store import ERROR, GRADED
from grader.files import write_atomically
from grader.report.markdown import table_cell
from grader.untrusted_text import log_safe, printable

# Which submissions the class's mean and median count (report.html gives the graded ones' too).
GRADES_COUNTED = "every submission graded or unusable, an unusable one as 0"
SLOWEST_SHOWN = 5
FAILING_SHOWN = 20


@dataclass(frozen=True)
class TaskColumn:
    id: str
    max_points: float


def write_submission_files(out: Path, record: dict[str, Any]) -> None:
    folder = out / "submissions" / record["id"]
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "results.json", json.dumps(record["results"], indent=2) + "\n")
    write_atomically(folder / "feedback.txt", record["feedback"])


def gradebook_rows(records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn]) -> list[dict[str, str]]:
    rows = []
    for record in records:
        row = {"id": record["id"], "total": _points(record["score"]), "max": _points(record["max_score"])}
        for task in tasks:
            entry = record["tasks"].get(task.id)
            row[task.id] = _points(entry["points"]) if entry else ""
        row.update(status=record["status"], seed=str(record["seed"]), errors=_one_line(record["errors"]))
        rows.append(row)
    return rows


def write_gradebook(out: Path, records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "total", "max", *[t.id for t in tasks], "status", "seed", "errors"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(gradebook_rows(records, tasks))
    path = out / "gradebook.csv"
    write_atomically(path, buffer.getvalue())
    return path


@dataclass(frozen=True)
class Summary:
    assignment: str
    submissions: int
    by_status: dict[str, int]
    pass_rates: list[tuple[str, int, int]]          # task, passed, graded
    distribution: list[tuple[str, int]]             # score band, submissions
    mean: float
    median: float
    max_score: float
    slowest: list[tuple[str, float]]                # id, seconds
    failing: list[tuple[str, str, str]]             # id, status, why
    passed_over: tuple[str, ...] = ()               # entries of the folder that are no submission, and why
    # id, what: submissions whose result asks a person to read their code (grader.engine.source_review)
    to_read: tuple[tuple[str, str], ...] = ()
    gone: tuple[str, ...] = ()   # graded by an earlier run into the same --out, not in the folder now


def summarize(assignment: str, records: Sequence[dict[str, Any]], tasks: Sequence[TaskColumn],
              passed_over: Sequence[str] = (), gone: Sequence[str] = ()) -> Summary:
    by_status: dict[str, int] = {}
    for record in records:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    graded = [r for r in records if r["status"] == GRADED]
    pass_rates = [(t.id, sum(1 for r in graded if r["tasks"].get(t.id, {}).get("outcome") == "passed"), len(graded))
                  for t in tasks]
    # The class's grades: an unusable submission is its student's 0; one the grader failed on is no grade.
    scores = [r["score"] for r in records if r["status"] != ERROR]
    top = max((r["max_score"] for r in records), default=0.0)
    bands = [0] * 10
    for score in scores:
        bands[min(9, int(10 * score / top)) if top else 0] += 1
    distribution = [(f"{10 * i}-{10 * i + 10}%", n) for i, n in enumerate(bands)]
    slowest = sorted(((r["id"], r["seconds"]) for r in graded), key=lambda p: -p[1])[:SLOWEST_SHOWN]
    failing = [(r["id"], r["status"], r["errors"] or f"{r['score']:g}/{r['max_score']:g}")
               for r in records if r["status"] != GRADED or r["errors"]]
    to_read = tuple((r["id"], line.removeprefix(TO_READ).strip()) for r in records
                    for line in str(r.get("feedback", "")).splitlines() if line.startswith(TO_READ))
    return Summary(assignment, len(records), by_status, pass_rates, distribution,
                   statistics.fmean(scores) if scores else 0.0, statistics.median(scores) if scores else 0.0,
                   top, slowest, failing, tuple(passed_over), to_read, tuple(gone))


def summary_markdown(summary: Summary) -> str:
    lines = [f"# Batch of {summary.assignment}", "",
             f"{summary.submissions} submissions: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items())),
             "", f"Score: mean {summary.mean:.2f}, median {summary.median:g} of {summary.max_score:g} "
                 f"({GRADES_COUNTED})", "",
             "## Pass rate per task", "", "| task | passed | rate |", "|---|---:|---:|"]
    for task, passed, graded in summary.pass_rates:
        lines.append(f"| {table_cell(task)} | {passed}/{graded} | {_rate(passed, graded)} |")
    lines += ["", "## Score distribution", "", "| score | submissions |", "|---|---:|"]
    lines += [f"| {band} | {n} |" for band, n in summary.distribution]
    lines += ["", "## Slowest submissions", "", "| submission | seconds |", "|---|---:|"]
    lines += [f"| {table_cell(ident)} | {seconds:.1f} |" for ident, seconds in summary.slowest]
    lines += ["", "## Submissions with errors", ""]
    if summary.failing:
        lines += ["| submission | status | what went wrong |", "|---|---|---|"]
        lines += [f"| {table_cell(ident)} | {status} | {table_cell(why)} |"
                  for ident, status, why in summary.failing[:FAILING_SHOWN]]
        if len(summary.failing) > FAILING_SHOWN:
            lines.append(f"\n... and {len(summary.failing) - FAILING_SHOWN} more (see gradebook.csv)")
    else:
        lines.append("None.")
    if summary.to_read:  # what no score shows: code that reaches autograd, data carried in the source
        lines += ["", "## Code to read", "", "| submission | what |", "|---|---|"]
        lines += [f"| {table_cell(ident)} | {table_cell(what)} |" for ident, what in summary.to_read]
    if summary.passed_over:  # a student whose upload was not recognised has no row: said here, not only on stderr
        lines += ["", "## Entries of the folder not graded", "", "| entry | why |", "|---|---|"]
        lines += [f"| {table_cell(entry)} | {table_cell(why)} |"
                  for entry, _, why in (line.partition(": ") for line in summary.passed_over)]
    if summary.gone:  # their grades are in the database, not in this summary nor in the gradebook
        lines += ["", "## Graded earlier, not in the folder now", "",
                  f"{len(summary.gone)} submission(s) graded into this folder by an earlier run are not in the "
                  "submissions folder now, and are left out of this summary, gradebook.csv and report.html: "
                  + ", ".join(table_cell(ident) for ident in summary.gone)]
    return "\n".join(lines) + "\n"


def print_summary(summary: Summary, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(f"[bold]{summary.assignment}[/]: {summary.submissions} submissions, "
                  + ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
                  + f"; mean {summary.mean:.2f}, median {summary.median:g} of {summary.max_score:g} ({GRADES_COUNTED})")
    rates = Table(title="pass rate per task")
    for column in ("task", "passed", "rate"):
        rates.add_column(column, justify="left" if column == "task" else "right")
    for task, passed, graded in summary.pass_rates:
        rates.add_row(task, f"{passed}/{graded}", _rate(passed, graded))
    console.print(rates)
    bands = Table(title="score distribution")
    bands.add_column("score")
    bands.add_column("submissions", justify="right")
    bands.add_column("")
    widest = max((n for _, n in summary.distribution), default=0) or 1
    for band, n in summary.distribution:
        bands.add_row(band, str(n), "#" * round(30 * n / widest))
    console.print(bands)
    if summary.slowest:
        console.print("slowest: " + ", ".join(f"{i} ({s:.1f} s)" for i, s in summary.slowest))
    for ident, status, why in summary.failing[:FAILING_SHOWN]:
        console.print(Text.assemble((ident, "red"), f" {status}: {log_safe(why)}"))


def write_summary(out: Path, summary: Summary) -> Path:
    path = out / "summary.md"
    write_atomically(path, summary_markdown(summary))
    return path


def _points(value: float) -> str:
    return f"{value:g}"


def _rate(passed: int, graded: int) -> str:
    return f"{100 * passed / graded:.0f}%" if graded else "-"


def _one_line(text: str) -> str:
    """A gradebook cell: printable, one line (a spreadsheet shows a cell's newlines as rows)."""
    return " ".join(printable(text).splitlines())
