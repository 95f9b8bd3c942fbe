"""Which submissions a folder holds, and what each is called.

A submission is a zip or a folder directly inside SUBMISSIONS_DIR. Its id comes from what the
instructor holds, never from the submission's own files: its file name without `.zip` or its folder
name, or, in a Gradescope export (`submission_metadata.yml` next to `submission_<n>/` folders), its
submitters' student ids (or e-mails) joined with `+`.

A `MANIFEST.json` in the submission (the grader's own submission zip writes one) is the student's
claim: a `"student"` (or `"id"`) other than the submission's id does not rename it, and is reported
in its result; an `"assignment"` other than the batch's makes it unusable (it can only cost its own
author). A folder that is a clone of the course repository (GitHub Classroom) is graded from its
`assignments/<A>/` folder.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import yaml

from grader.batch.platform_downloads import StudentUpload, group, moodle_plugin, read_name, stage
from grader.yaml_text import load_yaml_as_text

GRADESCOPE_METADATA = "submission_metadata.yml"
MANIFEST = "MANIFEST.json"
MAX_MANIFEST_BYTES = 64 * 1024
_UNSAFE = re.compile(r"[^\w.+@-]+")  # \w: letters and digits of every script (José, 张伟), and _
_CLAIM_SHOWN = 80  # characters of a MANIFEST's claimed id quoted in the note


@dataclass(frozen=True)
class FoundSubmission:
    id: str                  # unique in the batch, safe as a file name
    path: Path               # the zip, or the folder holding the student files
    problem: Optional[str] = None  # why it cannot be graded, found before grading (e.g. wrong assignment)
    notes: tuple[str, ...] = ()    # what its result should say about it (e.g. a MANIFEST claiming another id)
    upload: Optional[StudentUpload] = None  # loose files of a platform's download, to be staged at `path`
    members: tuple[str, ...] = ()  # a group's submitters, where a Gradescope export names several


def discover(assignment_id: str, folder: Path, student_files: Sequence[str] = (),
             stage_in: Optional[Path] = None) -> tuple[list[FoundSubmission], list[str]]:
    """The submissions in `folder` sorted by id, and a line for each entry that was passed over.
    With `stage_in`, loose files a learning platform's download named after their students
    (grader.batch.platform_downloads) are grouped into a submission per student, to be copied
    (`stage_uploads`) into a folder of `stage_in` and graded from there."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions")
    submitters = _gradescope_submitters(folder)
    named = {entry: "+".join(people) for entry, people in submitters.items()}
    candidates: list[tuple[str, Path | StudentUpload]] = []
    skipped: list[str] = []
    platform_files = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == GRADESCOPE_METADATA or entry.name == "__MACOSX":
            continue
        plugin = moodle_plugin(entry.name)
        if entry.is_symlink():
            skipped.append(f"{entry.name}: a symbolic link, not graded")
        elif plugin not in (None, "file"):
            skipped.append(f"{entry.name}: Moodle's {plugin} submission, not uploaded files: not graded")
        elif entry.is_dir():
            candidates.append((named.get(entry.name, entry.name), entry))
        elif stage_in is not None and entry.name not in named and (platform_file := read_name(entry)) is not None:
            platform_files.append(platform_file)
        elif entry.suffix.lower() in (".zip", ".ipynb"):
            candidates.append((named.get(entry.name, entry.stem), entry))
        else:
            skipped.append(f"{entry.name}: neither a folder, a .zip nor a notebook (.ipynb), not graded")
    uploads, passed_over = group(platform_files, student_files)
    candidates += [(upload.student, upload) for upload in uploads]
    skipped += passed_over
    found = []
    ids = _unique([name for name, _ in candidates])
    by_name: dict[str, list[tuple[str, Path]]] = {}   # entries by the name they bear, exactly
    for ident, (name, item) in zip(ids, candidates):
        if isinstance(item, Path):
            by_name.setdefault(name, []).append((ident, item))
    owner_of = {ident.casefold(): item.name if isinstance(item, Path) else item.student
                for ident, (_, item) in zip(ids, candidates)}
    for ident, (name, path) in zip(ids, candidates):
        if isinstance(path, StudentUpload):
            late = (f"{path.platform} marks this submission late (LATE in its download's file names)",)
            found.append(FoundSubmission(ident, stage_in / ident, upload=path, notes=late if path.late else ()))
            continue
        manifest, problem, notes = _manifest(path), None, ()
        if manifest is not None:
            claimed = manifest.get("assignment")
            if isinstance(claimed, str) and claimed != assignment_id:
                problem = f"its {MANIFEST} says it was made for {claimed}, not {assignment_id}"
            notes = _identity_claim(manifest, name, ident)
        twins = _same_name_elsewhere(path, ident, by_name[name])
        notes += twins or _numbered(name, ident, path, owner_of)
        people = submitters.get(path.name, ())
        found.append(FoundSubmission(ident, _grading_root(path, assignment_id), problem, notes,
                                     members=tuple(people) if len(people) > 1 else ()))
    return sorted(found, key=lambda s: s.id), skipped


def stage_uploads(found: Sequence[FoundSubmission]) -> None:
    """Copies each student's loose files of a platform's download to the folder they are graded from."""
    for submission in found:
        if submission.upload is not None:
            stage(submission.upload, submission.path)


def _numbered(name: str, ident: str, path: Path, owner_of: dict[str, str]) -> tuple[str, ...]:
    """A note where the submission's name came out as another's id, so that it was numbered."""
    base = safe_id(name)
    if ident == base or base.casefold() not in owner_of:
        return ()
    return (f"{path.name} is graded as {ident}: its name comes out as {base}, the id of "
            f"{owner_of[base.casefold()]}",)


def _same_name_elsewhere(path: Path, ident: str, named_alike: list[tuple[str, Path]]) -> tuple[str, ...]:
    """A note where another entry bears the same name (`carl.zip` beside the folder `carl` it was
    extracted to): each is graded as a submission of its own, which the instructor should know."""
    twins = [f"{other.name} (graded as {other_id})" for other_id, other in named_alike if other != path]
    if not twins:
        return ()
    return (f"{path.name}, graded as {ident}, has the name of {', '.join(twins)} in the same folder: each is "
            "graded as a submission of its own",)


def _identity_claim(manifest: dict, name: str, ident: str) -> tuple[str, ...]:
    """A note where the MANIFEST names a student other than the one the batch named."""
    student = manifest.get("student", manifest.get("id"))
    if not isinstance(student, (str, int)) or not str(student).strip():
        return ()
    claimed = str(student).strip()
    if claimed in (name, ident) or safe_id(claimed) == ident:
        return ()
    shown = claimed if len(claimed) <= _CLAIM_SHOWN else claimed[:_CLAIM_SHOWN] + "..."
    return (f"Its {MANIFEST} names the student {shown!r}; it was graded as {ident}, the name of its "
            "folder or archive (what a submission says about itself is not trusted).",)


def _grading_root(path: Path, assignment_id: str) -> Path:
    clone = path / "assignments" / assignment_id
    return clone if path.is_dir() and clone.is_dir() else path


def safe_id(name: str) -> str:
    """A name as an id: safe as a file name, and no spreadsheet reads it as a formula (`=`, `+`, `-`, `@`).
    Letters of every script are kept, composed (a name read from macOS's file system comes decomposed):
    a name keeps its letters in its id, and only names that still come out alike (ignoring case) are
    numbered, in the order of the folder (see `_unique`)."""
    return _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).lstrip("._+@-").rstrip("._") or "submission"


def _unique(names: list[str]) -> list[str]:
    """Each name as an id, no two alike even where letter case is ignored (the submissions' folders
    of the output may be on a file system that ignores it). Of the names that come out alike, the one
    that is its id as it stands (`alice` of `alice.zip`) keeps it, else the first in the folder's
    order; the others are numbered (`bob-2`), skipping every id a name has as its own, so that the
    folders `bob`, `bob!` and `bob-2` become `bob`, `bob-3` and `bob-2`, and `alice!.zip`, sorted
    before `alice.zip`, cannot take the id (and the gradebook row) of alice."""
    bases = [safe_id(name) for name in names]
    used: set[str] = set()
    owners = set()
    for exact in (True, False):
        for index, base in enumerate(bases):
            if (names[index] == base) == exact and base.casefold() not in used:
                used.add(base.casefold())
                owners.add(index)
    ids = []
    for index, base in enumerate(bases):
        if index in owners:
            ids.append(base)
            continue
        number = 2
        while f"{base}-{number}".casefold() in used:
            number += 1
        used.add(f"{base}-{number}".casefold())
        ids.append(f"{base}-{number}")
    return ids


def _gradescope_submitters(folder: Path) -> dict[str, list[str]]:
    """Folder name -> its submitters' ids (several for a group), from a Gradescope export's metadata
    (keys written as Ruby symbols, `:submitters:`); empty when there is none or it cannot be read."""
    path = folder / GRADESCOPE_METADATA
    if not path.is_file():
        return {}
    try:
        metadata = load_yaml_as_text(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return {}
    names = {}
    for key, value in (metadata or {}).items() if isinstance(metadata, dict) else ():
        entry = {str(k).lstrip(":"): v for k, v in value.items()} if isinstance(value, dict) else {}
        people = entry.get("submitters") or []
        ids = []
        for person in people if isinstance(people, list) else []:
            if isinstance(person, dict):
                person = {str(k).lstrip(":"): v for k, v in person.items()}
                ident = person.get("sid") or person.get("email") or person.get("name")
                if ident:
                    ids.append(str(ident))
        if ids:
            names[str(key)] = ids
    return names


def _manifest(path: Path) -> Optional[dict]:
    """The submission's MANIFEST.json as a dict; None when it is absent or not one the grader could
    have written (the intake then judges the files without it)."""
    try:
        if path.is_dir():
            file = path / MANIFEST
            if not file.is_file() or file.is_symlink():
                return None
            if file.stat().st_size > MAX_MANIFEST_BYTES:
                return None  # not one the grader wrote
            text = file.read_bytes()
        else:
            with zipfile.ZipFile(path) as archive:
                info = next((i for i in archive.infolist() if i.filename == MANIFEST), None)
                if info is None:
                    return None
                if info.file_size > MAX_MANIFEST_BYTES:
                    return None
                text = archive.read(info)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return None  # the intake names what is wrong with the archive itself
    try:
        manifest = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None
