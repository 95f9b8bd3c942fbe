"""Taking a submission in from a zip or a folder: what is taken, what is ignored with a warning, what
makes the submission unusable, and that nothing is ever written outside the scratch directory."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest

from grader.engine import submission
from grader.engine.submission import MAX_ENTRIES, UnusableSubmission, prepare_submission
from support import a1

STUDENT_FILES = ("layers.py", "optim.py", "models.py")
MIB = 1024 * 1024


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Scratch directories are made under tmp_path/scratch and the working directory is an empty
    tmp_path/cwd; after the test neither the working directory nor tmp_path's parent has changed."""
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(submission, "make_scratch_dir", lambda: Path(tempfile.mkdtemp(dir=scratch_root)))
    before = sorted(os.listdir(tmp_path.parent))
    yield tmp_path
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp_path.parent)) == before


def stub(name: str) -> bytes:
    """A student file a student has started: the stub with its first `raise NotImplementedError`
    replaced (a folder of untouched stubs is passed over where another holds work)."""
    return untouched(name).replace(b"raise NotImplementedError", b"_ = NotImplementedError", 1)


def untouched(name: str) -> bytes:
    return (a1().directory / name).read_bytes()


def build(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name or ZipInfo, bytes) pairs, written in order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which some tests want
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def student_entries(prefix: str = "", skip: tuple[str, ...] = ()):
    return [(prefix + name, stub(name)) for name in STUDENT_FILES if name not in skip]


def prepared(source: Path):
    prepared = prepare_submission(a1(), source)
    taken = {p.name: p.read_bytes() for p in prepared.package.iterdir()}
    return prepared, taken


def assert_rejected(sandbox: Path, source: Path, *fragments: str) -> str:
    before = sorted(p.name for p in sandbox.iterdir())
    with pytest.raises(UnusableSubmission) as caught:
        prepare_submission(a1(), source)
    message = str(caught.value)
    assert str(source) in message
    for fragment in fragments:
        assert fragment in message, message
    assert sorted(p.name for p in sandbox.iterdir()) == before
    assert not any((sandbox / "scratch").iterdir())
    return message


# --- taken ----------------------------------------------------------------------------------------

def test_files_at_the_archive_root_are_taken(sandbox):
    source = build(sandbox / "s.zip", student_entries())
    result, taken = prepared(source)
    try:
        assert result.missing == () and result.warnings == ()
        for name in STUDENT_FILES:
            assert taken[name] == stub(name)
        assert set(a1().spec.provided_files) <= set(taken)
        assert result.package.parent == result.scratch and result.scratch.parent == sandbox / "scratch"
    finally:
        result.cleanup()
    assert not result.scratch.exists()


def test_files_under_one_top_folder_are_taken_with_the_submission_zip_extras_silently(sandbox):
    entries = student_entries("a1_fc_numpy/") + [("a1_fc_numpy/", b""), ("a1_fc_numpy/MANIFEST.json", b"{}"),
                                                 ("a1_fc_numpy/results.json", b"{}"),
                                                 ("__MACOSX/a1_fc_numpy/._layers.py", b"\0")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and result.warnings == ()
    assert taken["layers.py"] == stub("layers.py") and "MANIFEST.json" not in taken


def test_other_entries_are_ignored_with_a_warning_each(sandbox):
    entries = student_entries() + [("notes.txt", b"hello"), ("other/layers.py", b"x = 1\n"),
                                   ("deep/a/b/optim.py", b"y = 2\n")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert taken["layers.py"] == stub("layers.py") and "notes.txt" not in taken
    assert result.warnings == (
        "ignored notes.txt: not one of the files to submit (layers.py, optim.py, models.py)",
        "ignored other/layers.py: the files to submit are taken from the archive's root",
        "ignored deep/a/b/optim.py: the files to submit are taken from the archive's root",
    )


def test_a_zipped_file_numbered_by_a_browser_is_taken_where_it_is_the_only_copy(sandbox):
    # Downloaded twice, then zipped: `layers (1).py` is layers.py, as it is in a folder.
    entries = student_entries("hw/", skip=("layers.py",)) + [("hw/layers (1).py", stub("layers.py")),
                                                             ("hw/optim (1).py", b"x = 1\n")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py") and taken["optim.py"] == stub("optim.py")
    assert result.warnings == ("graded hw/layers (1).py as layers.py, the name the file must have",
                               "ignored hw/optim (1).py: a numbered copy of optim.py: hw/optim.py itself is graded")
    # Two numbered copies and no file itself: which one is meant is not guessed.
    entries = student_entries(skip=("layers.py",)) + [("layers (1).py", stub("layers.py")), ("layers (2).py", b"x\n")]
    result, taken = prepared(build(sandbox / "t.zip", entries))
    result.cleanup()
    assert result.missing == ("layers.py",) and "layers.py" not in taken
    assert result.warnings == ("layers.py not found: layers (1).py, layers (2).py are there; which one is layers.py?",)


def test_a_numbered_copy_holding_work_beside_the_stub_as_handed_out_is_the_one_graded(sandbox):
    # The stub kept beside the work downloaded again: grading layers.py would grade nothing.
    work = (a1().reference_directory / "layers.py").read_bytes()
    entries = student_entries(skip=("layers.py",)) + [("layers.py", untouched("layers.py")), ("layers (1).py", work)]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert taken["layers.py"] == work, "the stub was graded"
    assert "graded layers (1).py as layers.py: layers.py holds the stub as handed out" in result.warnings
    folder = _folder(sandbox)
    (folder / "layers.py").write_bytes(untouched("layers.py"))
    (folder / "layers (1).py").write_bytes(work)
    result, taken = prepared(folder)
    result.cleanup()
    assert taken["layers.py"] == work, "the stub was graded"
    assert result.warnings == ("graded layers (1).py as layers.py: layers.py holds the stub as handed out",)
    # Work in both: the file itself is graded.
    (folder / "layers.py").write_bytes(work.replace(b"out = ", b"out  = ", 1))
    result, taken = prepared(folder)
    result.cleanup()
    assert taken["layers.py"] != work and result.warnings == ()


def test_thousands_of_ignored_entries_give_ten_warnings_and_a_count(sandbox):
    entries = student_entries("hw/") + [(f"hw/data/{i}.txt", b"x") for i in range(3000)]
    result, _ = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert len(result.warnings) == 11
    assert result.warnings[0] == ("ignored hw/data/0.txt: not one of the files to submit "
                                  "(layers.py, optim.py, models.py)")
    assert result.warnings[-1] == "ignored 2,990 more entries of the archive that are not files to submit"


def test_a_name_differing_in_case_is_taken_under_the_right_name_saying_so(sandbox):
    # Zipped on macOS or Windows, where the student's own imports found Layers.py as layers.py.
    entries = student_entries(skip=("layers.py",)) + [("Layers.py", stub("layers.py"))]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py") and "Layers.py" not in taken
    assert result.warnings == ("graded Layers.py as layers.py, the name the file must have",)


def test_a_file_that_is_not_utf8_is_taken_as_it_is(sandbox):
    garbage = b"def affine_forward(x):\n    return '\xff\xfe\x00'\n"
    entries = student_entries(skip=("layers.py",)) + [("layers.py", garbage)]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert taken["layers.py"] == garbage and result.missing == ()


@pytest.mark.parametrize("kind", ["zip", "folder"])
@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_an_empty_student_file_counts_as_missing_in_a_zip_as_in_a_folder(sandbox, kind, content):
    if kind == "zip":
        source = build(sandbox / "s.zip", student_entries(skip=("optim.py",)) + [("optim.py", content)])
    else:
        source = sandbox / "folder"
        source.mkdir()
        for name, data in student_entries(skip=("optim.py",)) + [("optim.py", content)]:
            (source / name).write_bytes(data)
    result, taken = prepared(source)
    result.cleanup()
    assert result.missing == ("optim.py",) and "optim.py" not in taken
    assert result.warnings == ("optim.py is empty: graded as missing",)


def test_an_archive_of_empty_student_files_only_is_unusable(sandbox):
    source = build(sandbox / "s.zip", [(name, b"") for name in STUDENT_FILES])
    assert_rejected(sandbox, source, "none of the files to submit", "layers.py is empty")


# --- rejected: names, kinds -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["/abs/layers.py", "/layers.py", "../layers.py", "a/../../layers.py",
                                  "a1/../../layers.py", "..\\layers.py", "a\\..\\..\\layers.py",
                                  "\\abs\\layers.py", "C:/layers.py", "C:\\Windows\\layers.py",
                                  "../MANIFEST.json"])
def test_a_name_reaching_outside_the_archive_is_rejected(sandbox, name):
    source = build(sandbox / "s.zip", student_entries(skip=("layers.py",)) + [(name, b"x = 1\n")])
    with zipfile.ZipFile(source) as archive:
        assert name in archive.namelist()  # stored as given
    assert_rejected(sandbox, source, repr(name))
    assert not Path("/abs").exists()


@pytest.mark.parametrize("name", ["layers.py", "old/Models.py", "MANIFEST.json"])
@pytest.mark.parametrize("mode,what", [(0o120777, "symbolic link"), (0o010644, "special file"),
                                       (0o060644, "special file")])
def test_an_entry_that_is_neither_a_file_nor_a_folder_is_rejected(sandbox, name, mode, what):
    link = zipfile.ZipInfo(name)
    link.external_attr = mode << 16
    source = build(sandbox / "s.zip", student_entries(skip=(name,)) + [(link, b"/etc/passwd")])
    assert_rejected(sandbox, source, repr(name), what)


@pytest.mark.parametrize("names", [("layers.py", "layers.py"), ("layers.py", "Layers.py"),
                                   ("hw/layers.py", "hw/LAYERS.PY"), ("hw/layers.py", "hw\\layers.py"),
                                   ("hw/optim.py", "hw/./optim.py")])
def test_two_candidates_for_one_student_file_are_rejected(sandbox, names):
    prefix = names[0].rpartition("/")[0] + "/" if "/" in names[0] else ""
    entries = student_entries(prefix) + [(names[1], b"x = 1\n")]
    message = assert_rejected(sandbox, build(sandbox / "s.zip", entries), repr(names[1]), repr(names[0]))
    assert "both" in message


def test_student_files_in_several_top_folders_are_rejected(sandbox):
    entries = [("a/layers.py", stub("layers.py")), ("b/optim.py", stub("optim.py"))]
    assert_rejected(sandbox, build(sandbox / "s.zip", entries), "several folders", "a/, b/")


@pytest.mark.parametrize("prefix", ["hw2/assignment/", "hw1/hw1/", "assignments/a1_fc_numpy/",
                                    "course-repo-main/assignments/a1_fc_numpy/"])
def test_a_zip_is_searched_for_the_files_as_a_folder_is(sandbox, prefix):
    # A folder zipped after it was extracted, a repository downloaded as a zip: the files sit deeper
    # than one folder, and the zip is graded as the same files in a folder would be.
    entries = student_entries(prefix) + [(".git/objects/layers.py", b"x = 1\n")]
    if prefix.startswith("course-repo"):
        entries += [("course-repo-main/assignments/a2_cnn_torch/layers.py", b"x = 2\n")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")


def test_a_zip_takes_the_folder_holding_most_of_the_files_over_a_stray_copy(sandbox):
    entries = student_entries("hw1/") + [("old/layers.py", b"x = 1\n")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")
    assert "ignored old/layers.py: the files to submit are taken from the folder hw1/" in result.warnings


def test_files_deeper_than_the_search_say_so(sandbox):
    entries = student_entries("Users/me/cs231n/assignments/a1_fc_numpy/")
    assert_rejected(sandbox, build(sandbox / "s.zip", entries), "none of the files to submit",
                    "deeper than 3 folders, where the files to submit are not looked for")


def test_the_same_name_at_a_depth_that_is_not_taken_is_only_ignored(sandbox):
    entries = student_entries() + [("old/layers.py", b"x = 1\n"), ("old/Layers.py", b"x = 2\n")]
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert taken["layers.py"] == stub("layers.py") and len(result.warnings) == 2


# --- rejected: sizes ---------------------------------------------------------------------------------

def test_a_student_file_over_the_cap_is_rejected_and_another_file_that_size_is_ignored(sandbox):
    big = os.urandom(3 * MIB)  # incompressible: the size cap, not the ratio cap, applies
    source = build(sandbox / "s.zip", student_entries(skip=("models.py",)) + [("models.py", big)])
    assert_rejected(sandbox, source, "'models.py'", "larger than 2 MiB")
    other = build(sandbox / "t.zip", student_entries() + [("report.pdf", big)])
    result, taken = prepared(other)
    result.cleanup()
    assert "report.pdf" not in taken and result.warnings[0].startswith("ignored report.pdf")


def test_a_zip_bomb_is_rejected_without_being_expanded(sandbox):
    source = sandbox / "bomb.zip"
    with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in student_entries():
            archive.writestr(name, data)
        with archive.open("old/layers.py", "w", force_zip64=True) as member:
            zeros = bytes(MIB)
            for _ in range(100):
                member.write(zeros)
    assert source.stat().st_size < MIB
    assert_rejected(sandbox, source, "'old/layers.py'", "200:1")


def test_an_archive_expanding_over_the_total_cap_is_rejected(sandbox):
    chunk = os.urandom(2 * MIB)
    entries = student_entries() + [(f"v{i}/layers.py", chunk) for i in range(33)]  # 66 MiB, none taken
    source = build(sandbox / "s.zip", entries, compression=zipfile.ZIP_STORED)
    assert_rejected(sandbox, source, "'v31/layers.py'", "over 64 MiB")


def test_entries_that_are_never_read_refuse_nothing_whatever_they_hold(sandbox):
    # A zipped virtual environment's links, a dataset, a checkpoint of zeros, names no extraction
    # would accept: no entry but the student files and the manifest is opened or extracted.
    link = zipfile.ZipInfo("venv/bin/python")
    link.external_attr = 0o120777 << 16
    entries = student_entries("hw1/") + [(link, b"/usr/bin/python3"), ("../notes.txt", b"x"), ("/abs/data.csv", b"1"),
                                          ("data/features.npy", os.urandom(3 * MIB))]
    source = sandbox / "s.zip"
    build(source, entries)
    with zipfile.ZipFile(source, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("checkpoints/dW.npy", "w", force_zip64=True) as member:
            for _ in range(70):
                member.write(bytes(MIB))   # 70 MiB of zeros: over the ratio and the total caps
    result, taken = prepared(source)
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")


def test_an_archive_with_too_many_entries_is_rejected(sandbox, monkeypatch):
    entries = student_entries() + [(f"junk/{i}.txt", b"") for i in range(20_000)]
    source = build(sandbox / "s.zip", entries, compression=zipfile.ZIP_STORED)
    assert_rejected(sandbox, source, "20,003 entries", "more than 10,000")
    # Where the end record does not tell, the parsed directory does, naming the first entry over.
    monkeypatch.setattr(submission, "_declared_entry_count", lambda source: None)
    assert_rejected(sandbox, source, f"'junk/{MAX_ENTRIES - 3}.txt'", "at most 10,000")


def test_an_archive_file_over_its_cap_is_rejected_before_it_is_opened(sandbox, monkeypatch):
    source = build(sandbox / "s.zip", student_entries())
    monkeypatch.setattr(submission, "MAX_ARCHIVE_BYTES", 1000)
    assert_rejected(sandbox, source, "larger than")


def _patch_sizes(path: Path, name: bytes, size: int) -> None:
    """Sets the uncompressed size of entry `name` in its local header and in the central directory."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    while data[local + 30:local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_holding_more_than_its_header_declares_is_rejected(sandbox, compression):
    content = b"x = 1\n" * (MIB // 6) + os.urandom(MIB // 2)
    source = build(sandbox / "s.zip", student_entries(skip=("layers.py",)) + [("layers.py", content)],
                   compression=compression)
    _patch_sizes(source, b"layers.py", 1000)
    with zipfile.ZipFile(source) as archive:
        assert archive.getinfo("layers.py").file_size == 1000
    assert_rejected(sandbox, source, "'layers.py'")


def test_reading_stops_at_the_cap_whatever_the_reader_returns(sandbox, monkeypatch):
    source = build(sandbox / "s.zip", student_entries())
    real_open = zipfile.ZipFile.open

    def open_lying(self, info, *args, **kwargs):
        name = info.filename if isinstance(info, zipfile.ZipInfo) else info
        return io.BytesIO(bytes(3 * MIB)) if name == "layers.py" else real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_lying)
    assert_rejected(sandbox, source, "'layers.py'", "more than its declared")


def test_a_compression_method_without_bounded_expansion_is_rejected_for_a_student_file(sandbox):
    pytest.importorskip("bz2")
    source = build(sandbox / "s.zip", student_entries(), compression=zipfile.ZIP_BZIP2)
    assert_rejected(sandbox, source, "'layers.py'", "compression method 12")


def test_a_damaged_archive_is_rejected(sandbox):
    source = build(sandbox / "s.zip", student_entries(), compression=zipfile.ZIP_STORED)
    data = bytearray(source.read_bytes())
    start = data.index(b"def ")  # inside the first entry's bytes
    data[start:start + 4] = b"XXXX"
    source.write_bytes(bytes(data))
    assert_rejected(sandbox, source, "'layers.py'", "cannot be read")


# --- folders -----------------------------------------------------------------------------------------

def _folder(sandbox: Path, skip: tuple[str, ...] = ()) -> Path:
    folder = sandbox / "folder"
    folder.mkdir()
    for name, data in student_entries(skip=skip):
        (folder / name).write_bytes(data)
    return folder


def test_a_folder_gives_its_student_files_and_ignores_the_rest_silently(sandbox):
    folder = _folder(sandbox)
    (folder / "notes.txt").write_text("hello")
    (folder / "big.bin").write_bytes(bytes(3 * MIB))
    (folder / "data").mkdir()
    os.symlink("/etc/passwd", folder / "passwd")
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and result.warnings == ()
    assert taken["optim.py"] == stub("optim.py") and "notes.txt" not in taken and "passwd" not in taken


def test_a_symlinked_student_file_in_a_folder_is_rejected(sandbox):
    folder = _folder(sandbox, skip=("layers.py",))
    target = sandbox / "real_layers.py"
    target.write_bytes(stub("layers.py"))
    os.symlink(target, folder / "layers.py")
    message = assert_rejected(sandbox, folder, "layers.py", "symbolic link")
    assert "real_layers" not in message


def test_a_student_file_over_the_cap_in_a_folder_is_rejected(sandbox):
    folder = _folder(sandbox, skip=("models.py",))
    (folder / "models.py").write_bytes(b"#" * (3 * MIB))
    assert_rejected(sandbox, folder, "models.py", "larger than 2 MiB")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_named_like_a_student_file_is_rejected_without_blocking(sandbox):
    folder = _folder(sandbox, skip=("optim.py",))
    os.mkfifo(folder / "optim.py")
    assert_rejected(sandbox, folder, "optim.py", "not a regular file")


def test_a_folder_file_named_in_the_wrong_case_is_taken_under_the_right_name_saying_so(sandbox):
    folder = _folder(sandbox, skip=("optim.py",))
    (folder / "Optim.py").write_bytes(stub("optim.py"))
    if (folder / "optim.py").exists():
        pytest.skip("case-insensitive file system")
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["optim.py"] == stub("optim.py")
    assert result.warnings == ("graded Optim.py as optim.py, the name the file must have",)
    # Two such names: which one is meant is not guessed.
    (folder / "OPTIM.py").write_bytes(b"x = 1\n")
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == ("optim.py",)
    assert result.warnings == ("optim.py not found: OPTIM.py, Optim.py are there; which one is optim.py?",)


def test_a_file_numbered_by_a_browser_that_downloaded_it_again_is_taken_saying_so(sandbox):
    folder = _folder(sandbox, skip=("optim.py",))
    (folder / "optim (1).py").write_bytes(stub("optim.py"))
    (folder / "optimizer (1).py").write_bytes(b"x = 1\n")   # another name, numbered: not optim.py
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["optim.py"] == stub("optim.py")
    assert result.warnings == ("graded optim (1).py as optim.py, the name the file must have",)


def test_a_folder_holding_only_case_variants_of_the_names_is_graded_from_them(sandbox):
    folder = sandbox / "hw"
    folder.mkdir()
    for name in STUDENT_FILES:
        (folder / name.capitalize()).write_bytes(stub(name))
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["models.py"] == stub("models.py")


def test_a_folder_holding_the_files_one_folder_down_is_graded_from_there(sandbox):
    """As an extracted zip often is (`hw1/layers.py`): found as the Gradescope runner finds it."""
    nested = _folder(sandbox).rename(sandbox / "extracted")
    (sandbox / "folder").mkdir()
    nested.rename(sandbox / "folder" / "hw1")
    result, taken = prepared(sandbox / "folder")
    result.cleanup()
    assert result.missing == () and taken["optim.py"] == stub("optim.py")


def test_two_copies_of_the_files_in_a_folder_are_rejected(sandbox):
    source = sandbox / "two"
    for copy in ("one", "other"):
        (source / copy).mkdir(parents=True)
        for name, data in student_entries():
            (source / copy / name).write_bytes(data)
    assert_rejected(sandbox, source, "several folders", "one/, other/")


def test_the_submission_zip_holds_the_files_that_were_graded(tmp_path):
    """A clone graded from its assignments/<A>/ is zipped from there too."""
    from grader.delivery.submission_zip import ZipError, write_submission_zip

    shipped = a1()
    folder = tmp_path / "clone" / "assignments" / shipped.id
    folder.mkdir(parents=True)
    for name in shipped.spec.student_files:
        (folder / name).write_bytes(stub(name))
    info = write_submission_zip(shipped, tmp_path / "clone", tmp_path / "out.zip", None)
    assert sorted(info["files"]) == sorted(STUDENT_FILES)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.read("layers.py") == stub("layers.py")
    (folder / "models.py").unlink()
    with pytest.raises(ZipError, match=f"{folder / 'models.py'} is missing"):
        write_submission_zip(shipped, tmp_path / "clone", tmp_path / "out.zip", None)


def test_a_students_repository_is_graded_with_the_graders_own_checks(tmp_path):
    """Official grading in CI runs a trusted copy of the grader against a clone of the student's
    repository: only the student files count, whatever the clone's checks and workflow say."""
    from support import grade_checks

    shipped = a1()
    clone = tmp_path / "student-repo"
    folder = clone / "assignments" / shipped.id
    folder.mkdir(parents=True)
    for name in shipped.spec.student_files:  # the stubs, untouched
        (folder / name).write_text((shipped.directory / name).read_text())
    (folder / "checks").mkdir()
    (folder / "checks" / "test_layers.py").write_text("def test_everything():\n    pass\n")
    (folder / "assignment.yaml").write_text("id: a1_fc_numpy\ntasks: []\n")
    (clone / ".github" / "workflows").mkdir(parents=True)
    (clone / ".github" / "workflows" / "grade.yml").write_text("on: push\njobs: {}\n")
    result = grade_checks(shipped, clone, only="affine.*")
    assert result.score == 0 and result.max_score > 0
    (folder / "layers.py").write_text((shipped.reference_directory / "layers.py").read_text())
    assert grade_checks(shipped, clone, only="affine.*").score == result.max_score


@pytest.mark.parametrize("edited", [(), ("layers.py",), ("layers.py", "optim.py")], ids=["as_made", "one", "two"])
def test_a_file_changed_after_the_zip_was_made_is_reported(sandbox, edited):
    import hashlib
    import json

    recorded = {"files": {name: hashlib.sha256(stub(name)).hexdigest() for name in STUDENT_FILES}}
    entries = [(name, stub(name) + (b"\n# changed later\n" if name in edited else b"")) for name in STUDENT_FILES]
    result, taken = prepared(build(sandbox / "s.zip", entries + [("MANIFEST.json", json.dumps(recorded).encode())]))
    result.cleanup()
    told = [w for w in result.warnings if "MANIFEST.json" in w]
    if not edited:
        assert told == []
        return
    assert len(told) == 1 and told[0].startswith(", ".join(edited) + " differ"), told
    assert all(taken[name].endswith(b"# changed later\n") for name in edited)  # graded as it is


def test_a_folder_holding_only_the_students_zip_is_graded_from_it(sandbox):
    # A learning platform's download keeps each student's upload in a folder of its own.
    folder = sandbox / "Jane Doe_12346_assignsubmission_file_"
    folder.mkdir()
    build(folder / "hw1.zip", student_entries("hw1/"))
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")
    assert "graded the files in hw1.zip, the folder's only zip archive" in result.warnings


@pytest.mark.parametrize("where", ["", "homework/"])
def test_a_folder_holding_only_a_notebook_is_graded_from_it(sandbox, where):
    # At its top, or a folder below as its zips are (a platform's download of a zip extracted in place).
    import json

    cells = [{"cell_type": "code", "id": f"cell{index}", "metadata": {}, "execution_count": None, "outputs": [],
              "source": f"%%writefile {name}\n" + stub(name).decode()}
             for index, name in enumerate(("layers.py", "optim.py", "models.py"))]
    folder = sandbox / "dana"
    (folder / where).mkdir(parents=True)
    (folder / where / "a1.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                          "nbformat_minor": 5}))
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["optim.py"] == stub("optim.py")
    assert f"graded the files in {where}a1.ipynb, the folder's only notebook" in result.warnings


def test_a_folder_holding_several_uploads_and_no_files_is_refused_naming_them(sandbox):
    folder = sandbox / "eve"
    folder.mkdir()
    build(folder / "first.zip", student_entries())
    build(folder / "second.zip", student_entries())
    assert_rejected(sandbox, folder, "several archives or notebooks", "first.zip, second.zip")


def test_a_zip_beside_a_notebook_of_written_answers_is_graded_from_the_zip(sandbox):
    import json

    folder = sandbox / "Jane Doe_12346_assignsubmission_file_"
    folder.mkdir()
    build(folder / "a1_code.zip", student_entries("a1/"))
    cells = [{"cell_type": "markdown", "id": "q1", "metadata": {}, "source": "Inline question 1: ..."},
             {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None, "outputs": [],
              "source": "import matplotlib.pyplot as plt\nplt.plot([1, 2])"}]
    (folder / "a1_written.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                         "nbformat_minor": 5}))
    result, taken = prepared(folder)
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")
    assert ("graded the files in a1_code.zip, the only one of the folder's uploads (a1_code.zip, a1_written.ipynb) "
            "that holds any of the files to submit") in result.warnings


def test_a_zip_with_the_students_work_and_an_untouched_course_clone_is_graded_from_the_work(sandbox):
    clone = "course-main/assignments/a1_fc_numpy/"
    entries = [(clone + name, untouched(name)) for name in STUDENT_FILES] + student_entries("my work/")
    result, taken = prepared(build(sandbox / "s.zip", entries))
    result.cleanup()
    assert result.missing == () and taken["layers.py"] == stub("layers.py")
    assert f"graded the files in the folder my work/: {clone} holds the stubs as handed out" in result.warnings
    # Without work beside it, the clone's stubs are what the zip holds, and are graded.
    result, taken = prepared(build(sandbox / "t.zip", entries[:3]))
    result.cleanup()
    assert taken["layers.py"] == untouched("layers.py")


def test_a_folder_with_the_students_work_and_an_untouched_course_clone_is_graded_from_the_work(sandbox):
    folder = sandbox / "submission"
    for name in STUDENT_FILES:
        for where, data in (("course-main/assignments/a1_fc_numpy", untouched(name)), ("hw1", stub(name))):
            (folder / where).mkdir(parents=True, exist_ok=True)
            (folder / where / name).write_bytes(data)
    result, taken = prepared(folder)
    result.cleanup()
    assert taken["optim.py"] == stub("optim.py")
    assert ("graded the files in the folder hw1/: course-main/assignments/a1_fc_numpy/ holds the stubs as handed "
            "out") in result.warnings


# -- a file made for another assignment -----------------------------------------------------------

def test_a_layers_py_made_for_another_assignment_is_named_as_such(sandbox):
    # The tensor assignment's layers.py handed in for the NumPy one: every check would fail with
    # errors naming a missing function or torch, not the one cause.
    folder = _folder(sandbox, skip=("layers.py",))
    (folder / "layers.py").write_bytes((a1().directory.parent / "a2_cnn_torch" / "layers.py").read_bytes())
    result, _ = prepared(folder)
    result.cleanup()
    assert len(result.warnings) == 1, result.warnings
    assert result.warnings[0].startswith("layers.py looks like a2_cnn_torch's: it defines BatchNorm, Conv"), result.warnings
    assert "Was it made for a2_cnn_torch? It is graded as a1_fc_numpy" in result.warnings[0]


def test_a_layers_py_of_this_assignment_half_written_or_with_helpers_is_not_taken_for_another(sandbox):
    folder = _folder(sandbox, skip=("layers.py",))
    # Half the functions, a class of the student's own named like another assignment's, helpers.
    text = stub("layers.py").decode()
    kept = text[:text.index("def dropout_forward(")]
    (folder / "layers.py").write_text(kept + "\n\nclass Linear:\n    pass\n\n\ndef helper(x):\n    return x\n")
    result, _ = prepared(folder)
    result.cleanup()
    assert result.warnings == (), result.warnings
