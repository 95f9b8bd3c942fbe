"""Which submissions of a batch share code that nobody was given: pairs to look at, never a score.

Each student file is tokenised and normalised by copydetect (names become `V`, `F` or `O`, string
literals `S`, white space and comments go), and fingerprinted by winnowing its k-grams. Every k-gram
of the code the whole class shares (the stubs, the provided files and, where `reference/<A>` is
present, the instructor's solution) is boilerplate and removed, so that what two submissions can
share is only what a student wrote: two students who both kept the stub's lines, or both wrote what
the reference writes, are not alike for it. Files are compared with the file of the same name.

This only reads the files, through the intake's reader (`grader.engine.submission.read_submission`:
folders, zips and notebooks, with its limits on sizes and links); no student code is imported or run,
and nothing it finds changes a score.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from grader.assignment import Assignment
from grader.engine.submission import UnusableSubmission, read_submission
from grader.untrusted_text import printable

# The smallest pair score reported. Measured on a1_fc_numpy with tests/test_similarity.py's batch:
# honest submissions (the reference with three catalogued mistakes each, hand-written variants) score
# at most 0.13 against each other (0.66 to 1.0 with nothing counted as boilerplate), a copy with
# renamed variables and reordered functions 0.99. Half way, and above copydetect's own 0.33, so that
# a pair is flagged for sharing most of what one of them wrote, never for sharing a few idioms.
DEFAULT_THRESHOLD = 0.5
# copydetect's k (noise threshold): matches shorter than this many characters of normalised code
# (about one statement, `V=V.V(V.V[0],-1)@V+V` being 20) are noise.
NOISE_CHARACTERS = 25
# Every match at least this long is found; winnowing keeps one k-gram in each window of
# GUARANTEE - NOISE + 1. Equal to NOISE (copydetect's default) every k-gram is kept, so that scores
# do not depend on which k-grams Python's per-process string hashing happens to select.
GUARANTEE_CHARACTERS = 25
# A pair is reported only where the code it shares, outside the boilerplate, is this long on each side
# (normalised characters, about four statements): two near-stub submissions that wrote one line alike
# share all they wrote, and that says nothing.
MIN_SHARED_CHARACTERS = 100
# Excerpts shown for a pair: this many at most, the longest shared stretches, each up to this many lines.
MAX_REGIONS = 5
REGION_LINES = 8
_LANGUAGE = "python"


@dataclass(frozen=True)
class SimilarPair:
    """Two submissions that share more of what their students wrote than the threshold."""

    first: str                      # submission id, first < second
    second: str
    score: float                    # 0..1: the larger of the two shares of their own code that the other holds too
    # Matching excerpts (first's, second's), longest first, each headed `<file>, lines a-b:`; text made printable.
    regions: list[tuple[str, str]]


def similar_pairs(assignment: Assignment, submissions: Sequence[tuple[str, Path]],
                  threshold: float = DEFAULT_THRESHOLD) -> list[SimilarPair]:
    """The pairs of `submissions` scoring at least `threshold`, highest first.

    Each submission is (id, source) where source is what the intake grades: a folder holding the
    student files (at its top or in one folder below, as `grader.files.find_student_files` finds them),
    a zip or a notebook. discover()'s results go in as they are:
    `similar_pairs(assignment, [(s.id, s.path) for s in found if s.problem is None])`.
    A submission that cannot be read, and a student file that is missing, empty or not text, take no
    part; nothing is raised for them."""
    sources = {ident: _student_texts(assignment, path) for ident, path in submissions}
    return pairs_among(sources, shared_code(assignment), threshold)


def shared_code(assignment: Assignment) -> dict[str, str]:
    """What every student was given, by file: the stubs and the provided files, and the instructor's
    solution where `reference/<A>` is present."""
    spec = assignment.spec
    folders = [(assignment.directory, [*spec.student_files, *spec.provided_files])]
    if assignment.reference_directory is not None:
        folders.append((assignment.reference_directory, list(spec.student_files)))
    shared = {}
    for folder, names in folders:
        for name in names:
            path = folder / name
            if path.is_file():
                shared[f"{folder.name}/{name}" if name in shared else name] = path.read_text(errors="replace")
    return shared


def pairs_among(sources: Mapping[str, Mapping[str, str]], boilerplate: Mapping[str, str] | Iterable[str],
                threshold: float = DEFAULT_THRESHOLD) -> list[SimilarPair]:
    """The pairs of `sources` (submission id -> file name -> text) scoring at least `threshold`,
    highest first, with every k-gram of the `boilerplate` texts left out of the comparison."""
    texts = boilerplate.values() if isinstance(boilerplate, Mapping) else boilerplate
    ignored = _boilerplate_hashes(texts)
    known: dict[str, _Fingerprint] = {}  # many submissions hand in a file as it was given
    fingerprints = {ident: {name: known.get(text) or known.setdefault(text, _Fingerprint.of(text, ignored))
                            for name, text in files.items()}
                    for ident, files in sources.items()}
    pairs = []
    for first, second in combinations(sorted(fingerprints), 2):
        pair = _compare(first, fingerprints[first], second, fingerprints[second])
        if pair is not None and pair.score >= threshold:
            pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.score, p.first, p.second))


# --- reading ---------------------------------------------------------------------------------------

def _student_texts(assignment: Assignment, source: Path) -> dict[str, str]:
    """The submission's student files as text; those that are not text (a NUL byte) are left out."""
    try:
        files = read_submission(assignment, source).files
    except (UnusableSubmission, OSError):
        return {}
    return {name: printable(data.decode("utf-8", errors="replace"))
            for name, data in files.items() if b"\0" not in data}


# --- fingerprints ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Fingerprint:
    """One file's winnowed k-gram hashes outside the boilerplate, with where each occurs."""

    code: object                     # copydetect's CodeFingerprint
    text: str                        # the file as tokenised, which excerpts are cut from
    raw_index: np.ndarray            # normalised character -> its index in `text`
    first_line: int                  # the line of the file that `text` starts with

    @staticmethod
    def of(text: str, ignored: np.ndarray) -> "_Fingerprint":
        from copydetect import CodeFingerprint  # imports matplotlib: only when a batch compares
        content = text.removeprefix("\ufeff")
        body = content.strip("\n") + "\n"
        first_line = 1 + len(content) - len(content.lstrip("\n"))
        normalised, raw_index = _normalise(body)
        code = CodeFingerprint("file.py", NOISE_CHARACTERS, _window(), ignored, filter=False,
                               fp=io.StringIO(normalised))
        return _Fingerprint(code, body, raw_index, first_line)


def _window() -> int:
    return GUARANTEE_CHARACTERS - NOISE_CHARACTERS + 1


def _boilerplate_hashes(texts: Iterable[str]) -> np.ndarray:
    """Every k-gram hash of the texts (a window of one: boilerplate is removed whole, not winnowed)."""
    from copydetect import CodeFingerprint
    hashes: list[int] = []
    for text in texts:
        normalised, _ = _normalise(text)
        hashes.extend(CodeFingerprint("file.py", NOISE_CHARACTERS, 1, filter=False,
                                      fp=io.StringIO(normalised)).hashes)
    return np.unique(np.array(hashes, dtype=np.int64))


def _normalise(text: str) -> tuple[str, np.ndarray]:
    """copydetect's normalised code (copydetect.utils.filter_code's rules: a name becomes V, F or O,
    a string S, white space and comments go) and, for each of its characters, where it came from in
    `text`, which filter_code's own offsets misplace after a class name."""
    from pygments import lexers, token
    names = {token.Name, token.Name.Variable, token.Name.Attribute}
    pieces: list[str] = []
    positions: list[int] = []
    for start, kind, value in lexers.get_lexer_by_name(_LANGUAGE).get_tokens_unprocessed(text):
        if kind in names:
            pieces.append("V")
        elif kind in token.Name.Function:
            pieces.append("F")
        elif kind in token.Name.Class:
            pieces.append("O")
        elif kind == token.Comment.Preproc or kind == token.Comment.Hashbang:
            pieces.append("P")
        elif kind in token.Text or kind in token.Comment:
            continue
        elif kind in token.Literal.String:
            pieces.append('"' if value in ("'", '"') else "S")
        else:
            pieces.append(value)
            positions.extend(range(start, start + len(value)))
            continue
        positions.append(start)
    return "".join(pieces), np.array(positions, dtype=int)


# --- comparing -------------------------------------------------------------------------------------

def _compare(first: str, first_files: Mapping[str, _Fingerprint],
             second: str, second_files: Mapping[str, _Fingerprint]) -> SimilarPair | None:
    """The pair's score and excerpts; None when they share less than MIN_SHARED_CHARACTERS."""
    from copydetect import compare_files
    shared = [0.0, 0.0]
    covered = [0.0, 0.0]
    for side, files in enumerate((first_files, second_files)):
        covered[side] = sum(float(f.code.token_coverage) for f in files.values())
    runs = []
    for name in sorted(first_files.keys() & second_files.keys()):
        one, other = first_files[name], second_files[name]
        if not one.code.hashes & other.code.hashes:
            continue
        try:
            _, fractions, _ = compare_files(one.code, other.code)
        except (ValueError, IndexError) as exc:  # copydetect on pathological text: not comparable
            logging.getLogger(__name__).debug("%s: %s and %s not compared: %s", name, first, second, exc)
            continue
        shared[0] += fractions[0] * float(one.code.token_coverage)
        shared[1] += fractions[1] * float(other.code.token_coverage)
        runs.extend((length, name, a, b) for length, a, b in _shared_runs(one, other))
    if min(shared) < MIN_SHARED_CHARACTERS:
        return None
    score = max(s / c for s, c in zip(shared, covered) if c)
    runs.sort(key=lambda run: (-run[0], run[1], run[2]))
    regions = [(_excerpt(name, first_files[name], a), _excerpt(name, second_files[name], b))
               for _, name, a, b in runs[:MAX_REGIONS]]
    return SimilarPair(first, second, min(1.0, float(score)), regions)


def _shared_runs(one: _Fingerprint, other: _Fingerprint) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
    """Stretches of normalised code the two files share, as (length, span in one, span in other):
    shared k-grams that follow one another at the same distance in both files."""
    k = NOISE_CHARACTERS
    matches = sorted((min(one.code.hash_idx[h]), min(other.code.hash_idx[h]))
                     for h in one.code.hashes & other.code.hashes)
    runs = []
    start = previous = matches[0]
    for match in matches[1:] + [None]:
        if match is not None and match[0] - previous[0] <= k and abs(
                (match[1] - previous[1]) - (match[0] - previous[0])) <= k:
            previous = match
            continue
        # A run's first k-gram is mostly the boilerplate it follows: its excerpt starts at its end.
        span_one = (start[0] + k - 1, previous[0] + k)
        span_other = (start[1] + k - 1, max(start[1], previous[1]) + k)
        runs.append((span_one[1] - span_one[0], span_one, span_other))
        if match is not None:
            start = previous = match
    return runs


def _excerpt(name: str, fingerprint: _Fingerprint, span: tuple[int, int]) -> str:
    """The whole lines of the file holding a normalised span, at most REGION_LINES of them."""
    index = fingerprint.raw_index
    if len(index) == 0:
        return name
    begin = int(index[min(span[0], len(index) - 1)])
    end = int(index[min(span[1], len(index)) - 1]) + 1
    text = fingerprint.text
    first_line = text.count("\n", 0, begin)
    last_line = max(first_line, text.count("\n", 0, end))
    lines = text.split("\n")[first_line:min(last_line + 1, first_line + REGION_LINES)]
    number = fingerprint.first_line + first_line
    return f"{name}, lines {number}-{number + len(lines) - 1}:\n" + "\n".join(lines)
