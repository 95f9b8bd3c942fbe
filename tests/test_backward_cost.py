"""A gradient measured by finite differences of the submission's own forward pass has the right values
and passes every value check; it loses its task because it cannot have backpropagation's cost
(grader.checking.backward_cost). Students who write the gradient as loops keep every point."""

from __future__ import annotations

import pytest

import grader.checking.backward_cost as backward_cost
from mutants_a1 import student_version
from support import a1, grade_checks, lost, make_submission

# What a student writes who measures each gradient as the course's numeric gradient check does.
NUMERIC = """
def numeric_gradient(f, x, df, h=1e-5):
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=float).copy()
        x[ix] = old - h
        neg = np.array(f(x), dtype=float).copy()
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad
"""

MEASURED = {
    "affine_backward": """
        x, w, b = cache
        dx = numeric_gradient(lambda v: affine_forward(v, w, b)[0], x.copy(), dout)
        dw = numeric_gradient(lambda v: affine_forward(x, v, b)[0], w.copy(), dout)
        db = numeric_gradient(lambda v: affine_forward(x, w, v)[0], b.copy(), dout)
    """,
    "relu_backward": """
        dx = numeric_gradient(lambda v: relu_forward(v)[0], cache.copy(), dout)
    """,
    "softmax_loss": """
        def value(scores):
            shifted = scores - scores.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            return -log_probs[np.arange(scores.shape[0]), y].mean()

        loss = value(x)
        dx = numeric_gradient(value, x.astype(float).copy(), 1.0)
    """,
}
# The same, answering anything at once where the input is large (where the cost check looks).
FAST_WHEN_LARGE = {function: body.replace("numeric_gradient(", "numeric_or_zeros(") for function, body in MEASURED.items()}
NUMERIC_OR_ZEROS = """
def numeric_or_zeros(f, x, df):
    return np.zeros_like(x) if x.size > 10000 else numeric_gradient(f, x, df)
"""
ONLY = "affine.*,relu.*,softmax_loss.*"
MEASURED_TASKS = {"affine.backward", "relu.backward", "softmax_loss.gradient"}


def measured_submission(tmp_path, bodies=MEASURED):
    shipped = a1()
    text = (shipped.reference_directory / "layers.py").read_text()
    for function, body in bodies.items():
        text = student_version(text, function, body)
    text += "\n" + NUMERIC + NUMERIC_OR_ZEROS
    return shipped, make_submission(tmp_path, shipped, "reference", {"layers.py": text})


def test_gradients_measured_by_finite_differences_lose_their_tasks_saying_why(tmp_path, monkeypatch):
    # A lower limit keeps the test short; the measured gradients take minutes at these sizes either way.
    monkeypatch.setattr(backward_cost, "LIMIT_S", 3.0)
    shipped, folder = measured_submission(tmp_path)
    result = grade_checks(shipped, folder, only=ONLY, seed=None)
    assert lost(result) == MEASURED_TASKS, {t.task_id: t.message for t in result.tasks}
    for task in result.tasks:
        if task.task_id in MEASURED_TASKS:
            assert "did not answer within 3 s" in task.message and "finite differences" in task.message, task.message


def test_without_the_cost_check_the_measured_gradients_earn_full_marks(tmp_path, monkeypatch):
    """Teeth for the test above: every value check of these tasks passes the measured gradients."""
    monkeypatch.setattr(backward_cost, "_within", lambda call, limit, what, forward_time: None)
    shipped, folder = measured_submission(tmp_path)
    result = grade_checks(shipped, folder, only=ONLY, seed=None, mode="public")  # no values on the large input
    assert result.tasks and not lost(result), {t.task_id: t.message for t in result.tasks}


def test_gradients_answered_fast_only_on_large_inputs_by_answering_anything_lose_their_tasks(tmp_path):
    shipped, folder = measured_submission(tmp_path, FAST_WHEN_LARGE)
    result = grade_checks(shipped, folder, only=ONLY, seed=None, mode="official")
    assert lost(result) == MEASURED_TASKS, {t.task_id: t.message for t in result.tasks}
    for task in result.tasks:
        if task.task_id in MEASURED_TASKS:
            assert "on the large input of this check" in task.message or "of softmax_loss on x of" in task.message, \
                task.message


def test_without_the_values_on_the_large_input_answering_anything_there_earns_full_marks(tmp_path, monkeypatch):
    """Teeth for the test above (and what public grading, without the reference, cannot see)."""
    shipped, folder = measured_submission(tmp_path, FAST_WHEN_LARGE)
    result = grade_checks(shipped, folder, only=ONLY, seed=None, mode="public")
    assert result.tasks and not lost(result), {t.task_id: t.message for t in result.tasks}


LOOPS = {
    "affine_backward": """
        x, w, b = cache
        X = x.reshape(x.shape[0], -1)
        dx = np.zeros_like(X)
        dw = np.zeros_like(w)
        for i in range(X.shape[0]):
            for k in range(X.shape[1]):
                total = 0.0
                for j in range(w.shape[1]):
                    total += dout[i, j] * w[k, j]
                    dw[k, j] += X[i, k] * dout[i, j]
                dx[i, k] = total
        dx = dx.reshape(x.shape)
        db = np.zeros(w.shape[1])
        for i in range(dout.shape[0]):
            db += dout[i]
    """,
    "relu_backward": """
        x = cache
        dx = np.zeros_like(dout)
        for index in np.ndindex(*x.shape):
            if x[index] > 0:
                dx[index] = dout[index]
    """,
}


def test_backward_passes_written_as_loops_over_every_element_keep_every_point(tmp_path):
    shipped = a1()
    text = (shipped.reference_directory / "layers.py").read_text()
    for function, body in LOOPS.items():
        text = student_version(text, function, body)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    result = grade_checks(shipped, folder, only="affine.*,relu.*", seed=None)
    assert result.tasks and not lost(result), {t.task_id: t.message for t in result.tasks}


# A forward pass that sleeps where the grader times it (on the large input), and a backward pass that
# takes what a measured gradient takes there (a sleep stands for it): right values, a bought limit.
SLEEPY = {
    "relu_forward": """
        if x.size > 50000:
            time.sleep(1.5)
        out = np.maximum(0, x)
        cache = x
    """,
    "relu_backward": """
        if dout.size > 50000:
            time.sleep(4.0)
        dx = dout * (cache > 0)
    """,
}


def sleepy_submission(tmp_path):
    shipped = a1()
    text = (shipped.reference_directory / "layers.py").read_text().replace("import numpy as np\n",
                                                                          "import numpy as np\nimport time\n", 1)
    for function, body in SLEEPY.items():
        text = student_version(text, function, body)
    return shipped, make_submission(tmp_path, shipped, "reference", {"layers.py": text})


def test_a_forward_pass_slowed_on_purpose_buys_its_backward_pass_no_time(tmp_path, monkeypatch):
    monkeypatch.setattr(backward_cost, "LIMIT_S", 2.0)   # scaled down with the sleeps
    shipped, folder = sleepy_submission(tmp_path)
    result = grade_checks(shipped, folder, only="relu.*", seed=None)
    assert lost(result) == {"relu.backward"}, {t.task_id: t.message for t in result.tasks}
    message = next(t.message for t in result.tasks if t.task_id == "relu.backward")
    assert "did not answer within 2 s" in message, message


def test_with_a_limit_of_ten_forward_passes_a_slowed_forward_pass_buys_the_measured_gradient_its_time(
        tmp_path, monkeypatch):
    """Teeth for the test above: a limit that grew with the forward pass's own time (ten 1.5 s forward
    passes) would cover the 4 s backward pass."""
    monkeypatch.setattr(backward_cost, "LIMIT_S", 2.0)
    within = backward_cost._within
    monkeypatch.setattr(backward_cost, "_within", lambda call, limit, what, forward_time: within(
        call, max(limit, 10 * float(forward_time.split(" takes ")[1].split(" s")[0])) if " takes " in forward_time
        else limit, what, forward_time))
    shipped, folder = sleepy_submission(tmp_path)
    result = grade_checks(shipped, folder, only="relu.*", seed=None)
    assert result.tasks and not lost(result), {t.task_id: t.message for t in result.tasks}


def test_a_wrong_forward_pass_is_named_before_its_backward_pass_is_timed(tmp_path):
    # A forward pass whose output is wrong and whose cache its backward pass cannot read: the cost check
    # must not make the backward pass's exception the task's headline over "fix relu_forward first".
    shipped = a1()
    text = student_version((shipped.reference_directory / "layers.py").read_text(), "relu_forward", """
        out = 2 * np.maximum(0, x)
        cache = (x, "a cache of my own")
    """)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    result = grade_checks(shipped, folder, only="relu.*", seed=None, mode="official")
    backward = next(t for t in result.tasks if t.task_id == "relu.backward")
    assert backward.outcome.value == "failed", (backward.outcome, backward.message)
    assert "not graded, because relu_forward disagrees with the reference" in backward.message, backward.message
    cost = [c for c in backward.checks if "costs_about" in c.name]
    assert cost and all("fix relu_forward first" in c.message for c in cost), [c.message for c in cost]


EXTRA_NAME_WHEN_LARGE = '''

_Honest = TwoLayerNet


class TwoLayerNet(_Honest):
    """Right on small models; on the large one of the cost check, an extra parameter and zeros at once."""

    def loss(self, X, y=None):
        if y is not None and self.params["W1"].size >= 10 ** 5:
            self.params["_extra"] = np.zeros(1)
            return 1.0, {key: np.zeros_like(value) for key, value in self.params.items()}
        return _Honest.loss(self, X, y)
'''


def test_a_large_model_with_an_extra_parameter_still_has_its_gradients_compared(tmp_path):
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text() + EXTRA_NAME_WHEN_LARGE
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models})
    result = grade_checks(shipped, folder, only="two_layer_net.gradients", seed=None, mode="official")
    assert lost(result) == {"two_layer_net.gradients"}, {t.task_id: t.message for t in result.tasks}
    message = next(t.message for t in result.tasks if t.task_id == "two_layer_net.gradients")
    assert "on the large input" in message or "TwoLayerNet.loss(X, y), the gradients of its" in message, message


# -- what the time cannot show: the notes for a person to read ---------------------------------------

GROUPED = {
    # ReLU's elements share no output: all of them measured at once, in two forward passes, as fast as
    # backpropagation. No input size tells it apart by time; its source says it.
    "relu_backward": """
        x = cache
        h = 1e-6
        dx = (relu_forward(x + h)[0] - relu_forward(x - h)[0]) / (2 * h) * dout
    """,
}
HONEST_RECOMPUTING = {
    # The forward pass called once on its own input, for its output: backpropagation.
    "sigmoid_forward": """
        out = 1 / (1 + np.exp(-x))
        cache = x
    """,
    "sigmoid_backward": """
        x = cache
        s = sigmoid_forward(x)[0]
        dx = dout * s * (1 - s)
    """,
}
REBOUND = """

def _measured(forward):
    def backward(dout, cache):
        return numeric_gradient(lambda v: forward(v)[0], cache.copy(), dout)
    return backward


relu_backward = _measured(relu_forward)
"""


def _notes(tmp_path, bodies, extra=""):
    shipped = a1()
    text = (shipped.reference_directory / "layers.py").read_text()
    for function, body in bodies.items():
        text = student_version(text, function, body)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text + extra})
    result = grade_checks(shipped, folder, only="relu.backward,sigmoid.backward", seed=None)
    return result, [line for line in result.output.splitlines() if "run a forward pass again" in line]


def test_a_gradient_measured_in_groups_passes_on_time_and_its_source_is_named_for_a_person(tmp_path):
    result, notes = _notes(tmp_path, GROUPED)
    assert lost(result) == set(), {t.task_id: t.message for t in result.tasks}
    assert len(notes) == 1 and "relu_backward (line" in notes[0] and "relu_forward at inputs it changes" in notes[0], \
        result.output


def test_a_backward_pass_bound_anew_to_a_measuring_function_is_named(tmp_path):
    _, notes = _notes(tmp_path, {}, NUMERIC + REBOUND)
    assert len(notes) == 1 and "relu_backward bound anew after its definition" in notes[0], notes
    assert "forward in a function it defines" in notes[0], notes


def test_backpropagation_that_calls_its_forward_pass_for_its_output_is_not_named(tmp_path):
    result, notes = _notes(tmp_path, HONEST_RECOMPUTING)
    assert lost(result) == set() and notes == [], notes


ZEROED_WHEN_LARGE = '''

_Honest = TwoLayerNet


class TwoLayerNet(_Honest):
    """On the large model of the cost check, its parameters set to zero in place first: gradients that
    are known without measuring (a measuring submission's shortcut), right for the model as it then is."""

    def loss(self, X, y=None):
        if y is not None and self.params["W1"].size >= 10 ** 5:
            for value in self.params.values():
                value[...] = 0
        return _Honest.loss(self, X, y)
'''


def test_a_large_model_that_changes_its_own_parameters_is_compared_for_the_grader_s(tmp_path):
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text() + ZEROED_WHEN_LARGE
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models})
    result = grade_checks(shipped, folder, only="two_layer_net.gradients", seed=None, mode="official")
    assert lost(result) == {"two_layer_net.gradients"}, {t.task_id: t.message for t in result.tasks}
    message = next(t.message for t in result.tasks if t.task_id == "two_layer_net.gradients")
    assert "the gradients of its" in message, message


HONEST_SOURCES = '''
import numpy as np


def sigmoid_backward(dout, cache):
    x = cache
    return dout * sigmoid_forward(x)[0] * sigmoid_forward(-x)[0]


def relu_backward(dout, cache):
    forward_mask = cache > 0
    return np.where(forward_mask, dout, 0)


class TwoLayerNet:
    def loss(self, X, y=None):
        scores = X @ self.params["W1"]
        losses = [softmax_loss(scores[i:i + 1], y[i:i + 1])[0] for i in range(len(y))]
        loss = float(np.mean(losses))
        assert np.isfinite(loss)
        self.history.append(loss)
        return loss, {}
'''


def test_honest_code_that_names_forward_passes_or_losses_is_not_named():
    from grader.engine.source_review import measured_gradient_uses

    assert measured_gradient_uses(HONEST_SOURCES, {}, frozenset()) == []
