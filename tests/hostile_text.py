"""A student's text written to break reports, and the tests' view of what a report may not hold."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from grader.assignment import Assignment

# What a student's exception can say: a lone surrogate, terminal escapes (colour, clear screen, a
# window title), control characters, rich markup that does not close, HTML, a code fence, and lines
# a GitHub runner would obey, plain, indented, behind an invisible character, after a CR and in the
# runner's older syntax.
HOSTILE = ("bad\ud800 \x1b[31mred\x1b[0m\x1b[2J \x00\x07\x08\x0b\x7f\x85\x9b [bold]x[/] [/] <img src=x onerror=1> "
           "a|b ``` \x1b]0;title\x07\n::error::forged\n::add-mask::x\n  ::set-output name=leak::1\n"
           "\u200b::stop-commands::tok\nold ##[error]v1\r::warning::after a CR\uffff")
# A class can name itself anything too.
HOSTILE_TYPE = "Evil\n::error::forged by the type's name"
# The runner's test for a command line (after trimming white space; invisible characters skipped).
COMMAND = re.compile(r"^[\s\u200b-\u200f\u2060\ufeff]*::|##[\u200b-\u200f\u2060\ufeff]*\[", re.MULTILINE)
# Control characters other than newline and tab: no report shows one.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def hostile_layers(assignment: Assignment) -> str:
    """The reference's layers.py with relu_forward printing the hostile text (as bytes that are not
    UTF-8, since print refuses a lone surrogate) and raising it (so the relu tasks end in an error)."""
    text = (assignment.reference_directory / "layers.py").read_text()
    anchor = "    out = np.maximum(x, 0)\n"
    assert text.count(anchor) == 1
    printed = HOSTILE.encode("utf-8", "surrogatepass") + b"\xff\xfe\n"
    return text.replace(anchor, anchor + f"    __import__('os').write(1, {printed!r})\n"
                                          f"    raise type({HOSTILE_TYPE!r}, (ValueError,), {{}})({HOSTILE!r})\n")


def assert_printable(text: str, where: str) -> None:
    """Valid Unicode without control characters."""
    assert not SURROGATE.search(text), where
    assert not CONTROL.search(text), (where, CONTROL.search(text))


def assert_inert_text(text: str, where: str) -> None:
    """Printable, and no line a CI runner would read as a command."""
    assert_printable(text, where)
    assert not COMMAND.search(text), (where, COMMAND.search(text))


def assert_valid_json(path: Path) -> dict:
    """UTF-8 JSON (read strictly) in which no string holds a surrogate; the parsed value."""
    text = path.read_bytes().decode("utf-8")
    data = json.loads(text)
    assert not SURROGATE.search(json.dumps(data, ensure_ascii=False)), path
    return data


def assert_valid_junit(path: Path) -> ElementTree.Element:
    suite = ElementTree.parse(path).getroot()
    for element in suite.iter():
        for text in (element.text or "", *element.attrib.values()):
            assert not CONTROL.search(text) and not SURROGATE.search(text), (path, element.tag)
    return suite


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))
