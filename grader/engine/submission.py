"""Taking a submission in: the student's files, from a folder or a zip, next to pristine copies of
the provided files, in a scratch directory the worker runs in.

Only the student files named by the assignment are ever taken, and each is written to
`scratch/submission/<name from student_files>`: no name from a folder or an archive decides where
anything is written. A zip is checked entry by entry before anything is read from it; it is refused,
with a message naming the archive and the entry at fault, when an entry's name is absolute, has a
drive letter or a `..` component (with `/` or `\\` as separator), an entry is neither a regular file
nor a directory, the archive holds too many entries, too many bytes, a file that expands too much,
a student file over MAX_FILE_BYTES, or two candidates for one student file (names differing only in
case included). Other entries are ignored, with a warning in the result."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable, Optional
from pathlib import Path

from grader.assignment import Assignment
from grader.engine.wrong_assignment import made_for_another_assignment
from grader.files import SEARCH_DEPTH, choose_holder, find_student_files, holds_work, stands_for
from grader.stub_text import is_untouched_stub
from grader.sandbox.worker_process import make_scratch_dir, remove_scratch_dir

# Source files are kilobytes; a cap this size also keeps a submission from carrying a dataset.
MAX_FILE_BYTES = 2 * 1024 * 1024
# A zip's limits, over all its entries (taken or not): the uncompressed total, the number of
# entries, the archive's own size, and the expansion of any entry larger than RATIO_MIN_BYTES.
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_ARCHIVE_BYTES = MAX_TOTAL_BYTES + 16 * 1024 * 1024
MAX_RATIO = 200
RATIO_MIN_BYTES = 1024 * 1024
# Ignored entries are listed one by one up to this many, then counted.
MAX_LISTED_WARNINGS = 10

# Methods whose decompression the reader bounds; bzip2 and lzma can expand a few kilobytes into
# gigabytes in a single step.
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# What the grader's own submission zip holds besides the student files, and what archivers add.
_SILENT_EXTRAS = {"MANIFEST.json", "results.json"}
_ARCHIVER_JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
_DRIVE = re.compile(r"[A-Za-z]:")
_CHUNK = 64 * 1024


class UnusableSubmission(Exception):
    """The submission cannot be graded at all (exit status 3)."""


@dataclass(frozen=True)
class PreparedSubmission:
    scratch: Path        # the worker's working directory
    package: Path        # scratch/submission: provided files + the student's files
    source: str          # where it came from, for the report
    missing: tuple[str, ...]
    warnings: tuple[str, ...] = ()   # what was ignored or not taken, one line each
    # What the package is made of, to make it again: (the provided files' folder, their names) and
    # the student files' bytes as taken.
    provided: tuple[Path, tuple[str, ...]] | None = None
    student_files: tuple[tuple[str, bytes], ...] = ()

    def renew(self) -> None:
        """The scratch directory as it was before any code ran in it: everything a worker wrote there
        removed and the package written afresh, so that a file the submission's code rewrote (the
        provided `solver.py`, a cached `.pyc`) reaches no later worker. Call it with no worker alive."""
        if self.provided is None:
            return
        for entry in self.scratch.iterdir():
            _remove(entry)
        _write_package(self.package, *self.provided, dict(self.student_files))

    def cleanup(self) -> None:
        remove_scratch_dir(self.scratch)


@dataclass(frozen=True)
class SubmissionFiles:
    """The student files a submission holds, read and checked, before anything is written."""

    source: Path
    files: dict[str, bytes]          # student file name (from the assignment) -> its bytes
    missing: tuple[str, ...]
    warnings: tuple[str, ...]

    def content_hash(self) -> str:
        """Identifies what would be graded: the same files give the same hash however they were
        packed (folder or zip, any entry order, any archiver's extras)."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            data = self.files[name]
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()


def read_submission(assignment: Assignment, source: Path) -> SubmissionFiles:
    """The student files of a folder or a zip; raises UnusableSubmission with the reason."""
    if not source.exists():
        raise UnusableSubmission(f"the submission {source} does not exist")
    warnings: list[str] = []
    if source.is_dir():
        files = _from_folder(assignment, source, warnings)
    elif source.suffix.lower() == ".ipynb" and source.is_file():
        files = _from_notebook(assignment, source, warnings)
    elif zipfile.is_zipfile(source):
        files = _from_zip(assignment, source, warnings)
    else:
        raise UnusableSubmission(f"{source} is neither a folder, a zip archive nor a Jupyter notebook (.ipynb)")
    warnings.extend(made_for_another_assignment(assignment, files))
    missing = tuple(n for n in assignment.spec.student_files if n not in files)
    if len(missing) == len(assignment.spec.student_files):
        detail = "".join(f"; {w}" for w in warnings)
        raise UnusableSubmission(f"{source} holds none of the files to submit ({', '.join(missing)}){detail}")
    return SubmissionFiles(source, files, missing, tuple(warnings))


def prepare_submission(assignment: Assignment, source: Path | None,
                       read: SubmissionFiles | None = None) -> PreparedSubmission:
    """A scratch directory with the provided files and the student's; `read` saves reading again."""
    source = source or assignment.directory
    read = read or read_submission(assignment, source)
    files, missing, warnings = read.files, read.missing, list(read.warnings)
    scratch = make_scratch_dir()
    package = scratch / "submission"
    provided = list(assignment.spec.provided_files)
    if (assignment.directory / "__init__.py").is_file() and "__init__.py" not in provided:
        provided.append("__init__.py")
    # Names from the assignment only, never the submission's.
    taken = tuple((name, files[name]) for name in assignment.spec.student_files if name in files)
    try:
        _write_package(package, assignment.directory, tuple(provided), dict(taken))
    except BaseException:
        remove_scratch_dir(scratch)
        raise
    return PreparedSubmission(scratch, package, str(source), missing, tuple(warnings),
                              (assignment.directory, tuple(provided)), taken)


def _remove(entry: Path) -> None:
    """Removes a file or a folder the submission's code may have left unwritable to its owner."""
    if not entry.is_dir() or entry.is_symlink():
        entry.unlink()
        return

    def writable_then_again(function, path, _error) -> None:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
        function(path)

    os.chmod(entry, stat.S_IRWXU)
    shutil.rmtree(entry, onerror=writable_then_again)


def _write_package(package: Path, provided_directory: Path, provided: tuple[str, ...],
                   student_files: dict[str, bytes]) -> None:
    package.mkdir()
    for name in provided:
        shutil.copyfile(provided_directory / name, package / name)
    for name, data in student_files.items():
        (package / name).write_bytes(data)


def _is_empty(data: bytes) -> bool:
    """An empty student file counts as missing (as the submission zip writer counts it)."""
    return not data.strip()


# --- folders ---------------------------------------------------------------------------------------

def _from_directory(assignment: Assignment, source: Path, warnings: list[str]) -> dict[str, bytes]:
    """Only the student files are read; every other file of the folder is left alone."""
    files = {}
    for name in assignment.spec.student_files:
        path = source / name
        if not os.path.lexists(path):
            others = _case_variants(source, name)
            if len(others) != 1:
                if others:
                    warnings.append(f"{name} not found: {', '.join(others)} are there; which one is {name}?")
                continue
            # Made on a file system that ignores case (macOS, Windows), where the student's own
            # imports found it, or numbered by a browser: graded under the name it must have.
            warnings.append(f"graded {others[0]} as {name}, the name the file must have")
            path = source / others[0]
        elif (worked := _worked_copy(source, name)) is not None:
            warnings.append(f"graded {worked} as {name}: {name} holds the stub as handed out")
            path = source / worked
        try:
            mode = path.lstat().st_mode
        except OSError as exc:
            raise UnusableSubmission(f"{path} cannot be read ({exc.strerror or exc})") from exc
        if stat.S_ISLNK(mode):
            raise UnusableSubmission(f"{path} is a symbolic link: submit the file itself")
        if not stat.S_ISREG(mode):
            raise UnusableSubmission(f"{path} is not a regular file")
        data = _read_regular_file(path)
        if _is_empty(data):
            warnings.append(f"{name} is empty: graded as missing")
            continue
        files[name] = data
    return files


def _from_folder(assignment: Assignment, source: Path, warnings: list[str]) -> dict[str, bytes]:
    """The student files where the folder holds them (grader.files.find_student_files): its top, or a
    folder below, as in a zip extracted into a folder of its own or a clone of the course repository
    (a student's repository in CI, GitHub Classroom) with them in `assignments/<A>/`. Only the student
    files are taken from there, so a clone's checks, provided files and workflows, which the student
    controls, play no part in grading. A folder that holds none of them but one zip archive, or one
    notebook, is the student's upload kept in a folder of its own (a learning platform's download, a
    Gradescope export of the zip the grader writes): that archive or notebook is graded, as
    Gradescope's own grading does."""
    found = find_student_files(source, assignment.spec.student_files, assignment.id, assignment.other_assignments)
    if found.ambiguous:
        raise UnusableSubmission(f"{source}: files to submit are in several folders ({found.listing()}): "
                                 "put them in one")
    if found.present:
        if found.stub_copies:
            warnings.append(found.passed_over())
        return _from_directory(assignment, found.folder, warnings)
    uploads = [*found.archives, *found.notebooks]
    if not uploads:
        return {}
    if len(uploads) == 1:
        upload = uploads[0]
        warnings.append(f"graded the files in {upload.relative_to(source).as_posix()}, the folder's only "
                        f"{'notebook' if upload.suffix.lower() == '.ipynb' else 'zip archive'}")
        return _read_upload(assignment, upload, warnings)
    return _from_one_of(assignment, source, uploads, warnings)


def _read_upload(assignment: Assignment, upload: Path, warnings: list[str]) -> dict[str, bytes]:
    if upload.suffix.lower() == ".ipynb":
        return _from_notebook(assignment, upload, warnings)
    return _from_zip(assignment, upload, warnings)


def _from_one_of(assignment: Assignment, source: Path, uploads: list[Path], warnings: list[str]) -> dict[str, bytes]:
    """Of several uploads in a folder, the one that holds student files (a zip of the code beside a
    notebook of written answers); refused where several do, or where none does and one is unusable."""
    listing = ", ".join(path.relative_to(source).as_posix() for path in uploads)
    holding, refused = [], []
    for upload in uploads:
        notes: list[str] = []
        try:
            files = _read_upload(assignment, upload, notes)
        except UnusableSubmission as exc:
            refused.append(exc)
            continue
        if files:
            holding.append((upload, files, notes))
    if len(holding) == 1:
        upload, files, notes = holding[0]
        warnings.append(f"graded the files in {upload.relative_to(source).as_posix()}, the only one of the "
                        f"folder's uploads ({listing}) that holds any of the files to submit")
        warnings.extend(notes)
        return files
    if holding:
        which = ", ".join(upload.relative_to(source).as_posix() for upload, _, _ in holding)
        raise UnusableSubmission(f"{source} holds none of the files to submit but several archives or notebooks "
                                 f"that do ({which}): which one is the submission?")
    if refused:
        raise UnusableSubmission(f"{source}: none of its uploads ({listing}) holds a file to submit that can be "
                                 f"read; {'; '.join(str(exc) for exc in refused)}")
    return {}


def _read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Reads at most `limit` bytes, refusing a larger file and one that became a link or a special
    file since it was looked at (no following links, no blocking on a pipe)."""
    flags = os.O_RDONLY
    for optional in ("O_NOFOLLOW", "O_NONBLOCK", "O_BINARY"):
        flags |= getattr(os, optional, 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise UnusableSubmission(f"{path} cannot be read ({exc.strerror or exc})") from exc
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise UnusableSubmission(f"{path} is not a regular file")
        if status.st_size > limit:
            raise UnusableSubmission(f"{path} is larger than {_mib(limit)}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnusableSubmission(f"{path} is larger than {_mib(limit)}")
    return data


def _worked_copy(folder: Path, name: str) -> Optional[str]:
    """Where `name` in `folder` is the stub as handed out and exactly one numbered copy of it
    (`layers (1).py`) holds work: that copy. Files are read as the reader reads them (regular files,
    bounded); one it refuses counts as work, for the reader to judge where it is taken."""
    def untouched(entry: str) -> bool:
        try:
            return is_untouched_stub(_read_regular_file(folder / entry).decode("utf-8", "replace"))
        except UnusableSubmission:
            return False

    if not untouched(name):
        return None
    worked = [other for other in _case_variants(folder, name) if not untouched(other)]
    return worked[0] if len(worked) == 1 else None


def _case_variants(folder: Path, name: str) -> list[str]:
    """The entries of `folder` that stand for `name` (grader.files.stands_for: but for letter case, or
    numbered as a second download, `layers (1).py`)."""
    try:
        return sorted(p.name for p in folder.iterdir() if stands_for(p.name, name))
    except OSError:
        return []


# --- notebooks ------------------------------------------------------------------------------------

def _from_notebook(assignment: Assignment, source: Path, warnings: list[str]) -> dict[str, bytes]:
    """The student files a notebook's cells hold (grader.engine.notebook); none of its code runs here."""
    from grader.engine.notebook import NotebookError, student_files_from_notebook

    data = _read_regular_file(source, MAX_TOTAL_BYTES)
    stubs = {name: (assignment.directory / name).read_text(encoding="utf-8") for name in assignment.spec.student_files}
    try:
        found = student_files_from_notebook(data.decode("utf-8", "replace"), stubs)
    except NotebookError as exc:
        raise UnusableSubmission(f"{source}: {exc}") from None
    warnings.extend(found.warnings)
    files = {}
    for name, text in found.files.items():
        encoded = text.encode("utf-8")
        if len(encoded) > MAX_FILE_BYTES:
            raise UnusableSubmission(f"{source}: {name} as the notebook holds it is larger than {_mib(MAX_FILE_BYTES)}")
        if _is_empty(encoded):
            warnings.append(f"{name} is empty in the notebook: graded as missing")
        else:
            files[name] = encoded
    return files


# --- zip archives ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]   # the name split on / and \, without empty and "." components
    is_dir: bool

    @property
    def name(self) -> str:
        return self.info.filename


def _from_zip(assignment: Assignment, source: Path, warnings: list[str]) -> dict[str, bytes]:
    """Student files are taken from the archive's root when it holds any, else from its single top
    folder that holds them; every entry is checked before any is read."""
    size = source.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise UnusableSubmission(f"{source} is larger than {_mib(MAX_ARCHIVE_BYTES)}")
    declared = _declared_entry_count(source)
    if declared is not None and declared > MAX_ENTRIES:
        raise UnusableSubmission(f"{source} holds {declared:,} entries, more than {MAX_ENTRIES:,}")
    try:
        with zipfile.ZipFile(source) as archive:
            readable = {name.casefold() for name in (*assignment.spec.student_files, "MANIFEST.json")}
            entries = _checked_entries(source, archive.infolist(),
                                       lambda base: base.casefold() in readable
                                       or _numbered_copy_of(base, assignment.spec.student_files) is not None)
            taken, ignored, passed_over = _select(assignment, source, archive, entries)
            warnings.extend(passed_over)
            files = {}
            for name, entry in taken.items():
                data = _read_entry(source, archive, entry)
                if _is_empty(data):
                    warnings.append(f"{entry.name} is empty: graded as missing")
                else:
                    files[name] = data
            warnings.extend(_manifest_disagreements(source, archive, entries, taken, files))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise UnusableSubmission(f"{source} is not a readable zip archive ({exc})") from exc
    warnings.extend(f"ignored {name}: {reason}" for name, reason in ignored[:MAX_LISTED_WARNINGS])
    if len(ignored) > MAX_LISTED_WARNINGS:
        warnings.append(f"ignored {len(ignored) - MAX_LISTED_WARNINGS:,} more entries of the archive "
                        f"that are not files to submit")
    return files


def _manifest_disagreements(source: Path, archive: zipfile.ZipFile, entries: list[_Entry],
                            taken: dict[str, _Entry], files: dict[str, bytes]) -> list[str]:
    """Where the MANIFEST.json beside the student files (written with the zip by `grade.sh`) records
    another checksum for a file than the file now has: the zip was edited after it was made. The
    files are graded as they are; the student and the instructor are told."""
    folders = {entry.parts[:-1] for entry in taken.values()}
    manifests = [e for e in entries if not e.is_dir and e.parts[-1] == "MANIFEST.json" and e.parts[:-1] in folders]
    if len(manifests) != 1 or manifests[0].info.file_size > 256 * 1024:
        return []
    try:
        recorded = json.loads(_read_entry(source, archive, manifests[0]))
    except (ValueError, UnicodeDecodeError, UnusableSubmission):
        return ["MANIFEST.json is not readable JSON: the files' checksums could not be compared"]
    checksums = recorded.get("files") if isinstance(recorded, dict) else None
    if not isinstance(checksums, dict):
        return []
    changed = sorted(name for name, data in files.items()
                     if name in checksums and checksums[name] != hashlib.sha256(data).hexdigest())
    if not changed:
        return []
    return [f"{', '.join(changed)} {'differs' if len(changed) == 1 else 'differ'} from the checksum MANIFEST.json "
            "recorded when the zip was made (changed afterwards?); graded as the zip holds "
            f"{'it' if len(changed) == 1 else 'them'} now"]


def _declared_entry_count(source: Path) -> int | None:
    """The entry count the archive's end record declares, read before the central directory is
    parsed (which costs memory and time per entry)."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:
        return None
    try:
        with open(source, "rb") as handle:
            record = end_record(handle)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    try:
        return int(record[zipfile._ECD_ENTRIES_TOTAL]) if record else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _checked_entries(source: Path, infos: list[zipfile.ZipInfo], readable: Callable[[str], bool]) -> list[_Entry]:
    """All entries, with the names, kinds and sizes checked of those that may be read: the entries
    whose name is `readable` (a student file's, or one standing for it, or the manifest's). The others are never
    opened (nor extracted), so what they hold costs nothing and refuses nothing: a zipped virtual
    environment's links, a dataset, a checkpoint of zeros."""
    if len(infos) > MAX_ENTRIES:
        raise UnusableSubmission(f"{source}: entry {infos[MAX_ENTRIES].filename!r} is entry "
                                 f"number {MAX_ENTRIES + 1:,}: an archive may hold at most {MAX_ENTRIES:,}")
    entries, total = [], 0
    for info in infos:
        where = f"{source}: entry {info.filename!r}"
        normal = info.filename.replace("\\", "/")
        parts = tuple(p for p in normal.split("/") if p not in ("", "."))
        kind = stat.S_IFMT(info.external_attr >> 16)
        if not parts or not readable(parts[-1]):
            entries.append(_Entry(info, parts, info.is_dir() or kind == stat.S_IFDIR or not parts))
            continue
        if normal.startswith("/") or _DRIVE.match(normal):
            raise UnusableSubmission(f"{where} has an absolute path")
        if ".." in parts:
            raise UnusableSubmission(f"{where} points outside the archive (a '..' component)")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
            raise UnusableSubmission(f"{where} is {what}: only regular files and folders are accepted")
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnusableSubmission(f"{where} expands {info.compress_size:,} bytes into {info.file_size:,} "
                                     f"(more than {MAX_RATIO}:1)")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise UnusableSubmission(f"{where} brings the archive's uncompressed size over "
                                     f"{_mib(MAX_TOTAL_BYTES)}")
        entries.append(_Entry(info, parts, info.is_dir() or kind == stat.S_IFDIR or not parts))
    return entries


def _select(assignment: Assignment, source: Path, archive: zipfile.ZipFile, entries: list[_Entry]
            ) -> tuple[dict[str, _Entry], list[tuple[str, str]], list[str]]:
    """The entry taken for each student file found, (name, reason) for each entry ignored, and a
    line naming the folders passed over because they hold untouched stubs (none where none is)."""
    wanted = {n.casefold(): n for n in assignment.spec.student_files}
    files = [e for e in entries if not e.is_dir and not _archiver_junk(e)]
    layer, stub_copies = _student_layer(assignment, source, archive, files, wanted)
    place = f"the folder {'/'.join(layer)}/" if layer else "the archive's root"
    copies = ", ".join("/".join(folder) + "/" if folder else "the archive's root" for folder in stub_copies)
    passed_over = [f"graded the files in {place}: {copies} {'holds' if len(stub_copies) == 1 else 'hold'} the "
                   "stubs as handed out"] if stub_copies else []

    taken: dict[str, _Entry] = {}
    renamed: list[str] = []   # made where letter case is ignored (macOS, Windows): taken under the right name
    by_key: dict[str, _Entry] = {}
    numbered: dict[str, list[_Entry]] = {}   # `layers (1).py`: a second download, taken where it is the only one
    ignored: list[tuple[str, str]] = []
    listing = ", ".join(assignment.spec.student_files)
    for entry in files:
        in_layer = entry.parts[:-1] == layer
        base = entry.parts[-1]
        key = base.casefold()
        copy_of = None if key in wanted else _numbered_copy_of(base, assignment.spec.student_files)
        if in_layer and copy_of:
            numbered.setdefault(copy_of, []).append(entry)
        elif in_layer and key in wanted:
            if key in by_key:
                why = "" if entry.name == by_key[key].name else " (names differing only in case count as one)"
                raise UnusableSubmission(f"{source}: entry {entry.name!r} and entry {by_key[key].name!r} "
                                         f"are both {wanted[key]}{why}")
            by_key[key] = entry
            taken[wanted[key]] = entry
            if base != wanted[key]:
                renamed.append(f"graded {entry.name} as {wanted[key]}, the name the file must have")
        elif in_layer and base in _SILENT_EXTRAS:
            continue
        elif (key in wanted or copy_of) and len(entry.parts) - 1 > SEARCH_DEPTH:
            ignored.append((entry.name, f"deeper than {SEARCH_DEPTH} folders, where the files to submit are not "
                                        "looked for: zip the folder that holds them"))
        elif key in wanted or copy_of:
            ignored.append((entry.name, f"the files to submit are taken from {place}"))
        else:
            ignored.append((entry.name, f"not one of the files to submit ({listing})"))
    for name, copies in numbered.items():
        names = ", ".join(sorted(copy.name for copy in copies))
        if name in taken:
            # The file itself as handed out beside one copy that holds work: the copy is the work.
            worked = [copy for copy in copies if not _untouched_entry(source, archive, copy)]
            if len(worked) == 1 and _untouched_entry(source, archive, taken[name]):
                renamed.append(f"graded {worked[0].name} as {name}: {taken[name].name} holds the stub as handed out")
                ignored.append((taken[name].name, f"the stub as handed out; {worked[0].name} is graded in its place"))
                taken[name] = worked[0]
                copies = [copy for copy in copies if copy is not worked[0]]
            graded = f"{taken[name].name} itself" if taken[name].parts[-1].casefold() in wanted else taken[name].name
            ignored.extend((copy.name, f"a numbered copy of {name}: {graded} is graded") for copy in copies)
        elif len(copies) == 1:
            taken[name] = copies[0]
            renamed.append(f"graded {copies[0].name} as {name}, the name the file must have")
        else:
            renamed.append(f"{name} not found: {names} are there; which one is {name}?")
    return taken, ignored, passed_over + renamed


def _untouched_entry(source: Path, archive: zipfile.ZipFile, entry: _Entry) -> bool:
    try:
        return is_untouched_stub(_read_entry(source, archive, entry).decode("utf-8", "replace"))
    except UnusableSubmission:
        return False   # refused, with its reason, if it is the one taken


def _numbered_copy_of(base: str, student_files: tuple[str, ...] | list[str]) -> Optional[str]:
    """The student file that an entry named `base` is a numbered copy of (`layers (1).py`), if any."""
    return next((name for name in student_files
                 if stands_for(base, name) and base.casefold() != name.casefold()), None)


def _student_layer(assignment: Assignment, source: Path, archive: zipfile.ZipFile, files: list[_Entry],
                   wanted: dict[str, str]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The folder of the archive the student files are taken from, chosen as a folder's is
    (grader.files.choose_holder: work before untouched stubs; the root; the shallowest folder named
    after the assignment; the only shallowest folder holding the most), and the folders passed over
    because they hold untouched stubs. Hidden folders (.git) are not searched, nor deeper than a
    folder is."""
    holders: dict[tuple[str, ...], dict[str, _Entry]] = {}
    for entry in files:
        folder, key = entry.parts[:-1], entry.parts[-1].casefold()
        copy_of = None if key in wanted else _numbered_copy_of(entry.parts[-1], list(wanted.values()))
        if (key in wanted or copy_of) and len(folder) <= SEARCH_DEPTH and not any(p.startswith(".") for p in folder):
            holders.setdefault(folder, {}).setdefault(copy_of.casefold() if copy_of else key, entry)
            if not copy_of:
                holders[folder][key] = entry
    if not holders:
        return (), ()

    def has_work(folder: tuple[str, ...]) -> bool:
        texts = []
        for entry in holders[folder].values():
            try:
                texts.append(_read_entry(source, archive, entry).decode("utf-8", "replace"))
            except UnusableSubmission:
                return True   # refused, with its reason, if it is the one taken
        return holds_work(texts)

    choice = choose_holder({folder: len(held) for folder, held in holders.items()}, assignment.id, has_work,
                           assignment.other_assignments)
    if choice.rivals:
        listing = ", ".join("/".join(folder) + "/" for folder in (choice.folder, *choice.rivals))
        raise UnusableSubmission(f"{source}: files to submit are in several folders ({listing}): put them in one")
    return choice.folder, choice.stub_copies


def _archiver_junk(entry: _Entry) -> bool:
    first, last = entry.parts[0], entry.parts[-1]
    return first in _ARCHIVER_JUNK or last in _ARCHIVER_JUNK or last.startswith("._")


def _read_entry(source: Path, archive: zipfile.ZipFile, entry: _Entry) -> bytes:
    """The entry's bytes, never more than its declared size or MAX_FILE_BYTES, whatever its
    headers say."""
    info, where = entry.info, f"{source}: entry {entry.name!r}"
    if info.file_size > MAX_FILE_BYTES:
        raise UnusableSubmission(f"{where} is larger than {_mib(MAX_FILE_BYTES)}")
    if info.compress_type not in _READABLE_METHODS:
        raise UnusableSubmission(f"{where} uses compression method {info.compress_type}: only "
                                 f"{' and '.join(_READABLE_METHODS.values())} are accepted")
    limit = min(info.file_size, MAX_FILE_BYTES)
    chunks, size = [], 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UnusableSubmission(f"{where} holds more than its declared {info.file_size:,} bytes"
                                             if size <= MAX_FILE_BYTES else
                                             f"{where} is larger than {_mib(MAX_FILE_BYTES)}")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, OSError,
            ValueError) as exc:
        raise UnusableSubmission(f"{where} cannot be read ({exc})") from exc
    return b"".join(chunks)


def _mib(size: int) -> str:
    return f"{size // 2**20} MiB"
