"""A folder of 20 submissions of a1_fc_numpy, as an instructor's batch would hold them: the reference
(as a folder and as the grader's own zip), the stubs, eleven with one catalogued mistake each,
some broken, some hostile, and one file that is not a submission at all."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from grader.assignment import Assignment
from grader.batch.store import BatchStore
from grader.oracle.mistakes import load_catalogue
from grader.delivery.submission_zip import write_submission_zip
from support import make_submission

MISTAKES = 11
SUBMISSION_COUNT = 20

_AFFINE = "    out = x.reshape(x.shape[0], -1) @ w + b\n"
_HOSTILE = {
    # The grader compares with its own numbers: an object equal to everything earns nothing.
    "always_equal": ("layers.py", _AFFINE, _AFFINE + "    class Anything(np.ndarray):\n"
                     "        def __eq__(self, other):\n            return True\n"
                     "    out = out.view(Anything)\n"),
    # Exits the worker as soon as the optimizers are imported: their tasks are lost, no others.
    "exits_at_import": ("optim.py", "import numpy as np\n", "import numpy as np\nimport os\nos._exit(0)\n"),
    "syntax_error": ("layers.py", _AFFINE, "    out = = x\n"),
    # Tells the checks' numpy that everything is close: only the worker's numpy believes it.
    "patches_numpy": ("layers.py", "import numpy as np\n",
                      "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.testing.assert_allclose = "
                      "lambda *a, **k: None\n"),
}


def build_submissions(folder: Path, assignment: Assignment) -> dict[str, str]:
    """Writes the submissions into `folder`; returns each one's id with what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    reference = make_submission(folder / "ref_folder", assignment, "reference")
    kinds["ref_folder"] = "reference"
    write_submission_zip(assignment, reference, folder / "ref_zip.zip", None)
    kinds["ref_zip"] = "reference"
    make_submission(folder / "stubs", assignment, "stubs")
    kinds["stubs"] = "stubs"
    seen_tasks: set[str] = set()
    chosen = []
    for mistake in load_catalogue(assignment):
        if mistake.task not in seen_tasks:
            seen_tasks.add(mistake.task)
            chosen.append(mistake)
    for index, mistake in enumerate(chosen[:MISTAKES]):
        name = f"bug_{mistake.id}"
        target = make_submission(folder / name, assignment, "reference", {mistake.file: mistake.source_text})
        if index % 2:  # half of them as zips
            write_submission_zip(assignment, target, folder / f"{name}.zip", None)
            for file in target.iterdir():
                file.unlink()
            target.rmdir()
        kinds[name] = f"mistake {mistake.id}"
    for name, (file, old, new) in _HOSTILE.items():
        text = (assignment.reference_directory / file).read_text()
        assert text.count(old) >= 1, (name, old)
        make_submission(folder / name, assignment, "reference", {file: text.replace(old, new, 1)})
        kinds[name] = name.replace("_", " ")
    with zipfile.ZipFile(folder / "nothing_inside.zip", "w") as archive:
        archive.writestr("README.txt", "forgot the files\n")
    kinds["nothing_inside"] = "unusable"
    with zipfile.ZipFile(folder / "other_assignment.zip", "w") as archive:
        archive.writestr("MANIFEST.json", json.dumps({"assignment": "a2_cnn_torch"}))
        archive.writestr("layers.py", (assignment.reference_directory / "layers.py").read_text())
    kinds["other_assignment"] = "unusable"
    (folder / "notes.txt").write_text("not a submission\n")
    assert len(kinds) == SUBMISSION_COUNT, len(kinds)
    return kinds


def gradebook(out: Path) -> list[dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as file:
        return list(csv.DictReader(file))


def attempts(out: Path) -> dict[str, list[tuple[int, str]]]:
    """Each submission's attempts in the batch's last run: (number, how it ended)."""
    store = BatchStore(out)
    try:
        rows = store.attempts()
    finally:
        store.close()
    last = max(run for _, run, _, _ in rows)
    found: dict[str, list[tuple[int, str]]] = {}
    for submission, run, attempt, ended in sorted(rows):
        if run == last:
            found.setdefault(submission, []).append((attempt, ended or ""))
    return found
