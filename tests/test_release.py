"""`grader release`: the student bundle holds the assignment and the grader, never the reference,
a hidden check or the catalogue of mistakes; its CI files run what it holds; and, end to end, it
sets itself up and grades outside the project (GRADER_SKIP_BUNDLE_SETUP=1 skips that part)."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grader.assignment import ConfigError, load_assignment
from grader.delivery.release import MANIFEST, build_bundle
from grader.delivery.release_templates import JUNIT_FILE
from support import A1, ASSIGNMENTS, PROJECT_ROOT, assignment

FENCE = "# BEGIN YOUR CODE"
MIN_LINE = 40  # a line of the reference this long is distinctive enough to search for as text


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    built = {}
    for assignment_id in ASSIGNMENTS:
        out = tmp_path_factory.mktemp("release") / assignment_id
        build_bundle(assignment(assignment_id), out)
        built[assignment_id] = out
    return built


# --- scanning a bundle for what only the instructor has ---------------------------------------------

def functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method of a module, nested ones too, with its qualified name."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):  # functions sit in statements
                visit(child, prefix)

    visit(tree, "")
    return found


def statements(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """The body without its docstring."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def normalised_body(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return ast.unparse(ast.Module(body=statements(function), type_ignores=[]))


@functools.lru_cache(maxsize=None)
def reference_solution(assignment_id: str) -> tuple[dict[str, str], set[str]]:
    """What of `reference/<A>/*.py` is the solution: the normalised body of every function but the
    instructor's own ones (no fence, the same body in the stubs), and its distinctive lines (at least
    MIN_LINE characters, in no public file of the assignment: stubs, provided files, checks)."""
    bodies, lines = {}, set()
    public_lines = {line.strip() for path in (PROJECT_ROOT / "assignments" / assignment_id).rglob("*.py")
                    for line in path.read_text().splitlines()}
    for path in sorted((PROJECT_ROOT / "reference" / assignment_id).glob("*.py")):
        source = path.read_text()
        stub = PROJECT_ROOT / "assignments" / assignment_id / path.name
        stub_source = stub.read_text() if stub.is_file() else ""
        stub_bodies = {name: normalised_body(f) for name, f in functions(ast.parse(stub_source))}
        source_lines = source.splitlines()
        for name, function in functions(ast.parse(source)):
            body = normalised_body(function)
            fenced = FENCE in ast.get_source_segment(source, function)
            if not body.strip() or (not fenced and stub_bodies.get(name) == body):
                continue
            bodies[f"{path.name}:{name}"] = body
            first = statements(function)[0].lineno
            for line in source_lines[first - 1:function.end_lineno]:
                if len(line.strip()) >= MIN_LINE and line.strip() not in public_lines:
                    lines.add(line.strip())
    return bodies, lines


@functools.lru_cache(maxsize=None)
def hidden_check_names(assignment_id: str) -> set[str]:
    """The file names and test function names of the hidden checks."""
    names = set()
    for path in sorted((PROJECT_ROOT / "reference" / assignment_id / "hidden_checks").glob("*.py")):
        if path.name not in ("__init__.py", "conftest.py"):
            names.add(path.name)
        names |= {name.rsplit(".", 1)[-1] for name, _ in functions(ast.parse(path.read_text()))
                  if name.rsplit(".", 1)[-1].startswith("test")}
    return names


def mistake_descriptions(assignment_id: str) -> set[str]:
    path = PROJECT_ROOT / "reference" / assignment_id / "mistakes.yaml"
    if not path.is_file():
        return set()
    return {m["student"] for m in yaml.safe_load(path.read_text())["mistakes"] if m.get("student")}


@functools.lru_cache(maxsize=None)
def module_bodies(source: str) -> tuple[tuple[str, str], ...]:
    """(normalised body, qualified name) of every function of a module; kept, as bundles share files."""
    return tuple((normalised_body(function), name) for name, function in functions(ast.parse(source)))


def bundle_files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*") if p.is_file() and ".venv" not in p.relative_to(bundle).parts)


def scan(bundle: Path, assignment_id: str) -> list[str]:
    """Everything of the instructor's that `bundle` holds, one finding a line."""
    bodies, lines = reference_solution(assignment_id)
    hidden = hidden_check_names(assignment_id)
    described = mistake_descriptions(assignment_id)
    assert bodies and lines, "the scan needs something to look for"
    findings = []
    bundle_bodies: dict[str, str] = {}
    for path in bundle_files(bundle):
        relative = path.relative_to(bundle).as_posix()
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if path.suffix == ".py":
            for body, name in module_bodies(text):
                bundle_bodies.setdefault(body, f"{relative}:{name}")
        findings += [f"{relative}: line of the reference {line!r}" for line in lines if line in text]
        findings += [f"{relative}: hidden check {name!r}" for name in hidden if name in text or name in relative]
        findings += [f"{relative}: mistake described as {d!r}" for d in described if d in text]
        if path.name == "mistakes.yaml" or "reference" in path.relative_to(bundle).parts[:1]:
            findings.append(f"{relative}: a file of the instructor's")
    findings += [f"{bundle_bodies[body]}: body of the reference's {name}" for name, body in bodies.items()
                 if body in bundle_bodies]
    return findings


@pytest.mark.parametrize("assignment_id", [a for a in ASSIGNMENTS if (PROJECT_ROOT / "reference" / a).is_dir()])
def test_bundle_holds_nothing_of_the_reference(bundles, assignment_id):
    assert scan(bundles[assignment_id], assignment_id) == []


def test_the_scan_finds_a_reference_file_and_a_hidden_check(bundles, tmp_path):
    leaky = tmp_path / "leaky"
    shutil.copytree(bundles[A1], leaky)
    shutil.copyfile(PROJECT_ROOT / "reference" / A1 / "layers.py", leaky / "grader" / "layers_backup.py")
    findings = scan(leaky, A1)
    bodies, lines = reference_solution(A1)
    assert sum("body of the reference's layers.py:" in f for f in findings) == \
        sum(name.startswith("layers.py:") for name in bodies)
    assert any("line of the reference" in f for f in findings)

    leaky = tmp_path / "leaky_hidden"
    shutil.copytree(bundles[A1], leaky)
    hidden = sorted((PROJECT_ROOT / "reference" / A1 / "hidden_checks").glob("test_*.py"))[0]
    shutil.copyfile(hidden, leaky / "assignments" / A1 / "checks" / "test_extra.py")
    shutil.copyfile(PROJECT_ROOT / "reference" / A1 / "mistakes.yaml", leaky / "mistakes.yaml")
    findings = scan(leaky, A1)
    assert any("hidden check 'test_" in f for f in findings)
    assert any(f.startswith("mistakes.yaml: a file of the instructor's") for f in findings)
    assert any("mistake described as" in f for f in findings)


# --- what the bundle holds ---------------------------------------------------------------------------

def test_bundle_holds_the_assignment_and_the_grader(bundles):
    bundle = bundles[A1]
    shipped = assignment(A1)
    expected = {p.relative_to(shipped.directory).as_posix() for p in shipped.directory.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    got = {p.relative_to(bundle / "assignments" / A1).as_posix() for p in (bundle / "assignments" / A1).rglob("*")
           if p.is_file()}
    assert got == expected
    assert "fixtures/mistake_sketches.json" in got
    for name in expected:
        assert (bundle / "assignments" / A1 / name).read_bytes() == (shipped.directory / name).read_bytes()
    assert sorted(p.name for p in (bundle / "assignments").iterdir()) == [A1]

    engine = {p.relative_to(PROJECT_ROOT / "grader").as_posix() for p in (PROJECT_ROOT / "grader").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert {p.relative_to(bundle / "grader").as_posix() for p in (bundle / "grader").rglob("*")} >= engine
    assert not list(bundle.rglob("__pycache__")) and not list(bundle.rglob("*.pyc"))
    for absent in ("reference", "tests", "benchmarks", "docs", ".ci"):
        assert not (bundle / absent).exists()
    assert (bundle / "pyproject.toml").read_bytes() == (PROJECT_ROOT / "pyproject.toml").read_bytes()
    assert (bundle / "grade.sh").read_bytes() == (PROJECT_ROOT / "grade.sh").read_bytes()
    assert os.access(bundle / "grade.sh", os.X_OK)
    assert (bundle / "LICENSE").exists() == (PROJECT_ROOT / "LICENSE").exists()
    ignored = (bundle / ".gitignore").read_text().split()
    assert {".venv/", "*_submission.zip", JUNIT_FILE} <= set(ignored)


def test_build_bundle_returns_what_it_wrote(bundles, tmp_path):
    out = tmp_path / "bundle"
    files = build_bundle(assignment(A1), out)
    assert files == sorted(files)
    assert set(files) == {p for p in out.rglob("*") if p.is_file()}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["assignment"] == A1
    assert sorted(manifest["files"]) == sorted(p.relative_to(out).as_posix() for p in files)


def test_readme_tells_students_what_to_do(bundles):
    spec = assignment(A1).spec
    readme = (bundles[A1] / "README.md").read_text()
    assert readme.startswith(f"# {spec.title}\n")
    for name in spec.student_files:
        assert f"`{name}`" in readme
    for task in spec.tasks:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{task.id}` |"))
        assert task.title in row and f"| {task.points:g} |" in row
        if task.training:
            assert f"{task.training.time_limit_s:g} s" in row
            for source, accuracy in task.training.target.items():
                assert f"{accuracy * 100:g} %" in row
    assert f"**{sum(t.points for t in spec.tasks):g}**" in readme
    for command in ("./grade.sh", f"./grade.sh {A1} --only '", "--data synthetic", "--skip-training"):
        assert command in readme
    assert f"{A1}_submission.zip" in readme
    assert "hidden checks" in readme and "fresh random inputs" in readme
    # Every option it names is one `grader grade` has.
    from grader.cli import build_parser

    grade = build_parser()._subparsers._group_actions[0].choices["grade"]
    options = {option for action in grade._actions for option in action.option_strings}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", readme))
    assert named - {"--ci"} <= options, named - options


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_readme_says_that_each_stub_names_the_tasks_it_lists(bundles, assignment_id):
    bundle = bundles[assignment_id]
    readme = (bundle / "README.md").read_text()
    assert "`Graded by task: <id>`" in readme and "`NotImplementedError` it raises" in readme
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    named = set()
    for name in assignment(assignment_id).spec.student_files:
        for ids in re.findall(r"Graded by tasks?: (.+)", (bundle / "assignments" / assignment_id / name).read_text()):
            named |= {task_id.strip() for task_id in ids.split(",")}
    assert named and named <= listed, named - listed


# --- CI files ------------------------------------------------------------------------------------------

def test_github_workflow_runs_the_grader_and_keeps_its_report(bundles):
    bundle = bundles[A1]
    workflow = yaml.safe_load((bundle / ".github" / "workflows" / "grade.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "pull_request" in triggers
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert any(s.get("uses", "").startswith("actions/checkout@") for s in steps)
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    grading = next(s for s in steps if "./grade.sh --ci" in s.get("run", ""))
    assert grading["id"] == "grade"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == JUNIT_FILE
    assert steps.index(grading) < steps.index(upload)
    assert_runnable(bundle, [s["run"] for s in steps if "run" in s])


def test_gitlab_ci_runs_the_grader_and_keeps_its_report(bundles):
    bundle = bundles[A1]
    config = yaml.safe_load((bundle / ".gitlab-ci.yml").read_text())
    job = config["grade"]
    assert job["image"] == "python:3.11"
    assert "./grade.sh --ci" in job["script"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == JUNIT_FILE
    assert_runnable(bundle, job.get("before_script", []) + job["script"])


def assert_runnable(bundle: Path, commands: list[str]) -> None:
    """Every script a CI file runs from the repository exists there and is executable."""
    for command in commands:
        for script in re.findall(r"(?:^|\s)\./(\S+)", command):
            path = bundle / script
            assert path.is_file() and path.stat().st_mode & stat.S_IXUSR, f"{command}: {path}"


# --- refusals ---------------------------------------------------------------------------------------------

def test_refuses_to_write_inside_the_project():
    for out in (PROJECT_ROOT, PROJECT_ROOT / "release_out", PROJECT_ROOT / "assignments" / "x", PROJECT_ROOT.parent):
        existed = out.exists()
        with pytest.raises(ConfigError, match="outside the project"):
            build_bundle(assignment(A1), out)
        assert out.exists() == existed


def test_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_bundle(assignment(A1), out)
    assert [p.name for p in out.iterdir()] == ["todo.txt"]
    clone = tmp_path / "clone"  # a fresh clone of an empty repository
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    build_bundle(assignment(A1), clone)
    assert (clone / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n" and (clone / "grade.sh").is_file()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a folder"):
        build_bundle(assignment(A1), tmp_path / "file")


def test_builds_again_over_a_previous_bundle(tmp_path):
    out = tmp_path / "bundle"
    build_bundle(assignment(A1), out)
    (out / ".venv").mkdir()
    (out / ".venv" / "kept").write_text("")
    (out / "assignments" / A1 / "solver.py").write_text("changed")  # a provided file: the bundle's own
    (out / "old" / "dir").mkdir(parents=True)
    (out / "old" / "dir" / "gone.txt").write_text("")
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "files": manifest["files"] + ["old/dir/gone.txt"]}))

    build_bundle(assignment(A1), out)
    assert (out / ".venv" / "kept").exists()
    assert not (out / "old").exists()
    assert (out / "assignments" / A1 / "solver.py").read_bytes() == \
        (PROJECT_ROOT / "assignments" / A1 / "solver.py").read_bytes()


def test_refuses_a_solved_stub_or_a_hidden_check_in_the_assignment(project, tmp_path):
    shutil.copyfile(project / "reference" / A1 / "optim.py", project / "assignments" / A1 / "optim.py")
    with pytest.raises(ConfigError, match="optim.py holds code between"):
        build_bundle(load_assignment(A1, project), tmp_path / "a")
    shutil.copyfile(PROJECT_ROOT / "assignments" / A1 / "optim.py", project / "assignments" / A1 / "optim.py")

    hidden = sorted((project / "reference" / A1 / "hidden_checks").glob("test_*.py"))[0]
    shutil.copyfile(hidden, project / "assignments" / A1 / "checks" / "test_more.py")
    with pytest.raises(ConfigError, match="is a copy of"):
        build_bundle(load_assignment(A1, project), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --- end to end: the bundle sets itself up and grades, on its own -------------------------------------

def python_with_torch(env: dict[str, str]) -> str | None:
    """A Python outside any virtual environment that imports torch, for the bundle's venv to see it."""
    candidates = [env.get("PYTHON"), shutil.which("python3", path=env.get("PATH")),
                  getattr(sys, "_base_executable", None), "/usr/bin/python3"]
    probe = "import sys, torch; assert sys.prefix == sys.base_prefix; print(sys.executable)"
    for candidate in filter(None, candidates):
        found = subprocess.run([candidate, "-c", probe], env=env, capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.strip()
    return None


def bundle_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRADER_ROOT", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHON")}
    project = str(PROJECT_ROOT)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not (p == project or p.startswith(project + os.sep)))
    env["NO_COLOR"] = "1"
    python = python_with_torch({**env, **({"PYTHON": os.environ["PYTHON"]} if "PYTHON" in os.environ else {})})
    # Without one, grade.sh installs torch itself (about a minute from a local index).
    env["PYTHON"] = python or getattr(sys, "_base_executable", None) or "python3"
    return env


def grade_bundle(bundle: Path, env: dict[str, str], results: Path) -> tuple[float, float, dict]:
    command = ["./grade.sh", A1, "--skip-training", "--no-zip", "--json", str(results)]
    run = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    scores = re.findall(r"^Score: ([\d.]+) / ([\d.]+)", run.stdout, re.MULTILINE)
    assert len(scores) == 1, run.stdout[-4000:]
    return float(scores[0][0]), float(scores[0][1]), json.loads(results.read_text())


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GRADER_SKIP_BUNDLE_SETUP", "") not in ("", "0"),
                    reason="GRADER_SKIP_BUNDLE_SETUP is set: the bundle's first-run set-up is skipped")
def test_bundle_sets_itself_up_and_grades_outside_the_project(tmp_path_factory):
    base = tmp_path_factory.mktemp("student")
    bundle = base / "repo"
    build_bundle(assignment(A1), bundle)
    assert PROJECT_ROOT not in bundle.resolve().parents
    env = bundle_environment()
    spec = assignment(A1).spec
    check_points = sum(t.points for t in spec.tasks if t.training is None)
    check_tasks = {t.id for t in spec.tasks if t.training is None}

    score, max_score, results = grade_bundle(bundle, env, base / "stubs.json")
    assert (score, max_score) == (0, check_points)
    assert results["extra_data"]["mode"] == "public"
    by_task = {t["extra_data"]["task"]: t for t in results["tests"]}
    assert set(by_task) == check_tasks
    for task_id, test in by_task.items():
        assert (test["extra_data"]["outcome"], test["score"]) == ("not_implemented", 0), task_id
    assert not list(bundle.glob("*.zip"))

    where = subprocess.run([".venv/bin/python", "-c", "import grader; print(grader.__file__)"], cwd=bundle,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve() == (bundle / "grader" / "__init__.py").resolve()

    for name in spec.student_files:
        shutil.copyfile(PROJECT_ROOT / "reference" / A1 / name, bundle / "assignments" / A1 / name)
    score, max_score, results = grade_bundle(bundle, env, base / "reference.json")
    assert score == max_score == check_points
    assert {t["extra_data"]["outcome"] for t in results["tests"]} == {"passed"}


def test_a_student_file_changed_since_the_last_release_is_not_replaced_silently(tmp_path):
    out = tmp_path / "bundle"
    build_bundle(assignment(A1), out)
    build_bundle(assignment(A1), out)  # released again over itself: nothing of anyone's to keep
    layers = out / "assignments" / A1 / "layers.py"
    stub = layers.read_bytes()
    layers.write_bytes(stub + b"\n# the student's work\n")
    with pytest.raises(ConfigError) as refused:
        build_bundle(assignment(A1), out)
    assert f"assignments/{A1}/layers.py changed since the bundle was written" in str(refused.value)
    assert "--overwrite-student-files" in str(refused.value)
    assert layers.read_bytes().endswith(b"# the student's work\n")  # nothing was written
    build_bundle(assignment(A1), out, overwrite_student_files=True)
    assert layers.read_bytes() == stub
