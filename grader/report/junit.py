"""The result as JUnit XML: one testcase per task, for CI systems that read test reports.

ElementTree escapes markup but writes any character it is given, and a control character (the
student's ANSI colours, a NUL) makes the file one no XML parser reads: every text goes through
`xml_text` first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from grader.files import write_atomically
from grader.report.gradescope import task_output
from grader.results import GradingResult, Outcome, TaskResult
from grader.untrusted_text import printable

# What XML 1.0 does not allow in a document, once `printable` has removed the controls:
# the non-characters U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("", printable(text))


def _task_seconds(task: TaskResult) -> float:
    if task.training is not None and task.training.train_seconds is not None:
        return task.training.train_seconds
    return sum(c.duration_s for c in task.checks)


def to_junit_xml(result: GradingResult) -> bytes:
    failures = sum(1 for t in result.tasks if t.outcome in (Outcome.FAILED, Outcome.NOT_IMPLEMENTED, Outcome.TIMEOUT))
    errors = result.count(Outcome.ERROR)
    skipped = result.count(Outcome.SKIPPED)
    suite = ElementTree.Element("testsuite", {
        "name": result.assignment, "tests": str(len(result.tasks)), "failures": str(failures),
        "errors": str(errors), "skipped": str(skipped), "time": f"{result.execution_time_s:.3f}",
    })
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (("score", result.score), ("max_score", result.max_score), ("mode", result.mode),
                        ("seed", result.seed)):
        ElementTree.SubElement(properties, "property", {"name": name, "value": str(value)})
    for task in result.tasks:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": result.assignment, "name": task.task_id,
            "time": f"{_task_seconds(task):.3f}",
        })
        ElementTree.SubElement(case, "properties").append(
            ElementTree.Element("property", {"name": "points", "value": f"{task.points:g}/{task.max_points:g}"}))
        message, output = xml_text(task.message), xml_text(task_output(task))
        if task.outcome is Outcome.SKIPPED:
            ElementTree.SubElement(case, "skipped", {"message": message})
        elif task.outcome is Outcome.ERROR:
            ElementTree.SubElement(case, "error", {"message": message}).text = output
        elif task.outcome is not Outcome.PASSED:
            ElementTree.SubElement(case, "failure", {"message": message, "type": task.outcome.value}).text = output
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)


def write_junit(result: GradingResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, to_junit_xml(result))
