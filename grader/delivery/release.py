"""`grader release A --out DIR`: the student bundle, a self-contained folder a course hands to its
students (for example as a GitHub Classroom template repository).

The bundle holds `assignments/A/` as it is in the project (stubs, provided files, assignment.yaml,
public checks, fixtures), the grader (`grader/`, `pyproject.toml`, `grade.sh`), a README for
students generated from assignment.yaml, CI files that run `./grade.sh --ci` on every push
(GitHub Actions and GitLab CI), a `.gitignore`, the project's LICENSE where it has one, and
`.grader-release.json`, the list of files the release wrote. It never holds `reference/`, a hidden
check, the catalogue of mistakes (`mistakes.yaml`), the project's tests or benchmarks, or another
assignment.

`DIR` must be missing, empty (but for a `.git`: a fresh clone of the repository to fill), or a
bundle written before: then the files that release wrote there are replaced and those it no longer
writes are removed; everything else (`.git`, `.venv`, ...) is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath
from string import Template

from grader.assignment import Assignment, AssignmentSpec, ConfigError, TaskSpec
from grader.delivery import release_templates as templates
from grader.stub_text import fence_bodies, is_untouched_body
import grader

MANIFEST = ".grader-release.json"
_SKIPPED_DIRECTORIES = {"__pycache__", ".pytest_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_LICENSES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING")
_DATA_NAMES = {"cifar10": "CIFAR-10", "synthetic": "synthetic"}


def build_bundle(assignment: Assignment, out: Path, *, overwrite_student_files: bool = False) -> list[Path]:
    """Writes the student bundle of `assignment` into `out` and returns the files written, sorted.

    Refuses with ConfigError, before writing anything: an `out` inside the project or the grader's
    source (or holding them); an `out` that is a file, or a folder holding anything but `.git` that is
    not a previous bundle; a previous bundle whose student files changed since it was written (a
    student's code: replaced only with `overwrite_student_files`); a student file whose fences hold anything but the stub's
    `raise NotImplementedError`; any file that would be a copy of the reference's student files, of a
    hidden check or of the catalogue of mistakes. Prints nothing.
    """
    project = assignment.directory.resolve().parent.parent
    engine = Path(grader.__file__).resolve().parent
    out = Path(out).expanduser().resolve()
    for source in {project, engine.parent}:
        if out == source or source in out.parents or out in source.parents:
            raise ConfigError(f"release --out {out}: the bundle must be written outside the project ({source})")
    previous = _previous_bundle(out)

    files: dict[str, tuple[bytes, bool]] = {}  # bundle path -> (content, executable)
    prefix = PurePosixPath("assignments", assignment.id)
    for relative, path in _tree(assignment.directory):
        files[str(prefix / relative)] = (path.read_bytes(), False)
    for relative, path in _tree(engine):
        files[str(PurePosixPath("grader") / relative)] = (path.read_bytes(), False)
    for name, executable in (("pyproject.toml", False), ("grade.sh", True)):
        path = engine.parent / name
        if not path.is_file():
            raise ConfigError(f"release: {path} is missing; the bundle needs it next to the grader package")
        files[name] = (path.read_bytes(), executable)
    for name in _LICENSES:
        if (project / name).is_file():
            files[name] = ((project / name).read_bytes(), False)
    files["README.md"] = (student_readme(assignment.spec).encode(), False)
    files[".gitignore"] = (templates.GITIGNORE.encode(), False)
    files[".github/workflows/grade.yml"] = (github_workflow().encode(), False)
    files[".gitlab-ci.yml"] = (gitlab_ci().encode(), False)

    _refuse_leaks(assignment, files)
    student_paths = [str(prefix / name) for name in assignment.spec.student_files]
    if not overwrite_student_files:
        _refuse_to_replace_changed(out, {p: files[p][0] for p in student_paths if p in files})
    files[MANIFEST] = (_manifest(assignment, sorted(files), {p: files[p][0] for p in student_paths if p in files})
                       .encode(), False)

    _remove_stale(out, previous - set(files))
    written = []
    for relative, (data, executable) in sorted(files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_bytes(data)
        mode = path.stat().st_mode
        if executable:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        else:
            path.chmod(mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
        written.append(path)
    return written


def student_readme(spec: AssignmentSpec) -> str:
    """The bundle's README.md: what to implement, how to run the grader, how to hand in, and what
    official grading adds; everything specific taken from assignment.yaml."""
    check_tasks = [t for t in spec.tasks if t.training is None]
    training_tasks = [t for t in spec.tasks if t.training is not None]
    student_names = ", ".join(f"`{name}`" for name in spec.student_files)
    provided = [name for name in spec.provided_files if name != "__init__.py"]
    total = sum(t.points for t in spec.tasks)

    rows = ["| task | what | points |", "|---|---|---:|"]
    rows += [f"| `{t.id}` | {_cell(_title(t))} | {_number(t.points)} |" for t in check_tasks]
    if training_tasks:
        rows.append(f"| | training targets (below) | {_number(sum(t.points for t in training_tasks))} |")
    rows.append(f"| | **total** | **{_number(total)}** |")

    commands = [("./grade.sh", "grade your work and write the submission zip"),
                (f"./grade.sh {spec.id}", "grade this assignment"),
                (f"./grade.sh {spec.id} --only '{_only_example(spec)}'", "only the tasks whose id matches the pattern")]
    if training_tasks:
        commands += [(f"./grade.sh {spec.id} --skip-training", "only the tasks scored by checks: quick"),
                     (f"./grade.sh {spec.id} --data synthetic", "train on a small generated stand-in for CIFAR-10")]
    width = max(len(command) for command, _ in commands) + 2
    command_lines = "\n".join(f"{command:<{width}}# {what}" for command, what in commands)

    training_section = data_section = official_training = ""
    if training_tasks:
        training_section = Template(templates.TRAINING_SECTION).substitute(
            training_table=_training_table(training_tasks))
        gpu = any(t.training.device == "cuda" for t in training_tasks)
        data_section = Template(templates.DATA_SECTION).substitute(gpu_note=templates.GPU_NOTE if gpu else "")
        official_training = Template(templates.OFFICIAL_TRAINING).substitute(where=" on a GPU" if gpu else "")

    provided_text = ""
    if provided:
        provided_text = Template(templates.PROVIDED_FILES).substitute(
            provided_files=", ".join(f"`{name}`" for name in provided))
    return Template(templates.README).substitute(
        title=spec.title, assignment=spec.id,
        student_files="\n".join(f"- `{name}`" for name in spec.student_files),
        student_file_names=student_names, provided_files=provided_text, tasks_table="\n".join(rows),
        training_section=training_section, commands=command_lines, data_section=data_section,
        zip_name=f"{spec.id}_submission.zip", junit_file=templates.JUNIT_FILE,
        official_training=official_training)


def github_workflow() -> str:
    return Template(templates.GITHUB_WORKFLOW).substitute(junit_file=templates.JUNIT_FILE)


def gitlab_ci() -> str:
    return Template(templates.GITLAB_CI).substitute(junit_file=templates.JUNIT_FILE)


def _tree(root: Path) -> list[tuple[PurePosixPath, Path]]:
    """Every file under `root` (relative path, path), without caches; a symbolic link is refused,
    since it could bring in what it points to."""
    found = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in _SKIPPED_DIRECTORIES)
        for name in sorted(names + [d for d in subdirectories if (Path(directory) / d).is_symlink()]):
            path = Path(directory) / name
            if path.is_symlink():
                raise ConfigError(f"release: {path} is a symbolic link; the bundle takes plain files only")
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            found.append((PurePosixPath(path.relative_to(root).as_posix()), path))
    return found


def _previous_bundle(out: Path) -> set[str]:
    """The files a previous release wrote into `out` (none when it is missing or empty)."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise ConfigError(f"release --out {out}: exists and is not a folder")
    if all(entry.name == ".git" for entry in out.iterdir()):
        return set()
    manifest = out / MANIFEST
    try:
        listed = json.loads(manifest.read_text())["files"]
        if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
            raise ValueError
    except FileNotFoundError:
        raise ConfigError(f"release --out {out}: the folder is not empty and holds no earlier bundle "
                          f"({MANIFEST}); name an empty or new folder") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"release --out {out}: {manifest} is not the list of files of an earlier bundle") from None
    for name in listed:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] == ".git":
            raise ConfigError(f"release --out {out}: {manifest} lists {name!r}, which is not inside the bundle")
    return set(listed)


def _remove_stale(out: Path, stale: set[str]) -> None:
    for name in sorted(stale):
        path = out / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        parent = path.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _refuse_leaks(assignment: Assignment, files: dict[str, tuple[bytes, bool]]) -> None:
    """What students must not get: code between the fences of a student file, a copy of a reference
    file or of a hidden check, or the catalogue of mistakes."""
    prefix = f"assignments/{assignment.id}/"
    for name in assignment.spec.student_files:
        source = files[prefix + name][0].decode("utf-8", errors="replace")
        if not all(is_untouched_body(body) for body in fence_bodies(source)):
            raise ConfigError(f"release: {assignment.directory / name} holds code between `# BEGIN YOUR CODE` and "
                              "`# END YOUR CODE`; the bundle hands out stubs only (restore the "
                              "`raise NotImplementedError(...)` there)")
    secret: dict[bytes, Path] = {}
    secret_names: set[str] = {"mistakes.yaml"}
    reference = assignment.reference_directory
    if reference is not None:
        candidates = [reference / name for name in assignment.spec.student_files]
        candidates.append(reference / "mistakes.yaml")
        hidden = assignment.hidden_checks_directory
        if hidden is not None:
            for _, path in _tree(hidden):
                candidates.append(path)
                if path.name not in ("__init__.py", "conftest.py"):
                    secret_names.add(path.name)
        for path in candidates:
            if path.is_file() and path.read_bytes().strip():
                secret[path.read_bytes()] = path
    for name, (data, _) in files.items():
        if PurePosixPath(name).name in secret_names:
            raise ConfigError(f"release: the bundle would hold {name}, a file of the instructor's only")
        if data in secret:
            raise ConfigError(f"release: the bundle's {name} is a copy of {secret[data]}")


def _manifest(assignment: Assignment, names: list[str], student_files: dict[str, bytes]) -> str:
    return json.dumps({"assignment": assignment.id, "grader_version": grader.__version__,
                       "files": names + [MANIFEST],
                       # What each student file was when written: a later release can tell a student's
                       # work in it from its own stub.
                       "student_files": {name: hashlib.sha256(data).hexdigest()
                                         for name, data in sorted(student_files.items())}}, indent=1) + "\n"


def _refuse_to_replace_changed(out: Path, stubs: dict[str, bytes]) -> None:
    """ConfigError, before anything is written, where a student file in `out` is neither the stub
    about to be written nor what the previous release wrote there: someone's code."""
    try:
        recorded = json.loads((out / MANIFEST).read_text()).get("student_files", {})
    except (OSError, ValueError, AttributeError):
        recorded = {}
    changed = []
    for name, stub in stubs.items():
        path = out / name
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if data != stub and recorded.get(name) != hashlib.sha256(data).hexdigest():
            changed.append(name)
    if changed:
        raise ConfigError(f"release --out {out}: {', '.join(changed)} changed since the bundle was written there "
                          "(a student's code?); nothing was written. Move them away, or pass "
                          "--overwrite-student-files to replace them with the stubs")


def _title(task: TaskSpec) -> str:
    shown = {"hidden": " (score hidden)", "after_due_date": " (score shown after the due date)",
             "after_published": " (score shown once grades are published)"}
    return task.title + shown.get(task.visibility, "")


def _training_table(tasks: list[TaskSpec]) -> str:
    rows = ["| task | what | points | time limit | trains on | scored on | full points at | partial credit from |",
            "|---|---|---:|---:|---|---|---|---|"]
    for task in tasks:
        training = task.training
        assert training is not None
        images = f"{training.train_subset} training images" if training.train_subset else "the training set"
        scored = "those training images" if training.evaluate_on == "train" else "held-out images"
        where = "GPU (CUDA)" if training.device == "cuda" else "CPU"
        rows.append(f"| `{task.id}` | {_cell(_title(task))} | {_number(task.points)} | "
                    f"{_number(training.time_limit_s)} s | {images}, {where} | {scored} | "
                    f"{_accuracies(training.target)} | {_accuracies(training.partial_credit_from) or 'none'} |")
    return "\n".join(rows)


def _accuracies(by_source: dict[str, float]) -> str:
    ordered = [s for s in _DATA_NAMES if s in by_source]
    return ", ".join(f"{_number(round(by_source[s] * 100, 2))} % ({_DATA_NAMES[s]})" for s in ordered)


def _only_example(spec: AssignmentSpec) -> str:
    first = spec.tasks[0].id
    return first.split(".")[0] + ".*" if "." in first else first


def _number(value: float) -> str:
    return f"{value:g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
