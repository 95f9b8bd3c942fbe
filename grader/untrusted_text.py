"""Text from the worker: made valid Unicode where it enters the grader, made inert where it is shown.

Every string the worker sends (an exception's type name, message and traceback, what the code
printed, a handle's type name) and every string the grader builds from a student's values can hold
anything: lone surrogates (JSON's `"\\ud800"` decodes to one), terminal escape sequences, control
characters, lines that a CI runner reads as commands. Where it enters, `valid_unicode` replaces
only what no encoder can write, so the result model keeps the student's text otherwise as it was.
Each writer then shows it in its own format; the two steps they share live here: `printable` (no
terminal control) and `log_safe` (printable, and no line a CI runner would take for a command).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"

# A Python str holds surrogates only unpaired (JSON's escaped pairs decode to one code point);
# no UTF-8 encoder, JSON writer or XML parser accepts them.
_SURROGATE = re.compile("[\ud800-\udfff]")

# ESC sequences a terminal acts on: CSI (colours, cursor moves, screen clearing), OSC (window
# titles, hyperlinks; up to BEL or ST, never past a line), DCS/SOS/PM/APC strings, and the short
# two- or three-character ones.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 and C1 controls and DEL, except tab and newline (a CR was turned into a newline before).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029]")

# Unicode's default-ignorable code points: invisible, and skipped by the culture-aware string
# comparisons of .NET, in which GitHub's runner matches `::` at a line's start and `##[` anywhere.
_IGNORABLE = ("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
              "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
              "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# A line the runner would read as a workflow command (`::error::`, `::add-mask::`, `::stop-commands::`):
# it trims leading white space first. Any line whose first visible character is `:` is escaped.
_COMMAND_LINE = re.compile(rf"^(?=(?:[^\S\n]|{_IGNORABLE})*:)", re.MULTILINE)
# The runner's older command syntax, `##[command]`, is read anywhere in a line.
_OLD_COMMAND = re.compile(rf"(#{_IGNORABLE}*#{_IGNORABLE}*)\[")


def valid_unicode(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, and nothing else changed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def decode(data: bytes) -> str:
    """Bytes the worker wrote, as text: what is not UTF-8 becomes U+FFFD."""
    return data.decode("utf-8", errors="replace")


def printable(text: str) -> str:
    """Valid Unicode without terminal escape sequences or control characters (tabs and newlines
    stay; CR, CR LF and Unicode's line separators become newlines)."""
    text = _LINE_BREAKS.sub("\n", valid_unicode(text))
    if "\x1b" in text:
        text = _ESCAPE_SEQUENCE.sub("", text)
    return _CONTROL.sub("", text)


def log_safe(text: str) -> str:
    """`printable`, and inert in a CI log: a line that would start a workflow command gets a `\\`
    in front, and `##[` becomes `##\\[`."""
    text = _COMMAND_LINE.sub("\\\\", printable(text))
    return _OLD_COMMAND.sub(r"\1\\[", text) if "#" in text else text
