"""A correct a2_cnn_torch submission never loses a point to a case its docstrings leave open, and one
that follows another course's convention is told which: students' own code, written as EECS 498
students write it (loops, in-place updates, other names), each beside a wrong version that the same
check fails, so that every defence can be seen to bite."""

import re

import pytest

from mutants_a1 import student_version
from support import assignment, grade_checks, hints_shown, lost, make_submission

A2 = "a2_cnn_torch"


def student_method(source_text: str, owner: str, method: str, body: str, fence: int = 0) -> str:
    """The reference source with the code between `owner.method`'s `fence`-th `# BEGIN YOUR CODE` and
    `# END YOUR CODE` replaced by `body`, written flush left. `owner` is a class, or "" for a function
    at module level."""
    return student_version(source_text, method, body, fence, owner=owner)


def reference_text(file: str) -> str:
    return (assignment(A2).reference_directory / file).read_text()


def grade_files(tmp_path, files: dict[str, str], only=None):
    shipped = assignment(A2)
    return grade_checks(shipped, make_submission(tmp_path, shipped, "reference", files), only=only, seed=None)


def messages(result) -> str:
    return "\n".join(f"{t.task_id}: {t.message}\n{t.detail}" for t in result.tasks if t.points < t.max_points)


# -- max pooling: any one maximum of a window may take its gradient ----------------------------------

POOL_BACKWARD_LOOPS = """
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape
    dx = torch.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    {route}
"""
LAST_MAXIMUM = """best, best_r, best_s = None, 0, 0
                    for r in range(ph):
                        for s in range(pw):
                            if best is None or window[r, s] >= best:  # >=: a later tie wins
                                best, best_r, best_s = window[r, s], r, s
                    dx[n, c, i * stride + best_r, j * stride + best_s] += dout[n, c, i, j]"""
EVERY_MAXIMUM = """dx[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw] += (
                        (window == window.max()) * dout[n, c, i, j])"""


def test_max_pool_routing_ties_to_the_last_maximum_scores_full(tmp_path):
    layers = student_method(reference_text("layers.py"), "MaxPool", "backward",
                            POOL_BACKWARD_LOOPS.replace("{route}", LAST_MAXIMUM))
    result = grade_files(tmp_path, {"layers.py": layers}, only="max_pool.*")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_max_pool_routing_ties_to_every_maximum_fails_saying_one(tmp_path):
    layers = student_method(reference_text("layers.py"), "MaxPool", "backward",
                            POOL_BACKWARD_LOOPS.replace("{route}", EVERY_MAXIMUM))
    result = grade_files(tmp_path, {"layers.py": layers}, only="max_pool.backward")
    assert lost(result) == {"max_pool.backward"}, f"seed {result.seed}"
    assert "exactly one of its maxima" in result.tasks[0].message


# -- ThreeLayerConvNet: the padding keeps the size (odd filter sizes) --------------------------------

THREE_LAYER_INIT = """
    C, H, W = input_dims
    F = num_filters
    self.params["W1"] = weight_scale * torch.randn(F, C, filter_size, filter_size, dtype=dtype, device=device)
    self.params["b1"] = torch.zeros(F, dtype=dtype, device=device)
    # the convolution keeps H x W, the pooling halves it
    self.params["W2"] = weight_scale * torch.randn({flattened}, hidden_dim, dtype=dtype, device=device)
    self.params["b2"] = torch.zeros(hidden_dim, dtype=dtype, device=device)
    self.params["W3"] = weight_scale * torch.randn(hidden_dim, num_classes, dtype=dtype, device=device)
    self.params["b3"] = torch.zeros(num_classes, dtype=dtype, device=device)
"""


def test_three_layer_convnet_assuming_the_padding_keeps_the_size_scores_full(tmp_path):
    models = student_method(reference_text("models.py"), "ThreeLayerConvNet", "__init__",
                            THREE_LAYER_INIT.replace("{flattened}", "F * (H // 2) * (W // 2)"))
    result = grade_files(tmp_path, {"models.py": models}, only="three_layer_convnet.*")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_three_layer_convnet_forgetting_the_pooling_fails(tmp_path):
    models = student_method(reference_text("models.py"), "ThreeLayerConvNet", "__init__",
                            THREE_LAYER_INIT.replace("{flattened}", "F * H * W"))
    result = grade_files(tmp_path, {"models.py": models}, only="three_layer_convnet.init")
    assert lost(result) == {"three_layer_convnet.init"}, f"seed {result.seed}"


# -- Linear's x is contiguous; the other layers' x may be a view --------------------------------------

def test_linear_flattening_with_view_scores_full(tmp_path):
    layers = student_method(reference_text("layers.py"), "Linear", "forward", """
        N = x.shape[0]
        out = x.view(N, -1).mm(w) + b.view(1, -1)
        cache = (x, w, b)
    """)
    result = grade_files(tmp_path, {"layers.py": layers})
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_relu_flattening_a_view_with_view_fails_naming_the_view(tmp_path):
    layers = student_method(reference_text("layers.py"), "ReLU", "forward", """
        flat = x.view(-1)
        out = torch.where(flat > 0, flat, torch.zeros_like(flat)).view(x.shape)
        cache = x
    """)
    result = grade_files(tmp_path, {"layers.py": layers}, only="relu.forward")
    assert lost(result) == {"relu.forward"}, f"seed {result.seed}"
    assert "view" in messages(result)


# -- in place: an error only where it breaks the caller -----------------------------------------------

def test_a_convolution_forward_pass_returning_float32_is_named_as_why_its_backward_is_not_graded(tmp_path):
    # `torch.empty(shape)` takes the default dtype: the forward pass's values are right to float32, too
    # coarse for central differences; the backward pass is not graded, saying why, instead of failing
    # with the error a float32 dout raises in a right backward pass.
    text = reference_text("layers.py")
    wrong = text.replace("out = torch.empty((N, F, out_h, out_w), dtype=x.dtype, device=x.device)",
                         "out = torch.empty((N, F, out_h, out_w), device=x.device)")
    assert wrong != text
    result = grade_files(tmp_path, {"layers.py": wrong}, only="conv.*")
    assert lost(result) == {"conv.forward", "conv.backward"}, messages(result)
    backward = next(t for t in result.tasks if t.task_id == "conv.backward")
    assert backward.message.startswith("Conv.backward: not graded, because Conv.forward disagrees"), backward.message
    assert "expected dtype float64 (the input's), got float32" in backward.message


def test_a_relu_that_zeroes_its_input_in_place_scores_full(tmp_path):
    layers = student_method(reference_text("layers.py"), "ReLU", "forward", """
        x[x < 0] = 0
        out = x
        cache = x
    """)
    layers = student_method(layers, "ReLU", "backward", """
        x = cache
        dout[x <= 0] = 0
        dx = dout
    """)
    result = grade_files(tmp_path, {"layers.py": layers}, only="*relu*")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_a_forward_pass_that_changes_a_parameter_in_place_fails_naming_it(tmp_path):
    layers = student_method(reference_text("layers.py"), "Conv", "forward", """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        H_out = 1 + (H + 2 * pad - HH) // stride
        W_out = 1 + (W + 2 * pad - WW) // stride
        x_pad = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        out = torch.zeros((N, F, H_out, W_out), dtype=x.dtype, device=x.device)
        w *= 1 + 1e-3  # changes the caller's filters
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                        out[n, f, i, j] = (window * w[f] / (1 + 1e-3)).sum() + b[f]
        cache = (x, w / (1 + 1e-3), b, conv_param)
    """)
    result = grade_files(tmp_path, {"layers.py": layers}, only="conv.forward")
    assert lost(result) == {"conv.forward"}, f"seed {result.seed}"
    assert "changed w in place" in result.tasks[0].message


def test_a_forward_pass_that_changes_what_its_backward_pass_reads_fails_saying_so(tmp_path):
    layers = student_method(reference_text("layers.py"), "BatchNorm", "forward", """
        if mode == "train":
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            x -= mean  # x is centred in place, and then cached as if it were the input
            x_hat = x / torch.sqrt(var + eps)
            out = gamma * x_hat + beta
            cache = (x, mean, var, gamma, eps)
            running_mean = momentum * running_mean + (1 - momentum) * mean
            running_var = momentum * running_var + (1 - momentum) * var
        else:
            out = gamma * (x - running_mean) / torch.sqrt(running_var + eps) + beta
    """)
    backward = """
        x, mean, var, gamma, eps = cache
        N = x.shape[0]
        x_hat = {x_hat}
        dbeta = dout.sum(dim=0)
        dgamma = (dout * x_hat).sum(dim=0)
        dx_hat = dout * gamma
        dx = (N * dx_hat - dx_hat.sum(dim=0) - x_hat * (dx_hat * x_hat).sum(dim=0)) / (N * torch.sqrt(var + eps))
    """
    # backward reads x as the input, backward_alt knows that the cache holds x - mean: only the first breaks.
    layers = student_method(layers, "BatchNorm", "backward",
                            backward.replace("{x_hat}", "(x - mean) / torch.sqrt(var + eps)"))
    layers = student_method(layers, "BatchNorm", "backward_alt",
                            backward.replace("{x_hat}", "x / torch.sqrt(var + eps)"))
    result = grade_files(tmp_path, {"layers.py": layers}, only="batchnorm.*")
    assert lost(result) == {"batchnorm.backward"}, f"seed {result.seed}: {messages(result)}"
    assert "in place" in messages(result)


IN_PLACE_OPTIMIZERS = {
    "sgd": """
        w -= config["learning_rate"] * dw
        next_w = w
    """,
    "sgd_momentum": """
        v = config["velocity"]
        v.mul_(config["momentum"]).sub_(config["learning_rate"] * dw)
        w += v
        next_w = w
    """,
    "rmsprop": """
        cache = config["cache"]
        cache.mul_(config["decay_rate"]).add_((1 - config["decay_rate"]) * dw * dw)
        w -= config["learning_rate"] * dw / (cache.sqrt() + config["epsilon"])
        next_w = w
    """,
    "adam": """
        config["t"] += 1
        t = config["t"]
        m, v = config["m"], config["v"]
        m.mul_(config["beta1"]).add_((1 - config["beta1"]) * dw)
        v.mul_(config["beta2"]).add_((1 - config["beta2"]) * dw * dw)
        w -= config["learning_rate"] * (m / (1 - config["beta1"] ** t)) / (
            torch.sqrt(v / (1 - config["beta2"] ** t)) + config["epsilon"])
        next_w = w
    """,
}


@pytest.mark.parametrize("rule", sorted(IN_PLACE_OPTIMIZERS))
def test_an_optimizer_updating_w_and_its_state_in_place_scores_full(tmp_path, rule):
    optim = student_method(reference_text("optim.py"), "", rule, IN_PLACE_OPTIMIZERS[rule])
    result = grade_files(tmp_path, {"optim.py": optim}, only=f"optim.{rule}")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_an_optimizer_updating_w_in_place_the_wrong_way_fails(tmp_path):
    optim = student_method(reference_text("optim.py"), "", "sgd", """
        w += config["learning_rate"] * dw
        next_w = w
    """)
    result = grade_files(tmp_path, {"optim.py": optim}, only="optim.sgd")
    assert lost(result) == {"optim.sgd"}, f"seed {result.seed}"


# -- the L2 convention: reg * sum(W**2) here, 0.5 * reg * sum(W**2) in CS231n --------------------------

FC_FORWARD = """
    self.caches = []
    out = X
    for i in range(1, self.num_layers):
        out, cache = Linear_ReLU.forward(out, self.params["W%d" % i], self.params["b%d" % i])
        self.caches.append(cache)
        if self.use_dropout:
            out, cache = Dropout.forward(out, self.dropout_param)
            self.caches.append(cache)
    L = self.num_layers
    scores, cache = Linear.forward(out, self.params["W%d" % L], self.params["b%d" % L])
    self.caches.append(cache)
"""
FC_BACKWARD = """
    loss, dout = softmax_loss(scores, y)
    for i in range(1, self.num_layers + 1):
        W = self.params["W%d" % i]
        loss += {half}self.reg * torch.sum(W * W)
    L = self.num_layers
    dout, grads["W%d" % L], grads["b%d" % L] = Linear.backward(dout, self.caches.pop())
    grads["W%d" % L] += {two}self.reg * self.params["W%d" % L]
    for i in range(L - 1, 0, -1):
        if self.use_dropout:
            dout = Dropout.backward(dout, self.caches.pop())
        dout, grads["W%d" % i], grads["b%d" % i] = Linear_ReLU.backward(dout, self.caches.pop())
        grads["W%d" % i] += {two}self.reg * self.params["W%d" % i]
"""
CONVENTION = "your loss uses 0.5 * reg * sum(W**2); this assignment uses reg * sum(W**2)"


def fc_net(half: bool) -> str:
    models = student_method(reference_text("models.py"), "FullyConnectedNet", "loss", FC_FORWARD, fence=0)
    return student_method(models, "FullyConnectedNet", "loss", FC_BACKWARD.replace("{half}", "0.5 * " if half else "")
                          .replace("{two}", "" if half else "2 * "), fence=1)


def test_fc_net_with_this_assignments_l2_term_scores_full(tmp_path):
    result = grade_files(tmp_path, {"models.py": fc_net(half=False)}, only="fc_net.*")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_fc_net_with_cs231n_l2_term_fails_naming_the_convention(tmp_path):
    result = grade_files(tmp_path, {"models.py": fc_net(half=True)}, only="fc_net.*")
    assert lost(result) == {"fc_net.loss", "fc_net.gradients", "fc_net.dropout"}, f"seed {result.seed}"
    for task in result.tasks:
        if task.task_id in lost(result):
            assert CONVENTION in task.message, f"{task.task_id}: {task.message}"


def test_a_regularized_bias_is_not_taken_for_the_other_convention(tmp_path):
    models = reference_text("models.py")
    snippet = "loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum())"
    assert models.count(snippet) == 1
    models = models.replace(snippet, snippet + ' + self.reg * (self.params["b1"] ** 2).sum()')
    result = grade_files(tmp_path, {"models.py": models}, only="two_layer_net.loss")
    assert lost(result) == {"two_layer_net.loss"}, f"seed {result.seed}"
    assert "0.5 * reg" not in result.tasks[0].message


# -- parameter names: the documented ones, or a message listing both ----------------------------------

def renamed(source_text: str, owner: str, names: dict[str, str]) -> str:
    """`owner`'s class in the reference with its parameters stored under other names: every
    `self.params[...]` key (and the grads keys) rewritten by `names`, a pattern -> replacement map."""
    start = source_text.index(f"class {owner}:")
    end = source_text.find("\nclass ", start + 1)
    end = len(source_text) if end < 0 else end
    body = source_text[start:end]
    for pattern, replacement in names.items():
        body = re.sub(pattern, replacement, body)
    return source_text[:start] + body + source_text[end:]


def test_three_layer_convnet_with_its_own_parameter_names_is_told_both_lists(tmp_path):
    names = {r'\["W1"\]': '["Conv1.w"]', r'\["b1"\]': '["Conv1.b"]', r'\["W2"\]': '["FC1.w"]',
             r'\["b2"\]': '["FC1.b"]', r'\["W3"\]': '["FC2.w"]', r'\["b3"\]': '["FC2.b"]'}
    result = grade_files(tmp_path, {"models.py": renamed(reference_text("models.py"), "ThreeLayerConvNet", names)},
                         only="three_layer_convnet.*")
    assert lost(result) == {"three_layer_convnet.init", "three_layer_convnet.loss", "three_layer_convnet.gradients"}
    for task in result.tasks:
        assert "W1, b1, W2, b2, W3, b3" in task.message and "Conv1.w" in task.message, task.message
        assert "scores" not in task.message.split(";")[0], task.message


def test_deep_convnet_counting_layers_from_zero_is_told_the_names_not_the_pooling(tmp_path):
    names = {r'f"(W|b|gamma|beta)\{i\}"': r'f"\1{i - 1}"', r'f"(W|b)\{L\}"': r'f"\1{L - 1}"'}
    result = grade_files(tmp_path, {"models.py": renamed(reference_text("models.py"), "DeepConvNet", names)},
                         only="deep_convnet.*")
    assert lost(result) == {"deep_convnet.init", "deep_convnet.loss", "deep_convnet.gradients",
                            "deep_convnet.batchnorm"}, f"seed {result.seed}"
    for task in result.tasks:
        assert "expected the parameter names W1, b1" in task.message and "W0" in task.message, task.message
        assert hints_shown(result, task.task_id) == set()



def test_models_keeping_their_parameters_in_an_ordered_dict_score_full(tmp_path):
    models = reference_text("models.py")
    assert models.count("self.params = {}") == 4
    models = "from collections import OrderedDict\n" + models.replace("self.params = {}", "self.params = OrderedDict()")
    result = grade_files(tmp_path, {"models.py": models},
                         only="two_layer_net.*,fc_net.*,three_layer_convnet.*,deep_convnet.*")
    assert result.tasks and lost(result) == set(), f"seed {result.seed}: {messages(result)}"


def test_parameters_in_a_dict_of_its_own_class_are_named_by_that_class(tmp_path):
    models = reference_text("models.py")
    models = ("class Parameters(dict):\n    pass\n\n\n"
              + models.replace("self.params = {}", "self.params = Parameters()", 1))
    result = grade_files(tmp_path, {"models.py": models}, only="two_layer_net.init")
    assert lost(result) == {"two_layer_net.init"}, f"seed {result.seed}"
    assert "got Parameters" in result.tasks[0].message and "Remote" not in result.tasks[0].message


# -- batch normalization: the running averages stored by the student's code or by the provided lines --

def test_batchnorm_storing_its_running_averages_in_bn_param_itself_scores_full(tmp_path):
    reference = reference_text("layers.py")
    direct = reference.replace(
        "running_mean = momentum * running_mean + (1 - momentum) * mean",
        'bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean', 1).replace(
        "running_var = momentum * running_var + (1 - momentum) * var",
        'bn_param["running_var"] = momentum * running_var + (1 - momentum) * var', 1)
    assert direct.count('bn_param["running_mean"] = momentum') == 1
    result = grade_files(tmp_path, {"layers.py": direct}, only="batchnorm.*,spatial_batchnorm.*")
    assert result.tasks and lost(result) == set(), f"seed {result.seed}: {messages(result)}"
    forgetting = reference.replace("running_mean = momentum * running_mean + (1 - momentum) * mean", "pass", 1)
    result = grade_files(tmp_path / "forgetting", {"layers.py": forgetting}, only="batchnorm.forward")
    assert lost(result) == {"batchnorm.forward"}, f"seed {result.seed}"


# -- an init task grades __init__, whatever the state of loss ------------------------------------------

def test_a_model_whose_loss_is_not_written_yet_keeps_its_init_points(tmp_path):
    # The init tasks grade what __init__'s docstring states; the loss is the loss tasks' business, so
    # a loss that only returns log 10 (the loss of a fresh model) gains nothing over an unwritten one.
    models = reference_text("models.py")
    unwritten = models
    for owner in ("TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet"):
        unwritten = student_method(unwritten, owner, "loss", 'raise NotImplementedError("loss")')
    tasks = "two_layer_net.init,fc_net.init,three_layer_convnet.init,two_layer_net.loss"
    result = grade_files(tmp_path, {"models.py": unwritten}, only=tasks)
    assert lost(result) == {"two_layer_net.loss"}, f"seed {result.seed}: {messages(result)}"
    no_bias = models.replace('self.params["b1"] = torch.zeros(hidden_dim, **like)',
                             'self.params["b1"] = torch.ones(hidden_dim, **like)', 1)
    assert no_bias != models
    result = grade_files(tmp_path / "ones", {"models.py": no_bias}, only="two_layer_net.init")
    assert lost(result) == {"two_layer_net.init"}, f"seed {result.seed}"


# -- dropout: p is the probability of dropping a unit here, of keeping one in CS231n ------------------

def test_dropout_with_cs231n_keep_probability_fails_naming_the_convention(tmp_path):
    layers = student_method(reference_text("layers.py"), "Dropout", "forward", """
        if mode == "train":
            mask = (torch.rand(*x.shape, dtype=x.dtype, device=x.device) < p) / p
            out = x * mask
        else:
            out = x
    """)
    result = grade_files(tmp_path, {"layers.py": layers}, only="dropout.forward")
    assert lost(result) == {"dropout.forward"}, f"seed {result.seed}"
    assert "treats p as the probability of keeping a unit (CS231n's convention)" in result.tasks[0].message


BERNOULLI_DROPOUT = """
    if mode == "train":
        mask = torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)
        out = x * mask
    else:
        out = x
"""


FIXED_PATTERN_DROPOUT = """
    if mode == "train":
        keep = torch.zeros(x.numel(), dtype=x.dtype, device=x.device)
        keep[:round((1 - p) * x.numel())] = 1
        mask = keep.reshape(x.shape) / (1 - p)
        out = x * mask
    else:
        out = x
"""


def test_a_dropout_keeping_the_same_units_whatever_the_seed_loses_the_dropout_tasks(tmp_path):
    # The right fraction kept and scaled, always the first units: no dropout, though each value is right.
    layers = student_method(reference_text("layers.py"), "Dropout", "forward", FIXED_PATTERN_DROPOUT)
    result = grade_files(tmp_path, {"layers.py": layers}, only="dropout.*,fc_net.dropout")
    assert lost(result) == {"dropout.forward", "fc_net.dropout"}, messages(result)
    assert "keeps the same units whatever dropout_param['seed'] is" in messages(result)


def test_a_network_on_a_dropout_drawing_other_masks_scores_full(tmp_path):
    # Other masks than the reference's (as right): the network's loss is computed with its own.
    layers = student_method(reference_text("layers.py"), "Dropout", "forward", BERNOULLI_DROPOUT)
    result = grade_files(tmp_path, {"layers.py": layers}, only="dropout.*,fc_net.*")
    assert result.tasks and lost(result) == set(), f"seed {result.seed}: {messages(result)}"


@pytest.mark.parametrize("mode, words", [
    ("official", "the loss of the network with the units its own masks keep"),
    ("public", "its dropout layers change nothing"),  # no reference for masks it could not record
])
def test_a_network_that_never_applies_its_other_masks_loses_the_dropout_task(tmp_path, mode, words):
    layers = student_method(reference_text("layers.py"), "Dropout", "forward", BERNOULLI_DROPOUT)
    models = reference_text("models.py")
    assert models.count("if self.use_dropout:") == 4
    models = models.replace("if self.use_dropout:", "if False:")
    shipped = assignment(A2)
    folder = make_submission(tmp_path, shipped, "reference", {"layers.py": layers, "models.py": models})
    result = grade_checks(shipped, folder, only="dropout.*,fc_net.*", mode=mode, seed=None)
    assert lost(result) == {"fc_net.dropout"}, f"seed {result.seed}: {messages(result)}"
    message = next(t.message for t in result.tasks if t.task_id == "fc_net.dropout")
    assert words in message, message


def test_dropout_dropping_with_probability_p_written_with_bernoulli_scores_full(tmp_path):
    layers = student_method(reference_text("layers.py"), "Dropout", "forward", """
        if mode == "train":
            mask = torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)
            out = x * mask
        else:
            out = x
    """)
    result = grade_files(tmp_path, {"layers.py": layers}, only="dropout.*")
    assert lost(result) == set(), f"seed {result.seed}: {messages(result)}"


# -- autograd where the backward passes are written by hand: said for a person to read -------------------

AUTOGRAD_LINEAR_BACKWARD = """
x, w, b = cache
with torch.enable_grad():
    x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
    out = x.reshape(x.shape[0], -1).mm(w) + b
    dx, dw, db = torch.autograd.grad(out, (x, w, b), dout)
"""


def test_a_backward_pass_that_asks_autograd_is_named_for_a_person_to_read(tmp_path):
    # Its values are right, and no answer can tell how they were computed: the grade stands, and the
    # result says where the code reaches autograd, as the reference's own code never does.
    layers = student_method(reference_text("layers.py"), "Linear", "backward", AUTOGRAD_LINEAR_BACKWARD)
    result = grade_files(tmp_path, {"layers.py": layers}, only="linear.*")
    assert lost(result) == set(), messages(result)
    assert "To read: layers.py reaches autograd in code of its own (Linear.backward (line" in result.output
    assert ".enable_grad" in result.output and ".autograd" in result.output
    reference = grade_files(tmp_path / "reference", {}, only="linear.*")
    assert "To read:" not in reference.output


@pytest.mark.parametrize("code,named", [
    ("p = torch.nn.Parameter(x)\nf(p).backward(dout)\ndx = p.grad", ".Parameter"),
    ("from torch.func import vjp as V\ndx = V(f, x)[1](dout)", "from torch.func import"),
    ("setattr(x, 'requires_' + 'grad', True)", "setattr of a name computed as it runs"),
    ("engine = getattr(torch, 'autograd')", "getattr('autograd')"),
    ("x.requires_grad = True", ".requires_grad ="),
    ("x = torch.ones(3, **{'requires_grad': True})", "'requires_grad' as a key"),
])
def test_the_ways_code_reaches_autograd_are_named(code, named):
    from grader.engine.source_review import autograd_uses

    source = "def backward(dout, cache):\n" + "".join(f"    {line}\n" for line in code.splitlines())
    assert any(named in use for use in autograd_uses(source, {})), autograd_uses(source, {})


def test_code_that_only_turns_autograd_off_is_not_named():
    from grader.engine.source_review import autograd_uses

    source = ("def forward(x):\n    out = torch.zeros(3, requires_grad=False)\n    assert not x.requires_grad\n"
              "    x.requires_grad = False\n    with torch.set_grad_enabled(False):\n        out = out + 1\n"
              "    x.requires_grad_(False)\n    out = torch.ones(3, **{'requires_grad': False})\n    return out\n")
    assert autograd_uses(source, {}) == []


# -- softmax: log of torch.softmax is stable in dx, not in the loss ---------------------------------

SOFTMAX_THEN_LOG = """
probs = torch.softmax(x, dim=1)
N = x.shape[0]
loss = -torch.log(probs[torch.arange(N), y]).mean()
dx = probs.clone()
dx[torch.arange(N), y] -= 1
dx /= N
"""


def test_log_of_torch_softmax_is_told_of_the_log_not_of_subtracting_the_maximum(tmp_path):
    # torch.softmax subtracts the row's maximum itself: dx is right for huge scores, and only the log of
    # probabilities that underflow to 0 makes the loss inf. Advice to subtract the maximum would not help.
    layers = student_version(reference_text("layers.py"), "softmax_loss", SOFTMAX_THEN_LOG)
    result = grade_files(tmp_path, {"layers.py": layers}, only="softmax_loss.*")
    assert lost(result) == {"softmax_loss.loss"}, messages(result)
    message = next(t.message for t in result.tasks if t.task_id == "softmax_loss.loss")
    assert "though dx is right" in message and "log_softmax" in message, message
    assert "subtract each row's maximum before" not in message, message


# -- optimizers written as other course materials write them -------------------------------------------

OPTIMIZER_CONVENTIONS = [
    ("sgd_momentum", """
        v = config["momentum"] * config["velocity"] + dw
        next_w = w - config["learning_rate"] * v
        config["velocity"] = v
    """, "your momentum follows torch.optim.SGD's convention"),
    ("rmsprop", """
        config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw * dw
        next_w = w - config["learning_rate"] * dw / torch.sqrt(config["cache"] + config["epsilon"])
    """, "your RMSProp adds epsilon under the square root"),
    ("adam", """
        config["t"] += 1
        config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
        config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw ** 2
        step = config["learning_rate"] * (1 - config["beta2"] ** config["t"]) ** 0.5 / (1 - config["beta1"] ** config["t"])
        next_w = w - step * config["m"] / (config["v"].sqrt() + config["epsilon"])
    """, 'your Adam is the "efficient" form of Kingma & Ba'),
]


@pytest.mark.parametrize("rule,body,named", OPTIMIZER_CONVENTIONS, ids=[c[0] for c in OPTIMIZER_CONVENTIONS])
def test_an_optimizer_in_another_course_s_convention_fails_naming_it(tmp_path, rule, body, named):
    optim = student_version(reference_text("optim.py"), rule, body)
    result = grade_files(tmp_path, {"optim.py": optim}, only=f"optim.{rule}")
    assert lost(result) == {f"optim.{rule}"}, messages(result)
    message = result.tasks[0].message
    assert named in message, message
