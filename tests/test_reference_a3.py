"""The a3_resnet_pytorch reference: the three convnets agree, the blocks take the documented
shapes and shortcuts, the named networks keep their sizes, and the provided Trainer and utils do
what their docstrings say.

The reference is loaded the way the harness overlays it: one package whose path lists
reference/a3_resnet_pytorch first and assignments/a3_resnet_pytorch second, so the reference's
models.py sits next to the provided trainer.py and utils.py.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from grader.boundary.packages import install_package, uninstall_package
from mutants_a3 import MUTANTS, apply

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "reference" / "a3_resnet_pytorch"
ASSIGNMENT_DIR = ROOT / "assignments" / "a3_resnet_pytorch"
PACKAGE = "a3_resnet_pytorch_reference_under_test"


@pytest.fixture(scope="module")
def ref():
    install_package(PACKAGE, [REFERENCE_DIR, ASSIGNMENT_DIR])
    yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in ("models", "trainer", "utils")}
    uninstall_package(PACKAGE)


@pytest.fixture(scope="module")
def models(ref):
    return ref["models"]


@pytest.fixture(scope="module")
def utils(ref):
    return ref["utils"]


# ---------------------------------------------------------------------------------------------
# The three-layer convnet, three ways


def test_the_three_convnets_compute_the_same_scores(models):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    params = models.initialize_three_layer_convnet(3, 4, 5, 7, image_size=(6, 5), dtype=torch.float64)
    with torch.no_grad():
        for p in params[1::2]:
            p.normal_()  # non-zero biases, so that a missing bias would show
    module = models.ThreeLayerConvNet(3, 4, 5, 7, image_size=(6, 5)).double()
    sequential = models.three_layer_convnet_sequential(3, 4, 5, 7, image_size=(6, 5)).double()
    conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b = (p.detach() for p in params)
    module.load_state_dict({"conv1.weight": conv_w1, "conv1.bias": conv_b1, "conv2.weight": conv_w2,
                            "conv2.bias": conv_b2, "fc.weight": fc_w.t(), "fc.bias": fc_b})
    sequential.load_state_dict({"0.weight": conv_w1, "0.bias": conv_b1, "2.weight": conv_w2, "2.bias": conv_b2,
                                "5.weight": fc_w.t(), "5.bias": fc_b})
    expected = models.three_layer_convnet(x, params)
    assert expected.shape == (2, 7)
    torch.testing.assert_close(module(x), expected)
    torch.testing.assert_close(sequential(x), expected)


def test_initial_parameters_are_kaiming_leaves(models):
    torch.manual_seed(1)
    params = models.initialize_three_layer_convnet(3, 32, 16, 10, image_size=(8, 8))
    fan_ins = [3 * 25, None, 32 * 9, None, 16 * 64, None]
    for p, fan_in in zip(params, fan_ins):
        assert p.is_leaf and p.requires_grad and p.dtype == torch.float32
        if fan_in is None:
            assert (p == 0).all()
        else:
            assert abs(p.std().item() / math.sqrt(2 / fan_in) - 1) < 0.1


def test_train_steps_lower_the_loss_and_clear_the_gradients(models):
    torch.manual_seed(2)
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 10, (8,))
    params = models.initialize_three_layer_convnet(3, 6, 4, 10, image_size=(6, 6))
    losses = [models.three_layer_convnet_train_step(x, y, params, 1e-2) for _ in range(20)]
    assert all(isinstance(loss, float) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.is_leaf and p.requires_grad and (p.grad is None or (p.grad == 0).all()) for p in params)


@pytest.mark.parametrize("build", ["ThreeLayerConvNet", "three_layer_convnet_sequential"])
def test_convnet_modules_are_kaiming_initialized(models, utils, build):
    torch.manual_seed(3)
    model = getattr(models, build)(3, 32, 16, 10, image_size=(8, 8))
    for name, value in utils.state_tensors(model).items():
        if name.endswith("bias"):
            assert (value == 0).all(), name
        else:
            fan_in = math.prod(value.shape[1:])
            assert abs(value.std().item() / math.sqrt(2 / fan_in) - 1) < 0.1, name


# ---------------------------------------------------------------------------------------------
# Blocks, stages, networks


@pytest.mark.parametrize("block", ["PlainBlock", "ResidualBlock", "ResidualBottleneckBlock"])
@pytest.mark.parametrize("Cin,Cout,downsample,size,out_size", [
    (8, 8, False, (7, 6), (7, 6)), (8, 16, False, (7, 6), (7, 6)), (8, 16, True, (7, 6), (4, 3)),
    (8, 8, True, (5, 5), (3, 3))])
def test_blocks_take_the_documented_shapes(models, block, Cin, Cout, downsample, size, out_size):
    out = getattr(models, block)(Cin, Cout, downsample)(torch.randn(2, Cin, *size))
    assert out.shape == (2, Cout, *out_size)


@pytest.mark.parametrize("block", ["ResidualBlock", "ResidualBottleneckBlock"])
def test_each_case_takes_its_shortcut(models, block):
    cls = getattr(models, block)
    assert isinstance(cls(8, 8).shortcut, nn.Identity)
    for Cin, Cout, downsample, stride in [(8, 16, False, 1), (8, 16, True, 2), (8, 8, True, 2)]:
        shortcut = cls(Cin, Cout, downsample).shortcut
        assert isinstance(shortcut, nn.Conv2d)
        assert shortcut.kernel_size == (1, 1) and shortcut.stride == (stride, stride)
        assert (shortcut.in_channels, shortcut.out_channels) == (Cin, Cout)


def test_residual_block_adds_the_identity_to_the_plain_block(models):
    block = models.ResidualBlock(4, 4).eval()
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(block(x), block.block(x) + x)


def test_bottleneck_runs_at_a_quarter_of_the_channels(models, utils):
    shapes = utils.state_shapes(models.ResidualBottleneckBlock(16, 32, True))
    assert shapes["block.2.weight"] == (8, 16, 1, 1)
    assert shapes["block.5.weight"] == (8, 8, 3, 3)
    assert shapes["block.8.weight"] == (32, 8, 1, 1)


def test_stage_downsamples_in_its_first_block_only(models):
    stage = models.ResNetStage(4, 8, 3, downsample=True)
    assert [isinstance(b.shortcut, nn.Identity) for b in stage.net] == [False, True, True]
    assert stage(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)


# Pinned: a change of a named network changes the parameter counts the checks compare.
PARAMETER_COUNTS = {"plain8": 19274, "resnet8": 19962, "resnet11": 2714, "plain32": 117386, "resnet32": 118074,
                    "resnet47": 129146}


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_named_networks(models, utils, name):
    model = models.get_resnet(name)
    assert utils.count_parameters(model) == PARAMETER_COUNTS[name]
    assert model(torch.randn(2, 3, 16, 12)).shape == (2, 10)


def test_parameter_gradients_reach_every_parameter(models, utils):
    model = models.get_resnet("resnet11").double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    grads = utils.parameter_gradients(model, x, torch.randn(2, 10, dtype=torch.float64))
    assert set(grads) == set(utils.parameter_shapes(model))
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_as_leaf_parameters_copies(utils):
    source = torch.ones(3)
    (leaf,) = utils.as_leaf_parameters(source)
    assert leaf.is_leaf and leaf.requires_grad and leaf.data_ptr() != source.data_ptr()


# ---------------------------------------------------------------------------------------------
# The Trainer and the training entry


def cifar_like(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (60 * torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def small_data(n=40):
    X, y = cifar_like(n)
    split = n * 3 // 4
    return {"X_train": X[:split], "y_train": y[:split], "X_val": X[split:], "y_val": y[split:]}


def tiny_network(models):
    return models.ResNet([(4, 4, 1, False), (4, 8, 1, True)])


def test_entry_builds_an_untrained_trainer(ref, models):
    data = small_data()
    trainer = models.create_resnet_trainer_instance(data, torch.float32, "cpu")
    assert isinstance(trainer, ref["trainer"].Trainer)
    assert isinstance(trainer.network, models.ResNet)
    assert trainer.loss_history == [] and not trainer.verbose
    scores = trainer.model.loss(data["X_val"][:3])
    assert scores.shape == (3, 10) and not scores.requires_grad


def test_trainer_stops_before_crossing_its_time_limit(ref, models):
    network = tiny_network(models)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)
    trainer = ref["trainer"].Trainer(network, optimizer, small_data(), batch_size=10, num_epochs=10**6,
                                     schedule="one_cycle", verbose=False)
    trainer.train(time_limit=2.0)  # room for a first step on a busy machine
    assert trainer.stopped_early
    assert 0 < len(trainer.loss_history)
    assert all(isinstance(loss, float) for loss in trainer.loss_history)
    # The one-cycle schedule anneals by the time left: the rate has come down near the end.
    assert optimizer.param_groups[0]["lr"] < 0.01


def test_trainer_rejects_unknown_options_and_schedules(ref, models):
    network = tiny_network(models)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="bogus"):
        ref["trainer"].Trainer(network, optimizer, small_data(), bogus=1)
    with pytest.raises(ValueError, match="schedule"):
        ref["trainer"].Trainer(network, optimizer, small_data(), schedule="cosine")


def test_trainer_learns_a_few_images_and_keeps_the_best_parameters(ref, models):
    torch.manual_seed(4)
    X, y = cifar_like(20, seed=1)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    network = tiny_network(models)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    trainer = ref["trainer"].Trainer(network, optimizer, data, batch_size=10, num_epochs=100, verbose=False)
    trainer.train()
    assert trainer.best_val_acc == max(trainer.val_acc_history) >= 0.9
    assert trainer.check_accuracy(X, y) == trainer.best_val_acc


def test_random_crops_are_translations_of_the_padded_image(ref, models):
    network = tiny_network(models)
    trainer = ref["trainer"].Trainer(network, torch.optim.SGD(network.parameters(), lr=0.1), small_data(),
                                     random_crop=2, horizontal_flip=True, verbose=False)
    X = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    torch.manual_seed(5)
    crops = trainer._augment(X)
    assert crops.shape == X.shape
    padded = torch.nn.functional.pad(X, (2, 2, 2, 2))
    for image, crop in zip(padded, crops):
        windows = [image[:, i:i + 5, j:j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(crop, w) or torch.equal(crop, w.flip(2)) for w in windows)


def test_trainer_with_bfloat16_autocast_and_channels_last(ref, models):
    network = tiny_network(models)
    trainer = ref["trainer"].Trainer(network, torch.optim.SGD(network.parameters(), lr=0.01), small_data(),
                                     batch_size=10, num_epochs=1, channels_last=True, clip_grad_norm=1.0,
                                     autocast_dtype=torch.bfloat16, verbose=False)
    trainer.train()
    assert len(trainer.loss_history) == 3
    assert trainer.model.loss(small_data()["X_val"]).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# Stub and reference are the same file outside the student's fences; the mutants apply.

FENCE = re.compile(r"(# BEGIN YOUR CODE\n).*?(\s*# END YOUR CODE)", re.DOTALL)


def test_stub_and_reference_differ_only_inside_the_fences():
    stub = (ASSIGNMENT_DIR / "models.py").read_text()
    reference = (REFERENCE_DIR / "models.py").read_text()
    assert FENCE.sub(r"\1\2", stub) == FENCE.sub(r"\1\2", reference)
    bodies = [m.group(0) for m in FENCE.finditer(stub)]
    assert bodies and all("raise NotImplementedError" in body for body in bodies)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_applies_to_the_reference_and_compiles(mutant):
    source = (REFERENCE_DIR / mutant.file).read_text()
    assert source.count(mutant.old) == 1
    mutated = apply(mutant, source)
    assert mutated != source
    compile(mutated, f"{mutant.file} ({mutant.name})", "exec")


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
