"""Training integrity: work the submission's modules do when imported is on the training clock, the entry
must hand over the provided Solver, the images scored are ones the worker first sees after training (the
overfit task's with one pixel nudged, official grading's synthetic test split from a secret seed), and
malformed scores cost their task only. Each attack is also run with its defence switched off, to show
that the test would catch the defence going missing."""

import base64
import json
import shutil
import tempfile
from pathlib import Path
import types
from types import SimpleNamespace

import numpy as np
import pytest

import grader.engine.training
from conftest import edit_file
from grader.assignment import load_assignment
from grader.boundary import protocol
from grader.cli import main
from grader.sandbox.errors import StudentException
from grader.sandbox.remote import WorkerSession
from grader.sandbox.worker_process import Limits
from grader.results import Outcome
from support import ASSIGNMENTS, A1, a1, assignment, grade_folder, make_submission, outcomes
from test_training_a1 import replace_entry

# A model that memorizes the images it is handed (nearest neighbour): robust to a nudged pixel, so only
# the check that the entry returns the provided Solver stops it.
NEAREST = """
class Nearest:
    params = {}

    def __init__(self, images, labels):
        self.images, self.labels = images.reshape(len(images), -1).astype(np.float64), labels

    def loss(self, X, y=None):
        X = X.reshape(len(X), -1).astype(np.float64)
        distances = (X * X).sum(1)[:, None] - 2 * X @ self.images.T + (self.images ** 2).sum(1)[None]
        scores = np.eye(10)[self.labels[distances.argmin(axis=1)]]
        return scores if y is None else (0.0, {})
"""
# A table of the exact arrays the entry was handed, inside the provided Solver.
EXACT_TABLE = """
class Table:
    params = {}

    def __init__(self, images, labels):
        self.table = {image.tobytes(): int(label) for image, label in zip(images, labels)}

    def loss(self, X, y=None):
        scores = np.zeros((len(X), 10))
        for row, image in enumerate(X):
            scores[row, self.table.get(image.tobytes(), 0)] = 1.0
        return scores if y is None else (0.0, {})
"""
# A Solver of the student's own, which trains nothing.
OWN_SOLVER = """
class Solver:
    def __init__(self, model):
        self.model = model

    def train(self, time_limit=None):
        pass
"""
FAKES = {
    "not_a_solver": NEAREST + """
class Memorized:
    model = Nearest(data_dict["X_train"], data_dict["y_train"])

    def train(self, time_limit=None):
        pass

return Memorized()
""",
    "a_subclass": NEAREST + """
class Quick(Solver):
    def train(self, time_limit=None):
        pass

return Quick(Nearest(data_dict["X_train"], data_dict["y_train"]), data_dict, verbose=False)
""",
    "a_class_named_solver": NEAREST + OWN_SOLVER + """
return Solver(Nearest(data_dict["X_train"], data_dict["y_train"]))
""",
    "the_provided_module_patched": NEAREST + OWN_SOLVER + """
from . import solver as provided

provided.Solver = Solver
return provided.Solver(Nearest(data_dict["X_train"], data_dict["y_train"]))
""",
}


def overfit(folder, **options):
    return grade_folder(a1(), folder, only="fc_net.overfit", data="synthetic", **options).tasks[0]


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
@pytest.mark.parametrize("fake", sorted(FAKES))
def test_an_overfit_solver_that_is_not_the_provided_one_scores_nothing(tmp_path, monkeypatch, fake, defended):
    if not defended:
        monkeypatch.setattr(WorkerSession, "is_pinned_class", lambda *args, **kwargs: protocol.PinCheck(True))
    folder = make_submission(tmp_path, a1(), "reference")
    replace_entry(a1(), folder, "create_overfit_solver_instance", FAKES[fake])
    task = overfit(folder)
    if not defended:  # the fake memorized the images: it would pass
        assert task.outcome is Outcome.PASSED, task.message
        return
    assert task.outcome is Outcome.FAILED and task.points == 0, task.message
    assert "not the provided Solver of solver.py" in task.message
    assert task.training.accuracy == 1.0  # measured as asked, and not scored


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_a_table_of_the_exact_training_arrays_inside_the_solver_scores_nothing(tmp_path, monkeypatch, defended):
    if not defended:  # scored on the very images the entry was handed
        monkeypatch.setattr(grader.engine.training, "nudged", lambda images, rng: images)
    folder = make_submission(tmp_path, a1(), "reference")
    replace_entry(a1(), folder, "create_overfit_solver_instance", EXACT_TABLE + """
return Solver(Table(data_dict["X_train"], data_dict["y_train"]), data_dict, verbose=False)
""")
    task = overfit(folder)
    if defended:
        assert task.outcome is Outcome.FAILED and task.points == 0 and task.training.accuracy < 0.5, task.message
        assert "one pixel of each nudged" in task.message
    else:
        assert task.outcome is Outcome.PASSED, task.message


# The provided file's import of the student's optim.py at its top, as it was before the provided files
# imported the student's modules only where they use them.
TOP_IMPORT = ("import numpy as np\n\n", "import numpy as np\n\nfrom . import optim\n\n")


@pytest.mark.parametrize("assignment_id, defended", [
    *((assignment_id, True) for assignment_id in ASSIGNMENTS),
    *((assignment_id, False) for assignment_id in ASSIGNMENTS if assignment_id != "a3_resnet_pytorch"),
], ids=lambda value: value if isinstance(value, str) else ("defended" if value else "undefended"))
def test_pinning_the_provided_trainer_runs_none_of_the_students_code(tmp_path, assignment_id, defended):
    """The worker pins the provided class before any of the submission's modules is imported: importing
    the provided module must not import one either (a student module run then could build the class)."""
    shipped = assignment(assignment_id)
    package = tmp_path / "submission"
    package.mkdir()
    for name in shipped.spec.provided_files:
        shutil.copyfile(shipped.directory / name, package / name)
    for name in shipped.spec.student_files:
        (package / name).write_text("raise RuntimeError('a student module ran')\n")
    module, name = grader.engine.training.provided_trainer(package)
    if not defended:  # a3's Trainer never imported a student module: a Solver's import at the top
        edit_file(package / "solver.py", *TOP_IMPORT) if assignment_id == A1 else \
            edit_file(package / "solver.py", "import torch\n\n", "import torch\n\nfrom . import optim\n\n")
    session = WorkerSession(package, Path(tempfile.mkdtemp(dir=tmp_path)), Limits(sandbox="process"))
    try:
        if defended:
            session.pin_class(module, name, 60)
        else:
            with pytest.raises(StudentException, match="a student module ran"):
                session.pin_class(module, name, 60)
    finally:
        session.close()


# A submission's optim.py that hooks class creation, to be run while the provided solver.py is imported:
# the Solver the provided module then defines (and the worker pins) is one that memorizes the training
# images, whatever model it is handed.
BUILD_CLASS_HOOK = """
import builtins as _builtins

_real_build_class = _builtins.__build_class__


def _build_class(func, name, *bases, **kwargs):
    cls = _real_build_class(func, name, *bases, **kwargs)
    if name != "Solver" or not func.__module__.endswith(".solver"):
        return cls
    _builtins.__build_class__ = _real_build_class

    class Solver:
        def __init__(self, model, data, **kwargs):
            images = data["X_train"].reshape(len(data["X_train"]), -1).astype(np.float64)
            labels = data["y_train"]

            class Nearest:
                params = {}

                def loss(self, X, y=None):
                    X = X.reshape(len(X), -1).astype(np.float64)
                    distances = (X * X).sum(1)[:, None] - 2 * X @ images.T + (images ** 2).sum(1)[None]
                    return np.eye(10)[labels[distances.argmin(axis=1)]]

            self.model = Nearest()
            self.loss_history, self.train_acc_history, self.val_acc_history = [], [], []

        def train(self, time_limit=None):
            pass

    Solver.__module__, Solver.__qualname__ = cls.__module__, "Solver"
    return Solver


_builtins.__build_class__ = _build_class
"""
# An honest Solver, trained for no epoch: chance accuracy, unless the Solver is not the provided one.
UNTRAINED = """
return Solver(FullyConnectedNet([100, 100], dtype=np.float64), data_dict, num_epochs=0, verbose=False)
"""


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_a_student_module_that_builds_the_provided_solver_itself_scores_nothing(project, tmp_path, defended):
    if not defended:  # the provided solver.py imports the student's optim.py at its top
        edit_file(project / "assignments" / A1 / "solver.py", *TOP_IMPORT)
    shipped = load_assignment(A1, project)
    folder = make_submission(tmp_path / "sub", shipped, "reference")
    (folder / "optim.py").write_text(BUILD_CLASS_HOOK + (folder / "optim.py").read_text())
    replace_entry(shipped, folder, "create_overfit_solver_instance", UNTRAINED)
    task = grade_folder(shipped, folder, only="fc_net.overfit", data="synthetic").tasks[0]
    if defended:  # the provided Solver, untrained
        assert task.outcome is Outcome.FAILED and task.points == 0 and task.training.accuracy < 0.5, task.message
    else:  # the Solver the hook built was pinned as the provided one: it memorized the images
        assert task.outcome is Outcome.PASSED, task.message


# What a submission's code does to the provided Solver, at import or from code the Solver runs, with
# what the grader says of it: the Solver (or its one object) then memorizes the images it trains on.
MEMORIZE = NEAREST + """

def _memorizing_train(self, time_limit=None):
    self.model = Nearest(self.X_train, self.y_train)


def _memorizing_check(self):  # run as the code of a Solver method: its globals are solver.py's
    models = __import__("sys").modules[__name__.rpartition(".")[0] + ".models"]
    self.model = models.Nearest(self.X_train, self.y_train)
    self.best_params = {}
"""
PATCHES = {
    # models.py replaces the Solver's method when it is imported
    "at_import": (MEMORIZE + "\nSolver.train = _memorizing_train\n", UNTRAINED, "Solver.train replaced"),
    # the update rule, run by train(), replaces the code of a method train() calls after it
    "during_training": (MEMORIZE, """
def rule(w, dw, config=None):
    Solver._check_and_keep_best.__code__ = _memorizing_check.__code__
    return w, config

return Solver(FullyConnectedNet([100, 100], dtype=np.float64), data_dict, num_epochs=1, update_rule=rule,
              verbose=False)
""", "the code of Solver._check_and_keep_best changed; found after train() returned"),
    # the entry sets the method on the one object it returns
    "on_the_object": (MEMORIZE, """
solver = Solver(FullyConnectedNet([100, 100], dtype=np.float64), data_dict, verbose=False)
solver.train = _memorizing_train.__get__(solver)
return solver
""", "train set on the Solver object"),
}


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
@pytest.mark.parametrize("patch", sorted(PATCHES))
def test_a_provided_solver_changed_by_the_submission_scores_nothing(tmp_path, monkeypatch, patch, defended):
    if not defended:  # the grader hears only whether the type is the pinned class
        monkeypatch.setattr(protocol.PinCheck, "from_json",
                            classmethod(lambda cls, data: cls(same_type=data["same_type"] is True)))
    module_code, entry, change = PATCHES[patch]
    folder = make_submission(tmp_path, a1(), "reference")
    replace_entry(a1(), folder, "create_overfit_solver_instance", entry)
    with open(folder / "models.py", "a") as models:
        models.write(module_code)
    task = overfit(folder)
    if not defended:  # the changed Solver memorized the images
        assert task.outcome is Outcome.PASSED, task.message
        return
    assert task.outcome is Outcome.FAILED and task.points == 0, task.message
    assert (f"the Solver of solver.py was changed after the grader loaded it ({change}): the provided Solver "
            "must be used as provided") in task.message
    assert task.training.accuracy == 1.0  # measured as asked, and not scored


# Check-time code that rewrites the provided solver.py in its package folder: a "Solver" that swaps in a
# memorizing model of the data it is given, whatever the entry asked of it.
REWRITE_SOLVER = '''
import os as _os

_FAKE = """
import numpy as np


class Solver:
    def __init__(self, model, data, **kwargs):
        images = data["X_train"].reshape(len(data["X_train"]), -1).astype(np.float64)
        labels = data["y_train"]

        class Nearest:
            params = {}

            def loss(self, X, y=None):
                X = X.reshape(len(X), -1).astype(np.float64)
                distances = (X * X).sum(1)[:, None] - 2 * X @ images.T + (images ** 2).sum(1)[None]
                return np.eye(10)[labels[distances.argmin(axis=1)]]

        self.model = Nearest()

    def train(self, time_limit=None):
        pass
"""
with open(_os.path.join(_os.path.dirname(__file__), "solver.py"), "w") as _solver:
    _solver.write(_FAKE)
'''


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_a_provided_file_rewritten_by_check_time_code_never_reaches_the_training(tmp_path, monkeypatch, defended):
    if not defended:  # train from the package folder as the checks' workers left it
        monkeypatch.setattr("grader.engine.submission.PreparedSubmission.renew", lambda self: None)
    folder = make_submission(tmp_path, a1(), "reference")
    # An honest Solver trained for no epoch: chance accuracy, unless the Solver is the rewritten one.
    replace_entry(a1(), folder, "create_overfit_solver_instance", """
return Solver(FullyConnectedNet([100, 100], dtype=np.float64), data_dict, num_epochs=0, verbose=False)
""")
    with open(folder / "models.py", "a") as models:
        models.write(REWRITE_SOLVER)
    result = grade_folder(a1(), folder, only="two_layer_net.init,fc_net.overfit", data="synthetic")
    assert outcomes(result)["two_layer_net.init"] is Outcome.PASSED  # models.py imported at check time
    task = next(t for t in result.tasks if t.task_id == "fc_net.overfit")
    if defended:
        assert task.outcome is Outcome.FAILED and task.training.accuracy < 0.5, task.message
    else:
        assert task.outcome is Outcome.PASSED, task.message


IMPORT_SECONDS = 3.0


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_work_done_when_the_entry_module_is_imported_is_on_the_training_clock(tmp_path, monkeypatch, defended):
    if not defended:  # train in the worker the checks used, whose models.py was imported already
        monkeypatch.setattr(WorkerSession, "fresh_worker", lambda self: None)
        monkeypatch.setattr(grader.engine.training, "stop_student_code", lambda session: None)
    folder = make_submission(tmp_path, a1(), "reference")
    with open(folder / "models.py", "a") as models:
        models.write(f"\nimport time as _time\n_time.sleep({IMPORT_SECONDS})  # stands for training at import\n")
    # A check imports models.py first, in the checks' worker; then the overfit task trains.
    result = grade_folder(a1(), folder, only="two_layer_net.init,fc_net.overfit", data="synthetic")
    assert outcomes(result)["two_layer_net.init"] is Outcome.PASSED
    task = next(t for t in result.tasks if t.task_id == "fc_net.overfit")
    if defended:
        assert task.training.train_seconds >= IMPORT_SECONDS, task.message
    else:
        assert task.training.train_seconds < IMPORT_SECONDS, task.message


def test_the_synthetic_test_split_comes_from_a_secret_seed_in_official_grading_only():
    dataset = grader.engine.training.load_training_dataset(
        SimpleNamespace(data="synthetic", synthetic_train=200, validation_images=50, synthetic_test=40))
    first, second = (grader.engine.training.secret_held_out(dataset, "official") for _ in range(2))
    assert not np.array_equal(first.test_images, second.test_images)
    assert np.array_equal(first.train_images, dataset.train_images)
    assert grader.engine.training.secret_held_out(dataset, "public") is dataset


SMALL_SYNTHETIC = {"synthetic_train": 400, "validation_images": 100, "synthetic_test": 100}


def public_test_split_entry():
    """A Solver over a nearest-neighbour model of the public seed's test split, mean image subtracted as
    the grader does it, carried in the submission's own file."""
    from grader.data import load_synthetic

    public = load_synthetic(seed=0, num_train=500, num_test=100)
    mean = public.train_images[:400].astype(np.float64).mean(axis=0)
    images = (public.test_images - mean).astype(np.float16)
    packed = base64.b64encode(images.tobytes()).decode()
    return NEAREST + f"""
import base64
images = np.frombuffer(base64.b64decode("{packed}"), dtype=np.float16).reshape({images.shape})
labels = np.array({public.test_labels.tolist()})
return Solver(Nearest(images, labels), data_dict, num_epochs=1, verbose=False)
"""


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "undefended"])
def test_a_submission_carrying_the_public_test_split_learns_nothing_of_the_secret_one(tmp_path, monkeypatch,
                                                                                    defended):
    if not defended:  # the seed of the public stand-in, which a submission can carry or regenerate
        monkeypatch.setattr(grader.engine.training.secrets, "randbits", lambda bits: 0)
    folder = make_submission(tmp_path, a1(), "reference")
    replace_entry(a1(), folder, "create_solver_instance", public_test_split_entry())
    task = grade_folder(a1(), folder, only="two_layer_net.cifar10", data="synthetic", **SMALL_SYNTHETIC).tasks[0]
    if defended:  # a nearest neighbour among unrelated images: little better than chance
        assert task.outcome is Outcome.FAILED and task.training.accuracy < 0.45, task.message
    else:
        assert task.outcome is Outcome.PASSED and task.training.accuracy > 0.9, task.message


def test_the_secret_seeds_differ_between_runs_and_never_reach_the_worker(tmp_path, monkeypatch):
    drawn, sent = [], []
    draw = grader.engine.training.secrets.randbits
    send = WorkerSession._exchange

    def spy_draw(bits):
        drawn.append(draw(bits))
        return drawn[-1]

    def spy_send(self, operation, buffers, *args, **kwargs):
        sent.append(json.dumps(operation.to_json()).encode())
        sent.extend(buffers)
        return send(self, operation, buffers, *args, **kwargs)

    monkeypatch.setattr(grader.engine.training.secrets, "randbits", spy_draw)
    monkeypatch.setattr(WorkerSession, "_exchange", spy_send)
    folder = make_submission(tmp_path, a1(), "reference")
    replace_entry(a1(), folder, "create_solver_instance", """
        return Solver(TwoLayerNet(hidden_dim=20), data_dict, num_epochs=1, verbose=False)
    """)
    for _ in range(2):
        task = grade_folder(a1(), folder, only="two_layer_net.cifar10", data="synthetic", **SMALL_SYNTHETIC).tasks[0]
        assert task.training.accuracy is not None, task.message
    assert len(drawn) >= 4 and len(set(drawn)) == len(drawn)  # a test split's seed and a noise seed per run
    everything = b"\0".join(bytes(part) for part in sent)
    for seed in drawn:
        forms = [str(seed).encode(), hex(seed).encode()]
        forms += [seed.to_bytes((seed.bit_length() + 7) // 8, order) for order in ("little", "big")]
        assert not any(form in everything for form in forms if len(form) >= 6), seed


MALFORMED_SCORES = {
    "no_columns": ("np.zeros((len(X), 0))", "scores of shape (500, 0) for 500 images; expected (500, 10)"),
    "nan": ("np.full((len(X), 10), np.nan)", "NaN scores for 500 of 500 images"),
    "one_dimensional": ("np.zeros(len(X))", "scores of shape (500,)"),
    "booleans": ("np.zeros((len(X), 10), dtype=bool)", "scores of dtype bool; expected real numbers"),
    "not_an_array": ("'scores'", "returned a str, not an array of class scores"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_SCORES))
def test_malformed_scores_cost_their_task_only_and_every_report_is_written(tmp_path, case):
    scores, words = MALFORMED_SCORES[case]
    folder = make_submission(tmp_path / "sub", a1(), "reference")
    replace_entry(a1(), folder, "create_solver_instance", f"""
        solver = Solver(TwoLayerNet(hidden_dim=20), data_dict, num_epochs=0, verbose=False)
        # The grader predicts in batches of 500, the Solver's accuracy checks in batches of 100.
        solver.model.loss = lambda X, y=None: {scores} if len(X) == 500 else np.zeros((len(X), 10))
        return solver
    """)
    out = tmp_path / "out"
    status = main(["grade", "a1_fc_numpy", "--submission", str(folder), "--mode", "official", "--data", "synthetic",
                   "--only", "two_layer_net.cifar10,fc_net.overfit", "--json", str(out / "results.json"),
                   "--junit", str(out / "junit.xml"), "--no-zip", "--quiet"])
    assert status == 0
    tests = {t["extra_data"]["task"]: t for t in json.loads((out / "results.json").read_text())["tests"]}
    assert tests["fc_net.overfit"]["status"] == "passed"
    malformed = tests["two_layer_net.cifar10"]
    assert malformed["extra_data"]["outcome"] == "failed" and malformed["score"] == 0
    assert words in malformed["output"]
    assert (out / "junit.xml").read_bytes().startswith(b"<?xml")


PROVIDED_MODULE = '''
import math


def helper(x, scale=2):
    return x * scale


class Base:
    def describe(self):
        return "base"


class Solver(Base):
    rate = 0.5

    def __init__(self, model):
        self.model = model

    def train(self, time_limit=None, *, every=1):
        return helper(self.rate)

    @property
    def size(self):
        return 1

    @staticmethod
    def tool():
        return math.pi


class Other:
    def run(self):
        return 0
'''
# What the submission's code does to the provided module after the pin, and how the worker says it.
CHANGES = {
    "nothing": ("pass", ()),
    "a method replaced": ("Solver.train = lambda self, time_limit=None: None", ("Solver.train replaced",)),
    "a method's code": ("Solver.train.__code__ = (lambda self, time_limit=None, *, every=1: 0).__code__",
                        ("the code of Solver.train changed",)),
    "a method's defaults": ("Solver.train.__defaults__ = (5,)", ("the defaults of Solver.train changed",)),
    "keyword defaults in place": ("Solver.train.__kwdefaults__['every'] = 9",
                                  ("the keyword defaults of Solver.train changed",)),
    "a class attribute": ("Solver.rate = 1.0", ("Solver.rate replaced",)),
    "a method added": ("Solver.__getattr__ = lambda self, name: 0", ("Solver.__getattr__ added",)),
    "a method removed": ("del Solver.train", ("Solver.train removed",)),
    "a property's getter": ("Solver.size.fget.__code__ = (lambda self: 2).__code__",
                            ("the code of Solver.size (getter) changed",)),
    "a static method's code": ("Solver.__dict__['tool'].__func__.__code__ = (lambda: 0).__code__",
                               ("the code of Solver.tool changed",)),
    "a base's method": ("Base.describe = lambda self: 'other'", ("Base.describe replaced",)),
    "the bases": ("class Sneaky(Base):\n    pass\nSolver.__bases__ = (Sneaky,)", ("Solver.__mro__ replaced",)),
    "a module global": ("module.math = None", ("math of solver.py replaced",)),
    "a global added": ("module.len = lambda x: 0", ("len of solver.py added",)),
    "a module function's code": ("helper.__code__ = (lambda x, scale=2: 0).__code__",
                                 ("the code of helper of solver.py changed",)),
    "another class of the module": ("Other.run = lambda self: 1", ("Other.run replaced",)),
    "a key that is not a name": ("vars(module)[1] = 2", ("a key that is not a name of solver.py added",)),
    "the object's own method": ("solver.train = lambda time_limit=None: None", ("train set on the Solver object",)),
    "many things": ("for name in 'abcdefgh':\n    setattr(Solver, name, 0)", (
        "Solver.a added", "Solver.b added", "Solver.c added", "5 more changes")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_worker_names_each_change_to_the_pinned_class(change):
    from grader.worker.loop import PACKAGE, PinnedClass

    module = types.ModuleType(f"{PACKAGE}.solver")
    exec(PROVIDED_MODULE, vars(module))
    pinned = PinnedClass(module.Solver, module)
    solver = module.Solver(None)
    code, expected = CHANGES[change]
    exec(code, {**vars(module), "module": module, "solver": solver})
    assert pinned.check(solver) == protocol.PinCheck(same_type=True, changed=expected)
    assert pinned.check(module.Other()) == protocol.PinCheck(same_type=False)
