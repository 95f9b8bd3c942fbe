"""What a student file looks like before the student wrote anything: each region the student fills
in, between `# BEGIN YOUR CODE` and `# END YOUR CODE`, holds only the stub's
`raise NotImplementedError(...)` (and comments)."""

from __future__ import annotations

import re

_FENCE = re.compile(r"# BEGIN YOUR CODE\n(.*?)# END YOUR CODE", re.DOTALL)


def fence_bodies(source: str) -> list[str]:
    """The text between each pair of fences of a student file."""
    return _FENCE.findall(source.replace("\r\n", "\n"))


def is_untouched_body(body: str) -> bool:
    lines = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
    return len(lines) == 1 and lines[0].startswith("raise NotImplementedError")


def is_untouched_stub(source: str) -> bool:
    """Whether a student file is a stub nobody has worked on: it has fences, and each holds only the
    stub's raise. A file without fences is not (its author removed them while working)."""
    bodies = fence_bodies(source)
    return bool(bodies) and all(is_untouched_body(body) for body in bodies)
