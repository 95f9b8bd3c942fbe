"""Text from the worker: valid Unicode where it enters the grader, inert in every report that shows it."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ElementTree

import pytest
from rich.console import Console

from grader.boundary import protocol, wire
from grader.sandbox.remote import _unwrap
from grader.report import github, write_each
from grader.report.gradescope import to_results_json
from grader.report.junit import to_junit_xml
from grader.report.markdown import table_cell
from grader.report.terminal import render_table
from grader.results import CheckResult, GradingResult, Outcome, TaskResult
from grader.untrusted_text import log_safe, printable, valid_unicode
from grader.sandbox.worker_process import OutputLog
from grader.sandbox.errors import StudentException
from hostile_text import COMMAND, CONTROL, HOSTILE, unescaped_pipes

def hostile_result() -> GradingResult:
    check = CheckResult("test_layers.py::test_relu", "relu.forward", Outcome.ERROR, f"your code raised Evil: {HOSTILE}",
                        detail=f"Traceback:\n{HOSTILE}", location=("lay\udcffers.py", 3), notes=(HOSTILE,))
    task = TaskResult.from_checks("relu.forward", "ReLU", 1, "visible", [check])
    return GradingResult("a1_fc_numpy", "official", 1, (task,), 1.0, "test", output=f"note: {HOSTILE}",
                         submission_log=HOSTILE)


# --- where it enters --------------------------------------------------------------------------------

def test_valid_unicode_replaces_lone_surrogates_and_nothing_else():
    assert valid_unicode("a\ud800b\udfff") == "a\ufffdb\ufffd"
    kept = "é😀\x1b[31m::error::x\n\x00"
    assert valid_unicode(kept) is kept


def test_a_students_exception_enters_as_valid_unicode_and_otherwise_as_it_was():
    reply = json.loads(json.dumps({"ok": False, "error": {
        "type": "Evil\ud800\n::error::t", "message": HOSTILE, "traceback": f"tb {HOSTILE}",
        "location": ["layers\udcff.py", 7]}}))
    assert "\ud800" in reply["error"]["message"]  # JSON carries a lone surrogate across
    with pytest.raises(StudentException) as raised:
        _unwrap(protocol.Reply.from_json(reply), wire.Decoder([], lambda ref: ref))
    error = raised.value
    assert error.type_name == "Evil\ufffd\n::error::t"
    assert error.message == HOSTILE.replace("\ud800", "\ufffd")
    assert error.traceback == f"tb {error.message}" and error.location == ("layers\ufffd.py", 7)
    for text in (error.type_name, error.message, error.traceback, error.location[0]):
        text.encode("utf-8")


def test_a_location_whose_line_is_not_a_number_is_dropped():
    reply = {"ok": False, "error": {"type": "E", "message": "m", "traceback": "", "location": ["x.py", "3; rm"]}}
    with pytest.raises(StudentException) as raised:
        _unwrap(protocol.Reply.from_json(reply), wire.Decoder([], lambda ref: ref))
    assert raised.value.location is None


def test_what_the_worker_printed_is_valid_unicode_even_cut_inside_a_character():
    log = OutputLog(limit=8)
    log.add("ab€".encode() + b"\xff\xed\xa0\x80" + b"x" * 20)  # € cut by the head's limit
    text = log.text()
    text.encode("utf-8")
    assert text.startswith("ab") and "\ufffd" in text and "bytes of output dropped" in text


def test_the_result_model_keeps_text_built_from_a_students_values_valid():
    result = hostile_result()
    check = result.tasks[0].checks[0]
    assert "\ud800" not in check.message and check.message.endswith(HOSTILE.replace("\ud800", "\ufffd"))
    assert check.location == ("lay\ufffders.py", 3) and "\ud800" not in check.notes[0]
    assert "\x1b[31m" in result.tasks[0].detail  # raw otherwise: escaping is each writer's
    json.dumps(to_results_json(result), ensure_ascii=False).encode("utf-8")


# --- the shared escapes -------------------------------------------------------------------------------

def test_printable_keeps_text_tabs_and_newlines_and_drops_what_a_terminal_acts_on():
    assert printable("a\tb\r\nc\rd\u2028e") == "a\tb\nc\nd\ne"
    assert printable("\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b(B\x00\x9b2J") == "red link 2J"
    assert not CONTROL.search(printable(HOSTILE))


def test_log_safe_leaves_no_line_a_runner_would_obey():
    assert COMMAND.search(HOSTILE)
    safe = log_safe(HOSTILE)
    assert not COMMAND.search(safe), safe
    assert "\\::error::forged" in safe and "##\\[error]" in safe and "\\  ::set-output" in safe
    assert log_safe("fine: a line\nwith text") == "fine: a line\nwith text"


# --- each writer ------------------------------------------------------------------------------------

def test_junit_xml_parses_and_keeps_the_students_words():
    result = hostile_result()
    with pytest.raises(ElementTree.ParseError):  # what ElementTree alone writes
        raw = ElementTree.Element("failure", {"message": result.tasks[0].message})
        ElementTree.fromstring(ElementTree.tostring(raw, encoding="utf-8"))
    suite = ElementTree.fromstring(to_junit_xml(result))
    error = suite.find("testcase/error")
    assert "::error::forged" in error.text and "<img src=x" in error.get("message")
    assert not CONTROL.search(error.text.replace("\n", "")) and "\uffff" not in error.text


def test_the_terminal_shows_markup_as_text_and_no_control_or_command():
    stream = io.StringIO()
    console = Console(file=stream, width=120, no_color=True, force_terminal=False, highlight=False, soft_wrap=True)
    render_table(hostile_result(), console)
    text = stream.getvalue()
    assert "[bold]x[/] [/]" in text and "\\::error::forged" in text
    assert not CONTROL.search(text.replace("\n", "")) and not COMMAND.search(text), text


def test_annotations_are_one_line_each_and_carry_no_command_of_the_student():
    lines = github.annotations(hostile_result(), workspace=github.Path("."))
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0]
    assert lines[0].startswith("::error title=relu.forward%3A error") and lines[0].count("::") == 2 + HOSTILE.count("::")
    assert not CONTROL.search(lines[0])
    assert github.workflow_command("error", "x", title="a\x1b[31m,b") == "::error title=a%2Cb::x"


def test_the_job_summary_holds_no_html_and_no_row_or_fence_broken_by_the_student():
    summary = github.job_summary(hostile_result())
    row = next(line for line in summary.splitlines() if line.startswith("| relu.forward"))
    assert unescaped_pipes(row) == 5, row  # four cells, nothing split
    fence = re.search(r"^(`{3,})text$", summary, re.MULTILINE).group(1)
    assert len(fence) > 3 and summary.count(f"\n{fence}\n") == 1  # the student's ``` does not close it
    outside, _, rest = summary.partition(f"{fence}text\n")
    inside, _, after = rest.partition(f"\n{fence}\n")
    assert "<" not in outside + after and "&lt;img" in outside and "<img" in inside  # shown as code
    assert not CONTROL.search(summary.replace("\n", ""))
    assert table_cell("a\\|b") == "a\\\\\\|b"  # a student's backslash cannot undo the escape


def test_the_classroom_message_is_inert_in_the_reporters_log():
    test = github.classroom_result(hostile_result(), github.Path("."))["tests"][0]
    assert not COMMAND.search(test["message"]) and not CONTROL.search(test["message"].replace("\n", ""))
    github.encode_classroom_result(github.classroom_result(hostile_result(), github.Path(".")))


def test_a_writer_that_fails_costs_its_own_report_only():
    written = []

    def broken() -> None:
        raise OSError("disk full")

    failures = write_each([("first", lambda: written.append(1)), ("the JUnit XML", broken),
                           ("last", lambda: written.append(2))])
    assert written == [1, 2] and failures == ["could not write the JUnit XML: OSError: disk full"]
