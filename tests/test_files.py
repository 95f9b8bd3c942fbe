"""grader.files: files written whole or not at all, and the student files found in a folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from grader.files import atomic_file, find_student_files, write_atomically

NAMES = ("layers.py", "optim.py", "models.py")
A = "a1_fc_numpy"


class WriterFailed(Exception):
    pass


def leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# --- writing ---------------------------------------------------------------------------------------

def test_a_new_file_is_written_where_none_was(tmp_path):
    write_atomically(tmp_path / "results.json", '{"score": 1}\n')
    assert (tmp_path / "results.json").read_text() == '{"score": 1}\n'
    write_atomically(tmp_path / "data.bin", b"\x00\x01")
    assert (tmp_path / "data.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path, "results.json") == ["data.bin"]


def test_a_writer_that_fails_leaves_the_previous_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("previous\n")
    with pytest.raises(WriterFailed):
        with atomic_file(path) as file:
            file.write(b"half of the new ")
            file.flush()
            raise WriterFailed
    assert path.read_text() == "previous\n"
    assert leftovers(tmp_path, "summary.md") == []


def test_a_writer_that_fails_on_a_new_path_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):   # Ctrl-C too
        with atomic_file(tmp_path / "archive.zip", durable=True) as file:
            file.write(b"PK")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_until_the_block_ends_the_destination_keeps_its_old_content(tmp_path):
    path = tmp_path / "gradebook.csv"
    path.write_text("old\n")
    with atomic_file(path, durable=True) as file:
        file.write(b"new\n")
        file.flush()
        assert path.read_text() == "old\n"
    assert path.read_text() == "new\n" and leftovers(tmp_path, path.name) == []


def test_permissions_are_those_asked_for(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomically(tmp_path / "shared.json", "{}")
        write_atomically(tmp_path / "cache.npy", b"", mode=0o600)
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "cache.npy").stat().st_mode) == 0o600


# --- finding the student files ---------------------------------------------------------------------

def files(folder: Path, names=NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"# {name}\n")
    return folder


def test_files_at_the_top_are_taken_there_even_when_a_folder_below_holds_more(tmp_path):
    files(tmp_path, ("layers.py",))
    files(tmp_path / "copy")
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path and found.where == ""
    assert found.present == ("layers.py",) and found.missing == ("optim.py", "models.py")


def test_files_in_one_nested_folder_are_found_there(tmp_path):
    files(tmp_path / "my homework" / "code")
    (tmp_path / "__MACOSX" / "x").mkdir(parents=True)
    files(tmp_path / "__MACOSX" / "x")
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path / "my homework" / "code" and found.where == "my homework/code"
    assert found.missing == () and not found.ambiguous


def test_the_folder_named_after_the_assignment_wins_over_a_shallower_copy(tmp_path):
    files(tmp_path / "assignments" / A)
    files(tmp_path / "assignments" / "a2_cnn_torch")
    files(tmp_path / "copy", ("layers.py",))
    assert find_student_files(tmp_path, NAMES, A).folder == tmp_path / "assignments" / A


def test_two_copies_alike_are_ambiguous(tmp_path):
    files(tmp_path / "one")
    files(tmp_path / "two")
    files(tmp_path / "three", ("layers.py",))   # holds fewer: no rival
    found = find_student_files(tmp_path, NAMES, A)
    assert found.ambiguous and found.listing() == "one/, two/"


def test_links_are_not_followed_and_a_folder_with_none_lists_its_archives(tmp_path):
    outside = files(tmp_path / "outside")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "linked").symlink_to(outside)
    (tmp_path / "sub" / "upload.zip").write_bytes(b"PK")
    found = find_student_files(tmp_path / "sub", NAMES, A)
    assert found.folder == tmp_path / "sub" and found.missing == NAMES
    assert found.archives == (tmp_path / "sub" / "upload.zip",)


def test_a_link_at_the_top_counts_as_there_so_that_its_reader_can_refuse_it(tmp_path):
    files(tmp_path / "copy")
    (tmp_path / "layers.py").symlink_to(tmp_path / "copy" / "layers.py")
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path and found.present == ("layers.py",)
