"""Files on disk: written whole or not at all, and a submission's student files found in a folder."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

# How a folder is searched for the student files when its top holds none: how deep, how many
# entries at most, and which folders are passed over (archivers' and tools' own).
SEARCH_DEPTH = 3
SEARCH_ENTRIES = 5_000
_NOT_SEARCHED = {"__MACOSX", "__pycache__", ".git", "node_modules"}
# Zip archives are looked for this deep (a Gradescope upload of the grader's submission zip).
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


def find_student_files(folder: Path, student_files: Sequence[str], assignment_id: str) -> StudentFilesFound:
    """Where `folder` holds the student files: its top where it has any of them; else the shallowest
    folder below named after the assignment that holds any; else the shallowest folder holding the
    most of them (ambiguous, with rivals, where several do alike); else its top, with all missing
    and the zip archives it holds. Links are not followed, and hidden and archivers' folders not
    entered. Whether a file is usable (a regular file, not empty) is for the reader to say."""
    names = tuple(student_files)
    present = _present(folder, names)
    if present:
        return _found(folder, folder, present, names)
    holders: list[tuple[int, int, str, Path, tuple[str, ...]]] = []   # (depth, -held, name, folder, held)
    archives: list[Path] = []
    for path, depth in _walk(folder):
        if path.is_dir():
            held = _present(path, names)
            if held:
                holders.append((depth, -len(held), path.relative_to(folder).as_posix(), path, held))
        elif depth <= ARCHIVE_DEPTH and path.suffix.lower() == ".zip" and path.is_file():
            archives.append(path)
    if not holders:
        return StudentFilesFound(folder, folder, (), names, archives=tuple(sorted(archives)))
    holders.sort(key=lambda h: h[:3])
    named = [h for h in holders if h[3].name == assignment_id]
    if named:
        return _found(folder, named[0][3], named[0][4], names)
    choice = holders[0]
    rivals = tuple(h[3] for h in holders[1:] if h[:2] == choice[:2])
    return _found(folder, choice[3], choice[4], names, rivals)


def _found(searched: Path, folder: Path, present: tuple[str, ...], names: tuple[str, ...],
           rivals: tuple[Path, ...] = ()) -> StudentFilesFound:
    return StudentFilesFound(searched, folder, present, tuple(n for n in names if n not in present), rivals)


def _present(folder: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in names if os.path.lexists(folder / name))


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
