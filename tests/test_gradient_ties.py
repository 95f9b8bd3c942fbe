"""A backward pass scores only when it agrees with the reference, not merely with its own forward
pass; numeric probes cannot be told from ordinary calls; model gradients are compared for the
parameters of the contract, whatever the model says it has.

What these submissions earned before those rules (official grading, seed 1234, 88 points in all):
- the stubs with forward passes returning zeros of the right shape, backward passes returning zeros
  and a TwoLayerNet whose loss is a constant with zero gradients: 35 points, every backward and
  loss-gradient task but max_pool.backward (affine, relu, sigmoid, softmax_loss.gradient,
  svm_loss.gradient, dropout, batchnorm, batchnorm.backward_alt, layernorm, conv, spatial_batchnorm,
  spatial_groupnorm) and two_layer_net.gradients;
- the reference with forward passes that answer an input near one already seen as they answered
  that one, and zero backward passes: the same 12 layer tasks, 32 points;
- the reference with a TwoLayerNet whose `params` property keeps W2 out of sight: 3 points
  (two_layer_net.gradients), W2 never compared;
- a submission watching its calls: the call whose cache the backward pass got always came first,
  alone, and every step was exactly 1e-6.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from grader.checking.gradcheck import DEFAULT_TOLERANCE, STEP_FACTORS
from grader.results import Outcome
from support import a1, assignment, grade_checks, make_submission

GRADIENT_TASKS = {
    "affine.backward", "relu.backward", "sigmoid.backward", "softmax_loss.gradient", "svm_loss.gradient",
    "dropout.backward", "batchnorm.backward", "batchnorm.backward_alt", "layernorm.backward", "conv.backward",
    "max_pool.backward", "spatial_batchnorm.backward", "spatial_groupnorm.backward",
}
MODEL_GRADIENT_TASKS = {"two_layer_net.gradients"}

# Forward passes of the right shape that compute nothing, backward passes that return zeros.
ZERO_LAYERS = textwrap.dedent('''
    def _zeros_like_all(*arrays):
        return tuple(np.zeros_like(a) for a in arrays)

    def affine_forward(x, w, b):
        return np.zeros((x.shape[0], w.shape[1])), (x, w, b)

    def affine_backward(dout, cache):
        return _zeros_like_all(*cache)

    def relu_forward(x):
        return np.zeros_like(x), x

    def relu_backward(dout, cache):
        return np.zeros_like(cache)

    sigmoid_forward, sigmoid_backward = relu_forward, relu_backward

    def softmax_loss(x, y):
        return float(np.log(x.shape[1])), np.zeros_like(x)

    def svm_loss(x, y):
        return float(x.shape[1] - 1), np.zeros_like(x)

    def dropout_forward(x, dropout_param):
        return np.zeros_like(x), x

    dropout_backward = relu_backward

    def batchnorm_forward(x, gamma, beta, bn_param):
        return np.zeros_like(x), (x, gamma, beta)

    def batchnorm_backward(dout, cache):
        return _zeros_like_all(*cache)

    batchnorm_backward_alt = batchnorm_backward
    spatial_batchnorm_forward, spatial_batchnorm_backward = batchnorm_forward, batchnorm_backward
    layernorm_forward, layernorm_backward = batchnorm_forward, batchnorm_backward

    def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
        return np.zeros_like(x), (x, gamma, beta)

    spatial_groupnorm_backward = batchnorm_backward

    def conv_forward_naive(x, w, b, conv_param):
        stride, pad = conv_param["stride"], conv_param["pad"]
        H = 1 + (x.shape[2] + 2 * pad - w.shape[2]) // stride
        W = 1 + (x.shape[3] + 2 * pad - w.shape[3]) // stride
        return np.zeros((x.shape[0], w.shape[0], H, W)), (x, w, b)

    conv_backward_naive = affine_backward

    def max_pool_forward_naive(x, pool_param):
        height, width, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        H, W = 1 + (x.shape[2] - height) // stride, 1 + (x.shape[3] - width) // stride
        return np.zeros((*x.shape[:2], H, W)), x

    max_pool_backward_naive = relu_backward
''')

# A two-layer network whose loss is log C whatever its parameters, with zero gradients.
CONSTANT_MODEL = textwrap.dedent('''
    class TwoLayerNet(TwoLayerNet):
        def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0):
            self.params = {"W1": np.zeros((input_dim, hidden_dim)), "b1": np.zeros(hidden_dim),
                           "W2": np.zeros((hidden_dim, num_classes)), "b2": np.zeros(num_classes)}

        def loss(self, X, y=None):
            scores = np.zeros((X.shape[0], self.params["W2"].shape[1]))
            if y is None:
                return scores
            return float(np.log(scores.shape[1])), {k: np.zeros_like(v) for k, v in self.params.items()}
''')

# The reference's forward passes, except that an input within a tiny distance of one already seen
# gets the output of the one seen: every central difference is then 0, which a zero backward matches.
PROBE_DETECTING_LAYERS = textwrap.dedent('''
    _seen = []

    def _arrays(args):
        return [np.array(a, copy=True) for a in args if isinstance(a, np.ndarray)]

    def _near(earlier, arrays):
        if [a.shape for a in earlier] != [a.shape for a in arrays]:
            return False
        distance = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(earlier, arrays))
        return 0 < distance < 1e-3

    def _recognising(forward):
        def wrapped(*args):
            arrays = _arrays(args)
            for earlier, answer in _seen:
                if _near(earlier, arrays):
                    return answer
            answer = forward(*args)
            _seen.append((arrays, answer))
            del _seen[:-200]
            return answer
        return wrapped

    def _zero_backward(backward):
        def wrapped(dout, cache):
            grads = backward(dout, cache)
            if isinstance(grads, tuple):
                return tuple(np.zeros_like(g) for g in grads)
            return np.zeros_like(grads)
        return wrapped

    _layers = [n for n in dir() if not n.startswith("_")]
    for _name in [n for n in _layers if n.endswith(("_forward", "_forward_naive"))]:
        globals()[_name] = _recognising(globals()[_name])
    for _name in [n for n in _layers if "_backward" in n]:
        globals()[_name] = _zero_backward(globals()[_name])

    def _zero_gradient_loss(loss):
        recognising = _recognising(lambda x, y: loss(x, y))
        def wrapped(x, y):
            value, dx = recognising(x, y)
            return value, np.zeros_like(dx)
        return wrapped

    softmax_loss, svm_loss = _zero_gradient_loss(softmax_loss), _zero_gradient_loss(svm_loss)
''')

# Models whose loss uses W2 while `params` does not show it (a property that moves it away, a dict
# whose keys() leave it out) or shows it under another name; grads leaves it out or renames it too.
_REFERENCE_LOSS = textwrap.dedent('''
    _Reference = TwoLayerNet

    def _reference_loss(model, params, X, y, shown):
        """The reference's loss on `params`, with each gradient under the name `shown` gives it (None:
        left out)."""
        shim = object.__new__(_Reference)
        shim.__dict__.update({k: v for k, v in model.__dict__.items() if not k.startswith("_")})
        shim.__dict__["params"] = params
        result = _Reference.loss(shim, X, y)
        if y is None:
            return result
        loss, grads = result
        return loss, {shown(k): v for k, v in grads.items() if shown(k) is not None}

    def _without_w2(name):
        return None if name == "W2" else name
''')

PARAMETER_TRICKS = {
    "a property moving it away": _REFERENCE_LOSS + textwrap.dedent('''
        class TwoLayerNet(_Reference):
            @property
            def params(self):
                shown = self.__dict__.setdefault("_shown", {})
                if "W2" in shown:
                    self.__dict__["_w2"] = shown.pop("W2")
                return shown

            @params.setter
            def params(self, value):
                self.__dict__["_shown"] = value

            def loss(self, X, y=None):
                return _reference_loss(self, dict(self.params, W2=self._w2), X, y, _without_w2)
    '''),
    "a dict whose keys() leave it out": _REFERENCE_LOSS + textwrap.dedent('''
        class _Hiding(dict):
            def keys(self):
                return [k for k in dict.keys(self) if k != "W2"]
            def __iter__(self):
                return iter(self.keys())
            def items(self):
                return [(k, self[k]) for k in self.keys()]

        class TwoLayerNet(_Reference):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.params = _Hiding(self.params)

            def loss(self, X, y=None):
                return _reference_loss(self, dict(dict.items(self.params)), X, y, _without_w2)
    '''),
    "another name": _REFERENCE_LOSS + textwrap.dedent('''
        class TwoLayerNet(_Reference):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.params["W_2"] = self.params.pop("W2")

            def loss(self, X, y=None):
                params = {("W2" if k == "W_2" else k): v for k, v in self.params.items()}
                return _reference_loss(self, params, X, y, lambda k: "W_2" if k == "W2" else k)
    '''),
}


# affine_forward records every input; affine_backward finds, from its cache (x, w, b), where the call it
# belongs to came among them and how far the nearest other input lay, and says so in an exception.
PROBE_WATCHING_LAYERS = textwrap.dedent('''
    _inputs = []
    _affine_forward = affine_forward

    def affine_forward(x, w, b):
        _inputs.append([np.array(a, copy=True) for a in (x, w, b)])
        return _affine_forward(x, w, b)

    def affine_backward(dout, cache):
        distances = [max(float(np.max(np.abs(a - c))) for a, c in zip(seen, cache)) for seen in _inputs]
        position, count = distances.index(0.0), len(_inputs)
        step = min(d for d in distances if d > 0)
        _inputs.clear()
        raise RuntimeError(f"at {position} of {count}; step {step!r}")
''')


def _submission(tmp_path, base, replacements):
    shipped = a1()
    source = shipped.reference_directory if base == "reference" else shipped.directory
    texts = {name: (source / name).read_text() + extra for name, extra in replacements.items()}
    return shipped, make_submission(tmp_path / "submission", shipped, base, texts)


def _earned(result, tasks):
    return {t.task_id for t in result.tasks if t.task_id in tasks and t.points > 0}


def test_zero_forward_and_backward_passes_earn_no_gradient_task(tmp_path):
    shipped, folder = _submission(tmp_path, "stubs", {"layers.py": ZERO_LAYERS, "models.py": CONSTANT_MODEL})
    tasks = GRADIENT_TASKS | MODEL_GRADIENT_TASKS
    result = grade_checks(shipped, folder, only=",".join(sorted(tasks)))
    assert _earned(result, tasks) == set()
    affine = next(t for t in result.tasks if t.task_id == "affine.backward")
    # The message names the forward pass to fix, not a confusing backward failure.
    assert affine.outcome is Outcome.FAILED and "affine_forward" in affine.message
    assert "reference" in affine.message


def test_a_forward_pass_that_recognises_probes_earns_no_gradient_task(tmp_path):
    shipped, folder = _submission(tmp_path, "reference", {"layers.py": PROBE_DETECTING_LAYERS})
    result = grade_checks(shipped, folder, only=",".join(sorted(GRADIENT_TASKS)))
    assert _earned(result, GRADIENT_TASKS) == set()


def test_probes_arrive_in_no_telling_order_with_steps_drawn_per_check(tmp_path):
    shipped, folder = _submission(tmp_path, "reference", {"layers.py": PROBE_WATCHING_LAYERS})
    positions, steps = [], []
    for seed in (1, 2, 3):
        result = grade_checks(shipped, folder, only="affine.backward", seed=seed, hints=False)
        for check in result.tasks[0].checks:
            if "costs_about" in check.name:  # one forward pass, no probes: the cost of the backward pass
                continue
            found = re.search(r"at (\d+) of (\d+); step (\S+)", check.message)
            assert found, check.message
            positions.append(int(found.group(1)))
            steps.append(float(found.group(3)))
    # The call whose cache the backward pass gets is not always the first (or the last) of its batch.
    assert len(set(positions)) > 3 and positions.count(0) < len(positions) / 2
    assert len(set(steps)) == len(steps)
    low, high = (DEFAULT_TOLERANCE.step * f for f in STEP_FACTORS)
    assert all(low * 0.99 <= s <= high * 1.01 for s in steps), steps


@pytest.mark.parametrize("trick", list(PARAMETER_TRICKS))
def test_a_model_hiding_a_parameter_fails_naming_it(tmp_path, trick):
    shipped, folder = _submission(tmp_path, "reference", {"models.py": PARAMETER_TRICKS[trick]})
    result = grade_checks(shipped, folder, only="two_layer_net.gradients")
    [task] = result.tasks
    assert task.points == 0 and task.outcome is Outcome.FAILED, task.message
    assert "'W2'" in task.message, task.message
    if trick == "another name":
        assert "W_2" in task.message, task.message


@pytest.mark.parametrize("trick", list(PARAMETER_TRICKS))
def test_each_hiding_model_computes_the_reference_loss(tmp_path, trick):
    """Teeth for the test above: with its parameters set by their documented names, each model's
    scores and loss are the reference's, so only the gradient check can tell."""
    shipped, folder = _submission(tmp_path, "reference", {"models.py": PARAMETER_TRICKS[trick]})
    result = grade_checks(shipped, folder, only="two_layer_net.loss")
    assert result.tasks[0].points == result.tasks[0].max_points, result.tasks[0].message


# Dropout masks drawn otherwise than the reference draws them, as the contract allows (the seed fixes
# the generator, not how the mask is drawn from it): from the same uniform draws u, u > 1 - p keeps
# other units than u < p, so the networks with dropout cannot be compared with the reference's.
OWN_MASKS = {
    "a1_fc_numpy": ("mask = (np.random.rand(*x.shape) < p) / p", "mask = (np.random.rand(*x.shape) > 1 - p) / p"),
    "a2_cnn_torch": ("keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= p",
                     "keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) < 1 - p"),
}


@pytest.mark.parametrize("assignment_id", list(OWN_MASKS))
def test_dropout_drawing_its_own_masks_loses_nothing(tmp_path, assignment_id):
    shipped = assignment(assignment_id)
    old, new = OWN_MASKS[assignment_id]
    text = (shipped.reference_directory / "layers.py").read_text()
    assert text.count(old) == 1
    folder = make_submission(tmp_path / "submission", shipped, "reference", {"layers.py": text.replace(old, new)})
    result = grade_checks(shipped, folder, only="dropout.*,fc_net.dropout", hints=False)
    assert {t.task_id: t.points for t in result.tasks} == {t.task_id: t.max_points for t in result.tasks}, [
        t.message for t in result.tasks if t.points < t.max_points]
