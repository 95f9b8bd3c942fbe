"""Students who follow another course's convention (parameter names, the 0.5 of the L2 term, the
meaning of dropout's p, which tied maximum gets a pooling window's gradient) get a message naming
both conventions, or full marks where the docstring leaves the choice to them: students' own code,
written as students write it."""

import pytest

from mutants_a1 import student_version
from support import a1, grade_checks, lost, make_submission


def two_layer_net(names=("W1", "b1", "W2", "b2"), l2_factor="0.5 * self.reg", l2_gradient="self.reg"):
    """A student's TwoLayerNet, with their own parameter names and L2 convention."""
    W1, b1, W2, b2 = names
    text = (a1().reference_directory / "models.py").read_text()
    text = student_version(text, "__init__", f"""
        self.params['{W1}'] = weight_scale * np.random.randn(input_dim, hidden_dim)
        self.params['{b1}'] = np.zeros(hidden_dim)
        self.params['{W2}'] = weight_scale * np.random.randn(hidden_dim, num_classes)
        self.params['{b2}'] = np.zeros(num_classes)
    """)
    text = student_version(text, "loss", f"""
        h = np.maximum(0, X.reshape(X.shape[0], -1) @ self.params['{W1}'] + self.params['{b1}'])
        scores = h @ self.params['{W2}'] + self.params['{b2}']
    """)
    return student_version(text, "loss", f"""
        N = X.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(N), y]).mean()
        loss += {l2_factor} * (np.sum(self.params['{W1}'] ** 2) + np.sum(self.params['{W2}'] ** 2))
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads['{W2}'] = h.T @ dscores + {l2_gradient} * self.params['{W2}']
        grads['{b2}'] = dscores.sum(axis=0)
        dh = dscores @ self.params['{W2}'].T
        dh[h <= 0] = 0
        grads['{W1}'] = X.reshape(N, -1).T @ dh + {l2_gradient} * self.params['{W1}']
        grads['{b1}'] = dh.sum(axis=0)
    """, fence=1)


def grade_models(tmp_path, models_text):
    shipped = a1()
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models_text})
    return {task.task_id: task for task in grade_checks(shipped, folder, seed=None).tasks
            if task.task_id.startswith("two_layer_net.")}


def test_a_two_layer_net_written_from_scratch_gets_full_marks(tmp_path):
    """Teeth for the tests below: the student's code is right where it follows this assignment."""
    tasks = grade_models(tmp_path, two_layer_net())
    assert all(task.points == task.max_points for task in tasks.values()), {t: x.message for t, x in tasks.items()}


@pytest.mark.parametrize("names,renaming", [
    (("W_1", "b_1", "W_2", "b_2"), "the same names spelled otherwise"),
    (("w1", "b1", "w2", "b2"), "the same names spelled otherwise"),
    (("W0", "b0", "W1", "b1"), "your layers are numbered from 0; the docstring numbers them from 1"),
])
def test_a_model_with_other_parameter_names_fails_naming_both(tmp_path, names, renaming):
    tasks = grade_models(tmp_path, two_layer_net(names=names))
    expected = f"expected params W1, b1, W2, b2 (as the docstring names them); your model has {', '.join(names)}, "
    for task_id in ("two_layer_net.init", "two_layer_net.loss", "two_layer_net.gradients"):
        message = tasks[task_id].message
        assert tasks[task_id].points == 0, task_id
        assert expected in message and f"({renaming}" in message, (task_id, message)


def test_a_loss_with_the_other_l2_factor_fails_naming_both_conventions(tmp_path):
    tasks = grade_models(tmp_path, two_layer_net(l2_factor="self.reg", l2_gradient="2 * self.reg"))
    expected = "your loss uses reg * sum(W**2) for the L2 term; this assignment uses 0.5 * reg * sum(W**2)"
    for task_id in ("two_layer_net.loss", "two_layer_net.gradients"):
        assert tasks[task_id].points < tasks[task_id].max_points, task_id
        assert expected in tasks[task_id].message, (task_id, tasks[task_id].message)
    assert tasks["two_layer_net.init"].points == tasks["two_layer_net.init"].max_points


def test_a_wrong_regularization_that_is_no_convention_is_not_called_one(tmp_path):
    tasks = grade_models(tmp_path, two_layer_net(l2_factor="0.25 * self.reg", l2_gradient="0.5 * self.reg"))
    assert tasks["two_layer_net.loss"].points < tasks["two_layer_net.loss"].max_points
    assert "this assignment uses" not in tasks["two_layer_net.loss"].message


DROPOUT_AS_DROP_PROBABILITY = """
    if mode == "train":
        mask = (np.random.rand(*x.shape) >= p) / (1 - p)
        out = x * mask
    else:
        out = x
"""


def test_dropout_with_p_as_the_drop_probability_fails_naming_both_readings(tmp_path):
    shipped = a1()
    text = student_version((shipped.reference_directory / "layers.py").read_text(), "dropout_forward",
                           DROPOUT_AS_DROP_PROBABILITY)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    tasks = {t.task_id: t for t in grade_checks(shipped, folder, seed=None).tasks}
    expected = "your dropout drops units with probability p"
    for task_id in ("dropout.forward", "dropout.backward"):
        assert tasks[task_id].points < tasks[task_id].max_points, task_id
        assert expected in tasks[task_id].message and "here p is the probability of keeping a unit" in \
            tasks[task_id].message, (task_id, tasks[task_id].message)


MAX_POOL_BACKWARD = """
    x, pool_param = cache
    N, C, H, W = x.shape
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    {route}
"""
TIE_ROUTINGS = {
    "the last maximum": """
                    flat = window.ravel()
                    k = len(flat) - 1 - np.argmax(flat[::-1])
                    dx[n, c, i * s + k // pw, j * s + k % pw] += dout[n, c, i, j]""",
    "shares among the maxima": """
                    maxima = window == window.max()
                    dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += maxima * dout[n, c, i, j] / maxima.sum()""",
    "all the maxima, each the whole gradient": """
                    maxima = window == window.max()
                    dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += maxima * dout[n, c, i, j]""",
}


@pytest.mark.parametrize("routing", sorted(TIE_ROUTINGS))
def test_max_pool_ties_may_go_to_any_maximum_but_not_to_all(tmp_path, routing):
    shipped = a1()
    body = MAX_POOL_BACKWARD.replace("{route}", TIE_ROUTINGS[routing].strip())
    text = student_version((shipped.reference_directory / "layers.py").read_text(), "max_pool_backward_naive", body)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    task = grade_checks(shipped, folder, only="max_pool.backward", seed=None).tasks[0]
    if routing == "all the maxima, each the whole gradient":
        assert task.points == 0 and "tie for the maximum" in task.message, task.message
    else:
        assert task.points == task.max_points, task.message


SOFTMAX_LOG_OF_PROBABILITIES = """
    N = x.shape[0]
    shifted = x - np.max(x, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
"""


def test_softmax_that_takes_the_log_of_underflowing_probabilities_is_told_so(tmp_path):
    """The docstring states that huge scores keep the loss finite; a student who subtracts the row's
    maximum and then takes the log of a probability that underflowed is told that, not to subtract."""
    shipped = a1()
    text = student_version((shipped.reference_directory / "layers.py").read_text(), "softmax_loss",
                           SOFTMAX_LOG_OF_PROBABILITIES)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": text})
    tasks = {t.task_id: t for t in grade_checks(shipped, folder, seed=None).tasks}
    assert "log of probabilities that underflow to 0" in tasks["softmax_loss.loss"].message
    assert "subtract each row's maximum" not in tasks["softmax_loss.loss"].message
    assert tasks["softmax_loss.gradient"].points == tasks["softmax_loss.gradient"].max_points


def test_momentum_in_torch_convention_fails_naming_both(tmp_path):
    shipped = a1()
    text = student_version((shipped.reference_directory / "optim.py").read_text(), "sgd_momentum", """
        v = config["momentum"] * config["velocity"] + dw
        next_w = w - config["learning_rate"] * v
        config["velocity"] = v
    """)
    folder = make_submission(tmp_path, shipped, "reference", {"optim.py": text})
    task = grade_checks(shipped, folder, only="optim.sgd_momentum", seed=None).tasks[0]
    assert task.points < task.max_points
    assert "your momentum follows torch.optim.SGD's convention" in task.message, task.message


def test_a_network_that_never_applies_dropout_drawn_otherwise_loses_the_dropout_task(tmp_path):
    # Masks drawn otherwise than the reference's are as right; a network must still apply them.
    shipped = a1()
    layers = (shipped.reference_directory / "layers.py").read_text()
    drawn = "mask = (np.random.rand(*x.shape) < p) / p"
    assert layers.count(drawn) == 1
    layers = layers.replace(drawn, "mask = (1 - np.random.rand(*x.shape) <= p) / p")
    models = (shipped.reference_directory / "models.py").read_text()
    for files, lost_tasks in (({"layers.py": layers}, set()),
                              ({"layers.py": layers, "models.py": models.replace("if self.use_dropout:", "if False:")},
                               {"fc_net.dropout"})):
        folder = make_submission(tmp_path / str(len(files)), shipped, "reference", files)
        result = grade_checks(shipped, folder, only="dropout*,fc_net.*", seed=None)
        assert result.tasks and lost(result) == lost_tasks, {t.task_id: t.message for t in result.tasks}


def test_a_network_seeding_each_dropout_layer_on_its_own_is_told_the_docstrings_one_seed(tmp_path):
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text()
    call = "hidden, dropout_cache = dropout_forward(hidden, self.dropout_param)"
    assert models.count(call) == 1
    own_seed = ("layer_param = dict(self.dropout_param)\n"
                "                if 'seed' in layer_param:\n"
                "                    layer_param['seed'] += i\n"
                "                hidden, dropout_cache = dropout_forward(hidden, layer_param)")
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models.replace(call, own_seed)})
    result = grade_checks(shipped, folder, only="fc_net.dropout,fc_net.loss", seed=None)
    assert lost(result) == {"fc_net.dropout"}, {t.task_id: t.message for t in result.tasks}
    message = next(t.message for t in result.tasks if t.task_id == "fc_net.dropout")
    assert "the docstring has every dropout layer use the seed given" in message and "seed + i" in message, message
    assert "its own task shows" not in message, message


def test_dropout_keeping_the_same_units_whatever_the_seed_loses_the_dropout_tasks(tmp_path):
    # The right fraction kept and scaled, always the first units: no dropout, though each value is right.
    shipped = a1()
    layers = (shipped.reference_directory / "layers.py").read_text()
    drawn = "mask = (np.random.rand(*x.shape) < p) / p"
    fixed = "mask = (np.arange(x.size).reshape(x.shape) < round(p * x.size)) / p"
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": layers.replace(drawn, fixed)})
    result = grade_checks(shipped, folder, only="dropout*,fc_net.dropout", seed=None)
    assert lost(result) == {"dropout.forward", "fc_net.dropout"}, {t.task_id: t.message for t in result.tasks}
    for task in result.tasks:
        if task.task_id != "dropout.backward":
            assert "keeps the same units whatever dropout_param['seed'] is" in task.message, task.message


def test_a_network_right_only_on_the_notebooks_inputs_loses_its_loss_task(tmp_path):
    # What a table of the public recordings can answer: the notebook's fixed inputs. Inputs drawn for
    # each grading are not in any table.
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text() + '''

_loss = FullyConnectedNet.loss


def _only_the_notebooks(self, X, y=None):
    if X.shape == (4, 15) and np.allclose(X, np.linspace(-3, 3, num=60).reshape(4, 15)):
        return _loss(self, X, y)
    return _loss(self, np.zeros_like(X), y)


FullyConnectedNet.loss = _only_the_notebooks
'''
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models})
    result = grade_checks(shipped, folder, only="fc_net.loss", seed=None)
    assert lost(result) == {"fc_net.loss"}, {t.task_id: t.message for t in result.tasks}


def test_weights_carried_in_the_source_are_named_for_a_person_to_read(tmp_path):
    # Trained elsewhere and pasted in (as a nested list, or encoded): nothing of the answers shows it.
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text()
    rows = ",\n".join("    [" + ", ".join(f"{(i * 7 + j) % 13 / 10:.3f}" for j in range(100)) + "]" for i in range(50))
    carried = models + f"\n\nPRETRAINED_W1 = [\n{rows}\n]\nPRETRAINED_B64 = '{'QUJD' * 20000}'\n"
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": carried})
    result = grade_checks(shipped, folder, only="two_layer_net.init", seed=None)
    assert "To read: models.py carries" in result.output and ": a list of 5,000 numbers" in result.output, result.output
    assert "a str of 80,000 characters" in result.output
    assert "To read" not in grade_checks(shipped, make_submission(tmp_path / "ref", shipped, "reference"),
                                         only="two_layer_net.init", seed=None).output


def test_the_network_without_dropout_is_named_as_it_is_built(tmp_path):
    # The dropout task compares the same network without dropout first; its name reads as a call.
    shipped = a1()
    models = (shipped.reference_directory / "models.py").read_text()
    line = 'grads[f"W{i}"] += self.reg * w'
    assert models.count(line) == 1
    folder = make_submission(tmp_path, shipped, "reference", {"models.py": models.replace(line, "pass")})
    result = grade_checks(shipped, folder, only="fc_net.dropout", seed=None)
    message = next(t.message for t in result.tasks if t.task_id == "fc_net.dropout")
    assert "of FullyConnectedNet(dropout_keep_ratio=1).loss" in message, message
    assert "without dropout.loss" not in message, message
