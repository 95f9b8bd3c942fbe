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


STUB = '''def f(x):
    # BEGIN YOUR CODE
    raise NotImplementedError("f in layers.py")
    # END YOUR CODE
'''
WORKED = STUB.replace('raise NotImplementedError("f in layers.py")', "return x + 1")


def stubs(folder: Path, text: str = STUB, names=NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(text)
    return folder


def test_a_clone_of_the_course_holding_untouched_stubs_is_passed_over_for_the_students_work(tmp_path):
    # The student zipped their work folder together with the course repository they had cloned: the
    # folder named after the assignment holds the stubs as handed out.
    stubs(tmp_path / "course-main" / "assignments" / A)
    stubs(tmp_path / "my work", WORKED, ("layers.py",))
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path / "my work" and not found.ambiguous
    assert found.stub_copies == (tmp_path / "course-main" / "assignments" / A,)
    assert found.passed_over() == (f"graded the files in the folder my work/: course-main/assignments/{A}/ holds "
                                   "the stubs as handed out")


def test_untouched_stubs_at_the_top_give_way_to_work_below_and_are_taken_where_none_is(tmp_path):
    stubs(tmp_path)
    assert find_student_files(tmp_path, NAMES, A).folder == tmp_path   # nothing else: the stubs are graded
    stubs(tmp_path / "hw", WORKED)
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path / "hw" and found.passed_over().endswith("the top folder holds the stubs as handed out")


def test_a_file_without_fences_counts_as_work_and_untouched_copies_alike_are_no_rivals(tmp_path):
    stubs(tmp_path / "one")
    stubs(tmp_path / "two")
    stubs(tmp_path / "three", "def f(x):\n    return x + 1\n")   # the student removed the fences
    found = find_student_files(tmp_path, NAMES, A)
    assert found.folder == tmp_path / "three" and not found.ambiguous
    assert found.stub_copies == (tmp_path / "one", tmp_path / "two")


def test_a_folder_named_after_another_assignment_is_not_this_ones(tmp_path):
    # A clone of the whole course: the student has worked on a2 only; grading a1 takes a1's stubs.
    stubs(tmp_path / "assignments" / A)
    stubs(tmp_path / "assignments" / "a2_cnn_torch", WORKED)
    found = find_student_files(tmp_path, NAMES, A, other_assignments=("a2_cnn_torch", "a3_resnet_pytorch"))
    assert found.folder == tmp_path / "assignments" / A and found.stub_copies == ()
    # ...unless no other folder holds any: then it is graded (and its messages say why it fails).
    only = stubs(tmp_path / "only" / "a2_cnn_torch", WORKED)
    assert find_student_files(tmp_path / "only", NAMES, A, other_assignments=("a2_cnn_torch",)).folder == only
