"""The residual-networks assignment graded as real students write it: correct code in the students'
own styles keeps every point; a classifier wrapped in an nn.Sequential is graded by its arithmetic, as
the ResNet docstring allows; and the mistakes students make get messages that say why: an identity
shortcut on a downsampling block that keeps its channels, a wrapped layer where the docstring forbids
it, PyTorch's default initialization where Kaiming normal is asked.

Each submission is the reference with some fenced bodies rewritten the way a student writes them."""

from __future__ import annotations

import re
import textwrap

import pytest

from support import assignment, grade_checks, lost, make_submission

A3 = "a3_resnet_pytorch"


def with_student_code(text: str, where: str, body: str) -> str:
    """The models.py text with the fenced body of `where` ("name" or "Class.method") replaced."""
    owner, _, method = where.partition(".")
    start = re.search(rf"^(class|def) {re.escape(owner)}\b", text, re.MULTILINE).start()
    if method:
        start = text.index(f"def {method}(", start)
    begin = text.index("# BEGIN YOUR CODE\n", start) + len("# BEGIN YOUR CODE\n")
    end = text.index("# END YOUR CODE", begin)
    indent = text[text.rindex("\n", 0, end) + 1:end]
    return text[:begin] + textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", indent) + text[end:]


def graded(tmp_path, bodies: dict[str, str], only: str | None = None, mode: str = "official"):
    shipped = assignment(A3)
    text = (shipped.reference_directory / "models.py").read_text()
    for where, body in bodies.items():
        text = with_student_code(text, where, body)
    folder = make_submission(tmp_path / "submission", shipped, "reference", {"models.py": text})
    return grade_checks(shipped, folder, only=only, mode=mode, seed=None)


def task(result, task_id):
    return next(t for t in result.tasks if t.task_id == task_id)


# -- correct code in the students' own styles ----------------------------------------------------

STUDENT_STYLES = {
    "three_layer_convnet": """
        x = F.relu(F.conv2d(x, conv_w1, bias=conv_b1, padding=2))
        x = F.relu(F.conv2d(x, conv_w2, bias=conv_b2, padding=1))
        scores = x.reshape(x.shape[0], -1).mm(fc_w) + fc_b
    """,
    "initialize_three_layer_convnet": """
        def kaiming(*shape):
            fan_in = shape[0] if len(shape) == 2 else math.prod(shape[1:])
            w = torch.randn(*shape, dtype=dtype, device=device) * (2.0 / fan_in) ** 0.5
            return w.requires_grad_(True)

        params = [kaiming(channel_1, in_channels, 5, 5),
                  torch.zeros(channel_1, dtype=dtype, device=device, requires_grad=True),
                  kaiming(channel_2, channel_1, 3, 3),
                  torch.zeros(channel_2, dtype=dtype, device=device, requires_grad=True),
                  kaiming(channel_2 * height * width, num_classes),
                  torch.zeros(num_classes, dtype=dtype, device=device, requires_grad=True)]
    """,
    "three_layer_convnet_train_step": """
        loss_tensor = F.cross_entropy(three_layer_convnet(x, params), y)
        loss_tensor.backward()
        with torch.no_grad():
            for w in params:
                w.sub_(learning_rate * w.grad)
                w.grad = None
        loss = float(loss_tensor)
    """,
    "ThreeLayerConvNet.__init__": """
        self.conv1 = nn.Conv2d(in_channel, channel_1, 5, padding=2)
        nn.init.kaiming_normal_(self.conv1.weight, nonlinearity="relu")
        nn.init.constant_(self.conv1.bias, 0.0)
        self.conv2 = nn.Conv2d(channel_1, channel_2, 3, padding=1)
        nn.init.kaiming_normal_(self.conv2.weight, nonlinearity="relu")
        nn.init.constant_(self.conv2.bias, 0.0)
        self.fc = nn.Linear(channel_2 * height * width, num_classes)
        nn.init.kaiming_normal_(self.fc.weight)
        self.fc.bias.data.zero_()
    """,
    "ResidualBlock.__init__": """
        self.block = PlainBlock(Cin, Cout, downsample)
        if downsample:
            self.shortcut = nn.Conv2d(Cin, Cout, kernel_size=1, stride=2)
        elif Cin != Cout:
            self.shortcut = nn.Conv2d(Cin, Cout, kernel_size=1)
        else:
            self.shortcut = nn.Identity()
    """,
    "ResidualBlock.forward": """
        out = self.shortcut(x) + self.block(x)
    """,
    "ResNet.__init__": """
        stages = [ResNetStage(cin, cout, n, down, block) for cin, cout, n, down in stage_args]
        self.cnn = nn.Sequential(ResNetStem(Cin, stage_args[0][0]), *stages)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(stage_args[-1][1], num_classes))
    """,
    "ResNet.forward": """
        scores = self.fc(F.adaptive_avg_pool2d(self.cnn(x), 1))
    """,
}


def test_correct_code_in_the_students_own_styles_keeps_every_point(tmp_path):
    result = grade_checks(assignment(A3), make_submission(tmp_path / "reference", assignment(A3)), seed=None)
    assert lost(result) == set(), "the reference itself loses points"
    result = graded(tmp_path, STUDENT_STYLES)
    assert lost(result) == set(), {t.task_id: t.message for t in result.tasks if t.points < t.max_points}


REORDERED = {  # the layers created in another order than the reference's: the state_dict's order differs
    "ResidualBlock.__init__": """
        if Cin == Cout and not downsample:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Conv2d(Cin, Cout, kernel_size=1, stride=2 if downsample else 1)
        self.block = PlainBlock(Cin, Cout, downsample)
    """,
    "ResNet.__init__": """
        self.fc = nn.Linear(stage_args[-1][1], num_classes)
        layers = [ResNetStem(Cin, stage_args[0][0])]
        layers += [ResNetStage(*args, block=block) for args in stage_args]
        self.cnn = nn.Sequential(*layers)
    """,
}


def test_layers_created_in_another_order_keep_every_point(tmp_path):
    result = graded(tmp_path, REORDERED, only="resnet.*,residual_block.*")
    assert result.tasks and lost(result) == set(), {t.task_id: t.message for t in result.tasks if t.points < t.max_points}


def test_a_layer_created_in_forward_loses_the_forward_task_saying_so(tmp_path):
    result = graded(tmp_path, {**REORDERED, "ResNet.forward": """
        if not hasattr(self, "extra"):
            self.extra = nn.Identity().to(x.device)
            self.extra.register_buffer("seen", torch.zeros(1, dtype=x.dtype, device=x.device))
        scores = self.fc(self.extra(self.cnn(x)).mean(dim=(2, 3)))
    """}, only="resnet.forward")
    assert lost(result) == {"resnet.forward"}
    assert "new state_dict entries after forward (extra.seen)" in task(result, "resnet.forward").message


# -- what a check reads is the grader's to choose: the caller's list, one reading of the state -----------

def test_a_train_step_that_empties_the_callers_list_is_not_graded_by_what_is_left(tmp_path):
    # Gradients never zeroed, then the list emptied: nothing of it left to compare would pass.
    result = graded(tmp_path, {"three_layer_convnet_train_step": """
        scores = three_layer_convnet(x, params)
        loss_tensor = F.cross_entropy(scores, y)
        loss_tensor.backward()
        with torch.no_grad():
            for w in params:
                w -= learning_rate * w.grad
        loss = loss_tensor.item()
        params.clear()
    """}, only="barebones.train_step")
    assert lost(result) == {"barebones.train_step"}
    assert "list of 0 items" in task(result, "barebones.train_step").message


def test_a_train_step_that_replaces_the_lists_items_is_told_the_callers_tensors_did_not_change(tmp_path):
    result = graded(tmp_path, {"three_layer_convnet_train_step": """
        scores = three_layer_convnet(x, params)
        loss_tensor = F.cross_entropy(scores, y)
        grads = torch.autograd.grad(loss_tensor, params)
        for i in range(len(params)):
            params[i] = (params[i] - learning_rate * grads[i]).detach().requires_grad_(True)
        loss = loss_tensor.item()
    """}, only="barebones.train_step")
    assert lost(result) == {"barebones.train_step"}
    message = task(result, "barebones.train_step").message
    assert "step 1: the list given to it holds the updated values, but the caller's tensor is as it was" in message, \
        message


ZEROED_BEFORE_BACKWARD = """
    for w in params:
        if w.grad is not None:
            w.grad.zero_()
    scores = three_layer_convnet(x, params)
    loss_tensor = F.cross_entropy(scores, y)
    loss_tensor.backward()
    with torch.no_grad():
        for w in params:
            w -= learning_rate * w.grad
    loss = loss_tensor.item()
"""


def test_gradients_zeroed_before_backward_rather_than_after_the_update_keep_every_point(tmp_path):
    # The habit of optimizer.zero_grad() at the top of a training loop: the gradients are left in
    # .grad when the step returns, and no step adds the previous one's, as the docstring allows.
    result = graded(tmp_path, {"three_layer_convnet_train_step": ZEROED_BEFORE_BACKWARD}, only="barebones.train_step")
    assert lost(result) == set(), task(result, "barebones.train_step").message


def test_gradients_never_zeroed_fail_on_the_second_step_saying_why(tmp_path):
    never = ZEROED_BEFORE_BACKWARD.replace("        if w.grad is not None:\n            w.grad.zero_()\n", "        pass\n")
    assert never != ZEROED_BEFORE_BACKWARD
    result = graded(tmp_path, {"three_layer_convnet_train_step": never}, only="barebones.train_step")
    assert lost(result) == {"barebones.train_step"}
    message = task(result, "barebones.train_step").message
    assert "step 2" in message and "still held the previous step's gradient" in message, message


def test_a_module_hiding_its_state_from_one_reading_is_graded_on_the_state_it_shows(tmp_path):
    # PyTorch's default initialization, and a state_dict that is empty for the provided state_tensors
    # only (it runs beside the submission's code, which can see who calls): the statistics were read
    # from a second reading, and nothing was left to check.
    result = graded(tmp_path, {"ThreeLayerConvNet.__init__": """
        self.conv1 = nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
        self.fc = nn.Linear(channel_2 * height * width, num_classes)
        real = self.state_dict

        def state_dict(*args, **kwargs):
            import sys
            return {} if sys._getframe(1).f_code.co_name == "state_tensors" else real(*args, **kwargs)

        self.state_dict = state_dict
    """}, only="module_convnet.init")
    assert lost(result) == {"module_convnet.init"}


# -- the ResNet's classifier in an nn.Sequential ---------------------------------------------------

RESNET_TASKS = ("resnet.shapes", "resnet.parameters", "resnet.forward", "resnet.gradients")


@pytest.mark.parametrize("classifier, forward", [
    ("nn.Sequential(nn.Flatten(), nn.Linear(stage_args[-1][1], num_classes))",
     "scores = self.fc(self.cnn(x).mean(dim=(2, 3)))"),
    ("nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(stage_args[-1][1], num_classes))",
     "scores = self.fc(self.cnn(x))"),
], ids=["flatten_linear", "pool_flatten_linear"])
@pytest.mark.parametrize("mode", ["official", "public"])
def test_a_classifier_wrapped_in_a_sequential_keeps_every_point(tmp_path, classifier, forward, mode):
    result = graded(tmp_path, {
        "ResNet.__init__": f"""
            self.cnn = nn.Sequential(ResNetStem(Cin, stage_args[0][0]),
                                     *[ResNetStage(*args, block=block) for args in stage_args])
            self.fc = {classifier}
        """,
        "ResNet.forward": forward,
    }, mode=mode)
    assert lost(result) & set(RESNET_TASKS) == set(), [task(result, t).message for t in RESNET_TASKS]


@pytest.mark.parametrize("classifier", [
    "nn.Sequential(nn.Dropout(0.5), nn.Linear(stage_args[-1][1], num_classes))",
    "nn.Sequential(nn.Linear(stage_args[-1][1], num_classes), nn.ReLU())",
], ids=["dropout_before", "relu_after"])
def test_a_wrapped_classifier_that_computes_something_else_loses_its_points(tmp_path, classifier):
    """Teeth: the wrapping is accepted, the arithmetic still graded."""
    result = graded(tmp_path, {"ResNet.__init__": f"""
        self.cnn = nn.Sequential(ResNetStem(Cin, stage_args[0][0]),
                                 *[ResNetStage(*args, block=block) for args in stage_args])
        self.fc = {classifier}
    """}, only="resnet.forward")
    assert lost(result) == {"resnet.forward"}
    assert "scores of get_resnet" in task(result, "resnet.forward").message


def test_a_wrapped_fc_where_the_docstring_forbids_it_is_named(tmp_path):
    result = graded(tmp_path, {"ThreeLayerConvNet.__init__": """
        self.conv1 = nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channel_2 * height * width, num_classes))
        for layer in (self.conv1, self.conv2, self.fc[1]):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    """}, only="module_convnet.*")
    assert lost(result) == {"module_convnet.init", "module_convnet.forward"}
    for task_id in ("module_convnet.init", "module_convnet.forward"):
        message = task(result, task_id).message
        assert "fc.1.weight, fc.1.bias" in message and "your fc is wrapped in an nn.Sequential" in message, message
        assert "keys stay fc.weight, fc.bias" in message, message


# -- shortcuts ---------------------------------------------------------------------------------------

DOWNSAMPLING_KEEPS_CHANNELS = ("downsampling (stride 2) needs a 1x1 shortcut with stride 2 even when the channels "
                               "stay the same")


def test_an_identity_shortcut_on_a_downsampling_block_that_keeps_its_channels_is_explained(tmp_path):
    result = graded(tmp_path, {"ResidualBlock.__init__": """
        self.block = PlainBlock(Cin, Cout, downsample)
        self.shortcut = nn.Identity() if Cin == Cout else nn.Conv2d(Cin, Cout, 1, stride=2 if downsample else 1)
    """}, only="residual_block.*")
    assert lost(result) == {"residual_block.shortcut", "residual_block.forward"}
    for task_id in ("residual_block.shortcut", "residual_block.forward"):
        message = task(result, task_id).message
        assert "ResidualBlock(4, 4, downsample=True)" in message and DOWNSAMPLING_KEEPS_CHANNELS in message, message
        assert "has no shortcut.weight" in message and "expected:" not in message, message


def test_the_same_shortcut_in_a_bottleneck_block_is_explained(tmp_path):
    result = graded(tmp_path, {"ResidualBottleneckBlock.__init__": """
        width = Cout // 4
        self.block = nn.Sequential(
            nn.BatchNorm2d(Cin), nn.ReLU(), nn.Conv2d(Cin, width, 1, stride=2 if downsample else 1),
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, Cout, 1))
        self.shortcut = nn.Identity() if Cin == Cout else nn.Conv2d(Cin, Cout, 1, stride=2 if downsample else 1)
    """}, only="bottleneck_block.forward")
    assert DOWNSAMPLING_KEEPS_CHANNELS in task(result, "bottleneck_block.forward").message


def test_a_shortcut_kept_as_none_loses_only_the_shortcut_task_saying_why(tmp_path):
    result = graded(tmp_path, {"ResidualBlock.__init__": """
        self.block = PlainBlock(Cin, Cout, downsample)
        self.shortcut = None
        if downsample or Cin != Cout:
            self.shortcut = nn.Conv2d(Cin, Cout, kernel_size=1, stride=2 if downsample else 1)
    """, "ResidualBlock.forward": """
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.block(x) + identity
    """}, only="residual_block.*")
    assert lost(result) == {"residual_block.shortcut"}
    message = task(result, "residual_block.shortcut").message
    assert "ResidualBlock(4, 4, downsample=False).shortcut is None, which should be the identity" in message, message
    assert "nn.Identity()" in message and "TypeError" not in message, message


def test_a_convolution_where_the_identity_belongs_is_explained(tmp_path):
    result = graded(tmp_path, {"ResidualBlock.__init__": """
        self.block = PlainBlock(Cin, Cout, downsample)
        self.shortcut = nn.Conv2d(Cin, Cout, kernel_size=1, stride=2 if downsample else 1)
    """}, only="residual_block.shortcut")
    message = task(result, "residual_block.shortcut").message
    assert "ResidualBlock(4, 4, downsample=False)" in message and "unexpected entries shortcut.weight" in message
    assert "the identity (nn.Identity(), no parameters)" in message, message


def test_convolutions_without_a_bias_are_explained(tmp_path):
    result = graded(tmp_path, {"PlainBlock.__init__": """
        self.net = nn.Sequential(
            nn.BatchNorm2d(Cin), nn.ReLU(),
            nn.Conv2d(Cin, Cout, 3, stride=2 if downsample else 1, padding=1, bias=False),
            nn.BatchNorm2d(Cout), nn.ReLU(),
            nn.Conv2d(Cout, Cout, 3, padding=1, bias=False))
    """}, only="plain_block.forward")
    message = task(result, "plain_block.forward").message
    assert "has no net.2.bias, net.5.bias" in message and "no bias (bias=False)" in message, message


def test_a_wrong_plain_block_is_named_by_the_tasks_built_on_it(tmp_path):
    # The residual blocks, the stages and the networks are built on PlainBlock: each of their
    # messages starts by pointing at it.
    result = graded(tmp_path, {"PlainBlock.forward": "out = self.net(x) * 2"},
                    only="plain_block.forward,residual_block.*,resnet.stem_and_stage,resnet.forward")
    assert {"plain_block.forward", "residual_block.forward", "resnet.stem_and_stage", "resnet.forward"} <= lost(result)
    for task_id in ("residual_block.forward", "resnet.stem_and_stage", "resnet.forward"):
        assert task(result, task_id).message.startswith("this uses plain_block.forward"), task(result, task_id).message


# -- initialization --------------------------------------------------------------------------------

def test_a_sequential_left_at_the_default_initialization_is_told_to_use_kaiming(tmp_path):
    """The course's own notebook leaves this network at PyTorch's default initialization; ours asks
    for Kaiming normal, and the message says so."""
    result = graded(tmp_path, {"three_layer_convnet_sequential": """
        model = nn.Sequential(
            nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2), nn.ReLU(),
            nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(channel_2 * height * width, num_classes))
    """}, only="sequential_convnet.*")
    assert lost(result) == {"sequential_convnet.init"}
    message = task(result, "sequential_convnet.init").message
    assert "your weights look like PyTorch's default init" in message, message
    assert "this task asks for Kaiming normal initialization (nn.init.kaiming_normal_)" in message, message


def test_default_biases_under_kaiming_weights_are_named(tmp_path):
    result = graded(tmp_path, {"ThreeLayerConvNet.__init__": """
        self.conv1 = nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
        self.fc = nn.Linear(channel_2 * height * width, num_classes)
        for layer in (self.conv1, self.conv2, self.fc):
            nn.init.kaiming_normal_(layer.weight)
    """}, only="module_convnet.init")
    message = task(result, "module_convnet.init").message
    assert "'conv1.bias'] should start at zero (nn.init.zeros_)" in message, message
    assert "PyTorch's default init" in message, message


def test_kaiming_with_fan_out_is_named(tmp_path):
    result = graded(tmp_path, {"ThreeLayerConvNet.__init__": """
        self.conv1 = nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
        self.fc = nn.Linear(channel_2 * height * width, num_classes)
        for layer in (self.conv1, self.conv2, self.fc):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    """}, only="module_convnet.init")
    message = task(result, "module_convnet.init").message
    assert "mode='fan_out' (fan_out = 800)" in message and "default mode='fan_in'" in message, message


def test_a_barebones_fan_in_counted_from_the_classes_is_named(tmp_path):
    result = graded(tmp_path, {"initialize_three_layer_convnet": """
        def weight(*shape):
            fan_in = shape[-1] if len(shape) == 2 else math.prod(shape[1:])
            return (torch.randn(*shape, dtype=dtype, device=device) * math.sqrt(2 / fan_in)).requires_grad_()

        def zeros(n):
            return torch.zeros(n, dtype=dtype, device=device, requires_grad=True)

        params = [weight(channel_1, in_channels, 5, 5), zeros(channel_1), weight(channel_2, channel_1, 3, 3),
                  zeros(channel_2), weight(channel_2 * height * width, num_classes), zeros(num_classes)]
    """}, only="barebones.init")
    message = task(result, "barebones.init").message
    assert "fc_w has mean" in message and "your fan_in is fc_w.shape[1] = 10, the number of classes" in message



def test_a_shortcut_that_does_not_downsample_is_named_before_the_sum_fails(tmp_path):
    """Without the shape check first, the student reads PyTorch's "The size of tensor a (3) must
    match the size of tensor b (5)" from inside their forward."""
    result = graded(tmp_path, {"ResidualBlock.__init__": """
        self.block = PlainBlock(Cin, Cout, downsample)
        self.shortcut = nn.Identity() if Cin == Cout and not downsample else nn.Conv2d(Cin, Cout, 1)
    """}, only="residual_block.forward")
    forward = task(result, "residual_block.forward")
    assert forward.outcome.value == "failed", forward.message
    assert ".shortcut(x) has shape (2, 8, 5, 4) for x of shape (2, 4, 5, 4), expected (2, 8, 3, 2)" in forward.message
    assert "the shortcut should be a 1x1 convolution with stride 2" in forward.message


def test_batch_normalization_after_the_relu_is_named_as_layers_out_of_order(tmp_path):
    result = graded(tmp_path, {"PlainBlock.__init__": """
        self.net = nn.Sequential(
            nn.ReLU(), nn.BatchNorm2d(Cin), nn.Conv2d(Cin, Cout, 3, stride=2 if downsample else 1, padding=1),
            nn.ReLU(), nn.BatchNorm2d(Cout), nn.Conv2d(Cout, Cout, 3, padding=1))
    """}, only="plain_block.forward")
    message = task(result, "plain_block.forward").message
    assert "net.1 where the docstring has net.0, net.4 where the docstring has net.3" in message, message
    assert "not in the docstring's order" in message, message


def test_a_post_activation_plain_block_is_named_as_the_docstring_s_order_not_a_shape(tmp_path):
    # conv - BN - ReLU, the order of the original ResNet: net.0 is a convolution where the docstring's
    # is a batch normalization, which a comparison of shapes alone reports as "(8, 4, 3, 3), expected (4,)".
    result = graded(tmp_path, {"PlainBlock.__init__": """
        self.net = nn.Sequential(
            nn.Conv2d(Cin, Cout, 3, stride=2 if downsample else 1, padding=1), nn.BatchNorm2d(Cout), nn.ReLU(),
            nn.Conv2d(Cout, Cout, 3, padding=1), nn.BatchNorm2d(Cout), nn.ReLU())
    """}, only="plain_block.forward")
    message = task(result, "plain_block.forward").message
    assert "conv, batch norm, conv, batch norm" in message and "batch norm, conv, batch norm, conv" in message, message
    assert "pre-activation" in message, message


def test_a_bottleneck_whose_convolutions_shrink_the_input_is_told_of_their_padding(tmp_path):
    # The 3x3 convolution without padding: downsampled, the check's 5x4 input is 3x2 there, smaller
    # than the kernel, and PyTorch's "Kernel size can't be greater than actual input size" comes from
    # inside the block.
    result = graded(tmp_path, {"ResidualBottleneckBlock.__init__": """
        stride = 2 if downsample else 1
        mid = Cout // 4
        self.block = nn.Sequential(
            nn.BatchNorm2d(Cin), nn.ReLU(), nn.Conv2d(Cin, mid, 1, stride=stride),
            nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, mid, 3),
            nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, Cout, 1))
        self.shortcut = nn.Identity() if Cin == Cout and not downsample else nn.Conv2d(Cin, Cout, 1, stride=stride)
    """}, only="bottleneck_block.forward")
    message = task(result, "bottleneck_block.forward").message
    assert "check the padding and strides of its convolutions" in message, message
