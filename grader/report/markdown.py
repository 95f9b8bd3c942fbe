"""Untrusted text in Markdown (GitHub's job summary, a batch's summary.md): a table cell that stays one
cell of one row and shows no HTML, links or images; a code fence the text cannot close."""

from __future__ import annotations

import html
import re

from grader.untrusted_text import printable

CELL_CHARS = 300

# What lets text leave its cell or bring in content: the table's `|`, code spans (a `|` inside one
# still splits the row), links and images (`[`, `]`), and the backslash that would undo an escape.
# A backslash in front shows the character itself. Emphasis (`*`, `_`) only styles, and stays.
_INLINE_MARKUP = re.compile(r"([\\`|\[\]])")


def table_cell(text: str, limit: int = CELL_CHARS) -> str:
    """One line, at most `limit` characters of the text, `<` `>` `&` as entities (no HTML), and the
    punctuation above escaped."""
    line = " ".join(printable(text).split())
    if len(line) > limit:
        line = line[:limit] + " ..."
    return _INLINE_MARKUP.sub(r"\\\1", html.escape(line, quote=False))


def code_fence(text: str) -> str:
    """A fence of backticks longer than any run of them in `text`, so no line of it closes the block."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
