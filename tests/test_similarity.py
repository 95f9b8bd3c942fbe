"""Code similarity across a batch: a copy with renamed variables and reordered functions stands out
from honest submissions, which share most of their code with the reference and the stubs."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from grader.assignment import Assignment, ConfigError
from grader.batch.discover import discover
from grader.batch.similarity import DEFAULT_THRESHOLD, SimilarPair, pairs_among, similar_pairs
from grader.engine.submission import read_submission
from grader.oracle.mistakes import apply, load_catalogue
from support import a1, make_submission

# Each honest submission makes a few of the catalogued mistakes, in the files they belong to.
MISTAKES_EACH = 3
HONEST_FROM_MISTAKES = 6

# Bodies students wrote themselves, in place of the reference's between the fences.
COPIED_WORK = {
    "layers.py": {
        "affine_forward": """
    n = x.shape[0]
    flat = np.zeros((n, w.shape[0]))
    for i in range(n):
        flat[i] = x[i].flatten()
    out = np.zeros((n, w.shape[1]))
    for i in range(n):
        out[i] = np.dot(flat[i], w) + b
    cache = (x, w, b)
""",
        "softmax_loss": """
    n, c = x.shape
    loss = 0.0
    dx = np.zeros_like(x)
    for i in range(n):
        row = x[i] - np.max(x[i])
        e = np.exp(row)
        total = np.sum(e)
        loss += -row[y[i]] + np.log(total)
        for j in range(c):
            dx[i, j] = e[j] / total
        dx[i, y[i]] -= 1.0
    loss = loss / n
    dx = dx / n
""",
        "svm_loss": """
    n, c = x.shape
    loss = 0.0
    dx = np.zeros_like(x)
    for i in range(n):
        for j in range(c):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y[i]] -= 1
    loss /= n
    dx /= n
""",
        "relu_forward": """
    mask = x > 0
    out = x * mask
""",
    },
    "optim.py": {
        "rmsprop": """
    grad_sq = config.get("cache")
    grad_sq = config.get("decay_rate") * grad_sq + (1.0 - config.get("decay_rate")) * (dw * dw)
    step = config.get("learning_rate") * dw
    next_w = w - step / (np.sqrt(grad_sq) + config.get("epsilon"))
    config["cache"] = grad_sq
""",
        "adam": """
    config["t"] = config["t"] + 1
    first = config["beta1"] * config["m"] + (1.0 - config["beta1"]) * dw
    second = config["beta2"] * config["v"] + (1.0 - config["beta2"]) * (dw * dw)
    config["m"] = first
    config["v"] = second
    first_unbiased = first / (1.0 - config["beta1"] ** config["t"])
    second_unbiased = second / (1.0 - config["beta2"] ** config["t"])
    next_w = w - config["learning_rate"] * first_unbiased / (np.sqrt(second_unbiased) + config["epsilon"])
""",
    },
}
# What the copier renamed: every name the copied bodies define.
RENAMED = {"flat": "x_rows", "row": "shifted_row", "e": "exps", "total": "denominator", "margin": "m_ij",
           "mask": "positive", "grad_sq": "square_avg", "step": "scaled", "first": "mom1",
           "second": "mom2", "first_unbiased": "m_corr", "second_unbiased": "v_corr", "n": "N", "c": "C"}

HONEST_WORK = {
    "loops": {
        "layers.py": {
            "affine_forward": """
    x_flat = x.reshape(len(x), np.prod(x.shape[1:]))
    out = np.dot(x_flat, w)
    out += b
    cache = (x, w, b)
""",
            "relu_forward": """
    out = np.where(x > 0, x, 0)
""",
            "softmax_loss": """
    scores = x - np.max(x, axis=1).reshape(-1, 1)
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=1).reshape(-1, 1)
    N = x.shape[0]
    loss = np.sum(-np.log(probs[range(N), y])) / N
    dx = probs.copy()
    dx[range(N), y] += -1
    dx = dx / N
""",
        },
        "optim.py": {
            "sgd_momentum": """
    velocity = config["velocity"]
    velocity = config["momentum"] * velocity
    velocity -= config["learning_rate"] * dw
    next_w = w + velocity
    config["velocity"] = velocity
""",
        },
    },
    "vectorised": {
        "layers.py": {
            "sigmoid_forward": """
    out = np.exp(-np.logaddexp(0, -x))
    cache = out
""",
            "svm_loss": """
    N = len(y)
    true_scores = np.choose(y, x.T)
    hinge = np.clip(x - true_scores[:, np.newaxis] + 1.0, 0, None)
    hinge[np.arange(N), y] = 0.0
    loss = np.sum(hinge) / N
    counts = (hinge > 0).sum(axis=1)
    dx = (hinge > 0) * 1.0
    dx[np.arange(N), y] = -counts
    dx = dx / N
""",
        },
        "optim.py": {
            "adam": """
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * np.square(dw)
    lr_t = config["learning_rate"] * np.sqrt(1 - config["beta2"] ** config["t"]) / (1 - config["beta1"] ** config["t"])
    next_w = w - lr_t * config["m"] / (np.sqrt(config["v"]) + config["epsilon"] * np.sqrt(1 - config["beta2"] ** config["t"]))
""",
        },
    },
}


def fill(text: str, function: str, body: str) -> str:
    """`text` with the fenced body of `function` replaced by `body`."""
    pattern = re.compile(rf"(def {function}\(.*?# BEGIN YOUR CODE\n).*?(    # END YOUR CODE)", re.DOTALL)
    filled, count = pattern.subn(lambda m: m.group(1) + body.lstrip("\n") + m.group(2), text, count=1)
    assert count == 1, function
    return filled


def reordered(text: str) -> str:
    """The module's top-level functions in reverse order, after its header."""
    header, *functions = re.split(r"\n(?=def )", text)
    return "\n".join([header, *reversed(functions)]) + "\n"


def renamed(text: str) -> str:
    return re.sub(r"\b(" + "|".join(RENAMED) + r")\b", lambda m: RENAMED[m.group(1)], text)


def reference_texts(assignment: Assignment) -> dict[str, str]:
    return {name: (assignment.reference_directory / name).read_text() for name in assignment.spec.student_files}


def with_mistakes(assignment: Assignment, mistakes) -> dict[str, str]:
    texts = reference_texts(assignment)
    for mistake in mistakes:
        try:
            texts[mistake.file] = apply(mistake.spec, texts[mistake.file])
        except ConfigError:
            continue  # two mistakes of one line: the student made the first
    return texts


def with_work(assignment: Assignment, work: dict[str, dict[str, str]]) -> dict[str, str]:
    texts = reference_texts(assignment)
    for file, bodies in work.items():
        for function, body in bodies.items():
            texts[file] = fill(texts[file], function, body)
    return texts


def build_batch(folder: Path, assignment: Assignment) -> dict[str, str]:
    """Writes a batch of a1_fc_numpy into `folder`; returns each submission's id with what it is."""
    kinds = {}
    catalogue = [m for m in load_catalogue(assignment) if m.variant_of is None]
    for index in range(HONEST_FROM_MISTAKES):
        chosen = catalogue[index::HONEST_FROM_MISTAKES][:MISTAKES_EACH]
        make_submission(folder / f"honest_{index}", assignment, "reference", with_mistakes(assignment, chosen))
        kinds[f"honest_{index}"] = "honest"
    for style, work in HONEST_WORK.items():
        make_submission(folder / f"honest_{style}", assignment, "reference", with_work(assignment, work))
        kinds[f"honest_{style}"] = "honest"
    original = with_work(assignment, COPIED_WORK)
    make_submission(folder / "copied_from", assignment, "reference", original)
    copy = make_submission(folder / "copy", assignment, "reference",
                           {name: reordered(renamed(text)) for name, text in original.items()})
    with zipfile.ZipFile(folder / "copy.zip", "w") as archive:  # handed in as a zip
        for file in sorted(copy.iterdir()):
            archive.write(file, file.name)
            file.unlink()
    copy.rmdir()
    kinds["copied_from"] = kinds["copy"] = "copied"
    for name in ("stubs_a", "stubs_b"):
        make_submission(folder / name, assignment, "stubs")
        kinds[name] = "stubs"
    return kinds


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Assignment, list[tuple[str, Path]], dict[str, str]]:
    assignment = a1()
    folder = tmp_path_factory.mktemp("similarity")
    kinds = build_batch(folder, assignment)
    found, skipped = discover(assignment.id, folder)
    assert not skipped and {s.id for s in found} == set(kinds)
    return assignment, [(s.id, s.path) for s in found], kinds


@pytest.fixture(scope="module")
def scores(batch) -> list[SimilarPair]:
    """Every pair that shares anything outside the boilerplate, with its score."""
    assignment, submissions, _ = batch
    return similar_pairs(assignment, submissions, threshold=0.0)


def test_the_copied_pair_is_the_top_pair_and_above_the_threshold(batch, scores):
    assignment, submissions, _ = batch
    flagged = similar_pairs(assignment, submissions)
    assert [(p.first, p.second) for p in flagged] == [("copied_from", "copy")]
    assert flagged[0].score >= DEFAULT_THRESHOLD
    assert (scores[0].first, scores[0].second) == ("copied_from", "copy")


def test_honest_pairs_are_below_the_threshold(batch, scores):
    _, _, kinds = batch
    honest = [p for p in scores if kinds[p.first] != "copied" or kinds[p.second] != "copied"]
    assert all(p.score < DEFAULT_THRESHOLD for p in honest), [(p.first, p.second, p.score) for p in honest]


def test_without_the_shared_code_honest_pairs_would_be_flagged(batch):
    """What everyone shares must not count: compared without it, honest submissions look copied."""
    assignment, submissions, kinds = batch
    sources = {ident: {name: data.decode() for name, data in read_submission(assignment, path).files.items()}
               for ident, path in submissions}
    flagged = pairs_among(sources, boilerplate={})
    honest = {(p.first, p.second) for p in flagged if "copied" not in (kinds[p.first], kinds[p.second])}
    assert ("honest_0", "honest_1") in honest
    assert ("stubs_a", "stubs_b") in honest


def test_stubs_only_submissions_are_not_flagged(batch, scores):
    stubs = {"stubs_a", "stubs_b"}
    assert not [p for p in scores if {p.first, p.second} & stubs]


def test_a_pair_shows_the_code_it_shares_side_by_side(scores):
    top = scores[0]
    assert 0 < len(top.regions) <= 5
    for first, second in top.regions:
        assert first.startswith(("layers.py, lines ", "optim.py, lines "))
        assert len(first.splitlines()) <= 9 and len(second.splitlines()) <= 9
    shown = "\n".join(first + second for first, second in top.regions)
    assert "config.get(" in shown or "for i in range(" in shown or "for j in range(" in shown
    assert any("denominator" in second or "square_avg" in second or "m_ij" in second
               for _, second in top.regions)


def test_binary_and_unreadable_files_are_left_out(tmp_path):
    assignment = a1()
    original = with_work(assignment, COPIED_WORK)
    make_submission(tmp_path / "one", assignment, "reference", original)
    make_submission(tmp_path / "two", assignment, "reference", original)
    (tmp_path / "two" / "layers.py").write_bytes(b"\x00\x01\xff\xfe" * 500)    # binary
    (tmp_path / "two" / "optim.py").write_bytes(original["optim.py"].encode() + b"\xff\xfe\n")  # not UTF-8
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "layers.py").mkdir()                                # not a file
    (tmp_path / "four.zip").write_bytes(b"PK\x03\x04 not really a zip")
    submissions = [(name, tmp_path / name) for name in ("one", "two", "three")]
    submissions += [("four", tmp_path / "four.zip"), ("five", tmp_path / "missing")]
    flagged = similar_pairs(assignment, submissions)
    assert [(p.first, p.second) for p in flagged] == [("one", "two")]
    assert all(first.startswith("optim.py") for first, _ in flagged[0].regions)


def test_a_batch_of_one_or_none_has_no_pairs():
    assignment = a1()
    assert similar_pairs(assignment, []) == []
    assert similar_pairs(assignment, [("alone", assignment.reference_directory)]) == []
