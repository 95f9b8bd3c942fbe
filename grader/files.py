"""Files on disk: written whole or not at all, and a submission's student files found in a folder."""

from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Collection, Iterable, Iterator, Mapping, Sequence

from grader.stub_text import is_untouched_stub

# How a folder is searched for the student files when its top holds none: how deep, how many
# entries at most, and which folders are passed over (archivers' and tools' own).
SEARCH_DEPTH = 3
SEARCH_ENTRIES = 5_000
_NOT_SEARCHED = {"__MACOSX", "__pycache__", ".git", "node_modules"}
# Zip archives and notebooks are looked for this deep (a Gradescope upload of the grader's submission
# zip, a learning platform's download of each student's upload in a folder of its own).
ARCHIVE_DEPTH = 2


# --- writing ---------------------------------------------------------------------------------------

@contextmanager
def atomic_file(path: str | os.PathLike, *, durable: bool = False, mode: int = 0o666) -> Iterator[BinaryIO]:
    """An open binary file beside `path` that becomes `path` when the block ends without an
    exception. On any exception, Ctrl-C included, it is removed and `path` keeps what it held (or
    stays absent): a reader never sees a half-written file. `durable` puts the bytes on disk before
    the rename (a cache or a download that must survive a power cut whole); `mode` is the new
    file's permissions before the umask, as for os.open."""
    path = Path(path)
    temporary, descriptor = _create_beside(path, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: str | os.PathLike, data: bytes | str, *, durable: bool = False,
                     mode: int = 0o666) -> None:
    """`data` (text as UTF-8) as the whole content of `path`, or nothing changed (atomic_file)."""
    with atomic_file(path, durable=durable, mode=mode) as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)


def _create_beside(path: Path, mode: int) -> tuple[Path, int]:
    """A new hidden file in `path`'s folder, so that the rename stays on one file system; a name of
    its own, so that two writers of one path never write into each other's."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return temporary, os.open(temporary, flags, mode)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


# --- finding the student files ---------------------------------------------------------------------

# A student file larger than this is not read to tell whether it is an untouched stub (the intake
# refuses it anyway).
_STUB_READ_BYTES = 2 * 1024 * 1024

Folder = tuple[str, ...]   # a folder below the searched one, as its path's parts (() is the top)


@dataclass(frozen=True)
class HolderChoice:
    """Which of the folders holding student files they are taken from (`choose_holder`)."""

    folder: Folder
    rivals: tuple[Folder, ...] = ()        # as shallow, holding as many: which copy is meant?
    stub_copies: tuple[Folder, ...] = ()   # passed over: they hold the stubs as handed out


def choose_holder(holders: Mapping[Folder, int], assignment_id: str, has_work: Callable[[Folder], bool],
                  other_assignments: Collection[str] = ()) -> HolderChoice:
    """The folder, of those holding student files (each with how many it holds), that the files are
    taken from. A folder named after another assignment of the course (`other_assignments`: a clone
    of the course repository holds them all) is not one, unless no other holds any. Where some hold
    work and others only the stubs as handed out (`has_work`: a course repository cloned beside the
    folder the student worked in), only those with work are considered. Of those, the top where it
    holds any; else the shallowest folder named after the assignment; else the shallowest holding
    the most, with the rivals as shallow holding as many."""
    candidates = [folder for folder in holders if not (folder and folder[-1] in other_assignments)]
    candidates = candidates or list(holders)
    worked = [folder for folder in candidates if has_work(folder)]
    pool = worked or candidates
    stub_copies = tuple(sorted(folder for folder in candidates if folder not in pool))
    if () in pool:
        return HolderChoice((), stub_copies=stub_copies)
    ranked = sorted(pool, key=lambda folder: (len(folder), -holders[folder], folder))
    named = [folder for folder in ranked if folder[-1] == assignment_id]
    if named:
        return HolderChoice(named[0], stub_copies=stub_copies)
    choice = ranked[0]
    rivals = tuple(folder for folder in ranked[1:]
                   if len(folder) == len(choice) and holders[folder] == holders[choice])
    return HolderChoice(choice, rivals, stub_copies)


def holds_work(texts: Iterable[str]) -> bool:
    """Whether any of a folder's student files (their text) is more than an untouched stub."""
    return any(not is_untouched_stub(text) for text in texts)


@dataclass(frozen=True)
class StudentFilesFound:
    """Where a folder holds the student files: at its top, or in the one nested folder that holds
    them (a zip extracted into a folder of its own, a Gradescope upload, a clone of the course
    repository with the files in assignments/<A>/)."""

    searched: Path
    folder: Path                       # where the student files are taken from
    present: tuple[str, ...]           # the student files `folder` has an entry for (of any kind)
    missing: tuple[str, ...]
    rivals: tuple[Path, ...] = ()      # other folders as shallow holding as many: which copy is meant?
    archives: tuple[Path, ...] = ()    # zips found where no folder holds any student file
    notebooks: tuple[Path, ...] = ()   # notebooks (.ipynb) found where no folder holds any student file
    stub_copies: tuple[Path, ...] = () # folders passed over: they hold the stubs as handed out

    @property
    def where(self) -> str:
        """`folder` relative to the searched one, "" at its top."""
        return "" if self.folder == self.searched else self.folder.relative_to(self.searched).as_posix()

    @property
    def ambiguous(self) -> bool:
        return bool(self.rivals)

    def listing(self) -> str:
        """The folders that hold the files, for a message about an ambiguous submission."""
        return ", ".join(f"{p.relative_to(self.searched).as_posix()}/" for p in (self.folder, *self.rivals))

    def passed_over(self) -> str:
        """A line naming the folders of untouched stubs that were not graded; "" where there are none."""
        if not self.stub_copies:
            return ""
        listing = ", ".join(f"{p.relative_to(self.searched).as_posix()}/" if p != self.searched else "the top folder"
                            for p in self.stub_copies)
        place = f"the folder {self.where}/" if self.where else "the top folder"
        return (f"graded the files in {place}: {listing} {'holds' if len(self.stub_copies) == 1 else 'hold'} the stubs as handed out")


def find_student_files(folder: Path, student_files: Sequence[str], assignment_id: str,
                       other_assignments: Collection[str] = ()) -> StudentFilesFound:
    """Where `folder` holds the student files, chosen among the folders that hold any as
    `choose_holder` says (its top where it holds work, without searching further). Else its top,
    with all missing and the zip archives and notebooks it holds. Links are not followed, and hidden and
    archivers' folders not entered. Whether a file is usable (a regular file, not empty) is for the
    reader to say."""
    names = tuple(student_files)
    present = _present(folder, names)
    if present and _has_work(folder, present):
        return _found(folder, folder, present, names)
    held: dict[Folder, tuple[str, ...]] = {(): present} if present else {}
    uploads: dict[str, list[Path]] = {".zip": [], ".ipynb": []}
    for path, depth in _walk(folder):
        if path.is_dir():
            found_here = _present(path, names)
            if found_here:
                held[path.relative_to(folder).parts] = found_here
        elif depth <= ARCHIVE_DEPTH and path.suffix.lower() in uploads and path.is_file():
            uploads[path.suffix.lower()].append(path)
    if not held:
        return StudentFilesFound(folder, folder, (), names, archives=tuple(sorted(uploads[".zip"])),
                                 notebooks=tuple(sorted(uploads[".ipynb"])))
    choice = choose_holder({parts: len(files) for parts, files in held.items()}, assignment_id,
                           lambda parts: _has_work(folder.joinpath(*parts), held[parts]), other_assignments)
    return _found(folder, folder.joinpath(*choice.folder), held[choice.folder], names,
                  tuple(folder.joinpath(*parts) for parts in choice.rivals),
                  tuple(folder.joinpath(*parts) for parts in choice.stub_copies))


def _found(searched: Path, folder: Path, present: tuple[str, ...], names: tuple[str, ...],
           rivals: tuple[Path, ...] = (), stub_copies: tuple[Path, ...] = ()) -> StudentFilesFound:
    return StudentFilesFound(searched, folder, present, tuple(n for n in names if n not in present), rivals,
                             stub_copies=stub_copies)


_COPY_NUMBER = re.compile(r" ?\(\d+\)$")   # "layers (1)": a browser's or a file manager's second copy


def stands_for(entry: str, name: str) -> bool:
    """Whether a file named `entry` is the student file `name` under another spelling that the
    student did not choose: letter case (made on a file system that ignores it), or the number a
    browser adds to a file downloaded again (`layers (1).py`)."""
    if entry == name:
        return False
    stem, dot, suffix = entry.rpartition(".")
    name_stem, name_dot, name_suffix = name.rpartition(".")
    if not dot or not name_dot or suffix.casefold() != name_suffix.casefold():
        return entry.casefold() == name.casefold()
    return _COPY_NUMBER.sub("", stem).casefold() == name_stem.casefold()


def _present(folder: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """The student files `folder` has an entry for, by name or under a spelling that stands for it
    (`stands_for`: the reader takes it under the right name)."""
    present = tuple(name for name in names if os.path.lexists(folder / name))
    if len(present) == len(names):
        return present
    try:
        entries = os.listdir(folder)
    except OSError:
        return present
    return tuple(name for name in names if name in present or any(stands_for(entry, name) for entry in entries))


def _has_work(folder: Path, present: tuple[str, ...]) -> bool:
    """Whether the student files `folder` holds are more than untouched stubs; a file that cannot be
    read as one (a link, a special or huge file) counts as work, for the reader to judge."""
    texts = []
    for name in present:
        path = folder / name
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > _STUB_READ_BYTES:
                return True
            texts.append(path.read_bytes()[:_STUB_READ_BYTES].decode("utf-8", "replace"))
        except OSError:
            return True
    return holds_work(texts)


def _walk(folder: Path) -> Iterator[tuple[Path, int]]:
    """(path, depth) of the entries below `folder` down to SEARCH_DEPTH, breadth first, at most
    SEARCH_ENTRIES of them, without following links or entering hidden and archivers' folders."""
    level, seen = [folder], 0
    for depth in range(1, SEARCH_DEPTH + 1):
        following = []
        for directory in level:
            try:
                entries = sorted(directory.iterdir())
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name in _NOT_SEARCHED or entry.is_symlink():
                    continue
                seen += 1
                if seen > SEARCH_ENTRIES:
                    return
                yield entry, depth
                if entry.is_dir():
                    following.append(entry)
        level = following
