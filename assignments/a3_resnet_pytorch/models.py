"""From hand-written backward passes to autograd and torch.nn: a three-layer convolutional network
written three ways (a function of explicit parameters, an nn.Module, an nn.Sequential), the blocks of
pre-activation residual networks, the networks built from them, and the entry that trains one.

Modules are built the way PyTorch builds them (float32, on the CPU); `.double()` and `.to(...)`
move them afterwards. The names of submodules are part of each class's contract: the grader loads
the reference's weights into your modules by these names (`model.load_state_dict(...)`) before
comparing outputs, so build them exactly as the docstrings say. Create every layer in __init__, none
in forward. Outputs are compared in training mode and in evaluation mode, and the running averages
of batch normalization after a forward pass in training mode.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .trainer import Trainer


# -- Barebones PyTorch: the network as a function of its parameters ------------------------------


def three_layer_convnet(x, params):
    """Three-layer convolutional network as a function of its parameters:
    conv 5x5 (padding 2) - ReLU - conv 3x3 (padding 1) - ReLU - fully connected.

    Both convolutions have stride 1, so they keep the height and width of the image; the
    fully-connected layer reads the output of the second ReLU flattened to (N, channel_2 * H * W).

    Inputs:
    - x: Images, a tensor of shape (N, C, H, W)
    - params: List of six tensors [conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]:
      - conv_w1: (channel_1, C, 5, 5) and conv_b1: (channel_1,)
      - conv_w2: (channel_2, channel_1, 3, 3) and conv_b2: (channel_2,)
      - fc_w: (channel_2 * H * W, num_classes) and fc_b: (num_classes,)

    Returns:
    - scores: Tensor of shape (N, num_classes)

    The parameters are only read: they are the network's weights, so changing one in place would
    change the network the caller holds.

    Graded by task: barebones.forward
    """
    conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b = params
    scores = None
    # BEGIN YOUR CODE
    raise NotImplementedError("three_layer_convnet in models.py (graded by task barebones.forward)")
    # END YOUR CODE
    return scores


def initialize_three_layer_convnet(in_channels=3, channel_1=32, channel_2=16, num_classes=10,
                                   image_size=(32, 32), dtype=torch.float32, device="cpu"):
    """Kaiming-initialized parameters for three_layer_convnet, as tensors that require grad.

    Every weight is drawn from a Gaussian with mean 0 and standard deviation sqrt(2 / fan_in),
    where fan_in is the number of inputs each output sums over: in_channels * 5 * 5 for conv_w1,
    channel_1 * 3 * 3 for conv_w2, channel_2 * H * W for fc_w. Every bias is zero.

    Inputs:
    - in_channels, channel_1, channel_2, num_classes: Sizes of the network (C, channel_1,
      channel_2 and num_classes in three_layer_convnet)
    - image_size: (H, W) of the images the network will see
    - dtype, device: dtype and device of the parameters

    Returns:
    - params: List [conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b] with the shapes
      three_layer_convnet documents, each a leaf tensor with requires_grad=True

    Graded by task: barebones.init
    """
    height, width = image_size
    params = None
    # BEGIN YOUR CODE
    raise NotImplementedError("initialize_three_layer_convnet in models.py (graded by task barebones.init)")
    # END YOUR CODE
    return params


def three_layer_convnet_train_step(x, y, params, learning_rate):
    """One step of gradient descent on the softmax loss, with gradients from autograd.

    Computes the scores with three_layer_convnet, the softmax (cross-entropy) loss averaged over
    the batch (F.cross_entropy), and its gradients with loss.backward(). Then, inside
    torch.no_grad() (the update must not become part of the graph), updates every parameter in
    place, w -= learning_rate * w.grad, and zeroes its gradient: autograd adds to .grad and never
    clears it, so a gradient left in place would be added to the next step's (zeroing the gradients
    before loss.backward() instead is as right).

    Inputs:
    - x: Images, a tensor of shape (N, C, H, W)
    - y: Labels, an integer tensor of shape (N,)
    - params: The list three_layer_convnet takes, of leaf tensors with requires_grad=True;
      they are updated in place and remain leaves that require grad
    - learning_rate: Python float

    Returns:
    - loss: The loss before the update, as a Python float

    Graded by task: barebones.train_step
    """
    loss = None
    # BEGIN YOUR CODE
    raise NotImplementedError("three_layer_convnet_train_step in models.py (graded by task barebones.train_step)")
    # END YOUR CODE
    return loss


# -- torch.nn: the same network as an nn.Module and as an nn.Sequential ---------------------------


class ThreeLayerConvNet(nn.Module):
    """The network of three_layer_convnet as an nn.Module.

    Submodules (their names are part of the contract):
    - conv1: nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
    - conv2: nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
    - fc: nn.Linear(channel_2 * H * W, num_classes), where (H, W) is image_size; the nn.Linear
      itself, not inside an nn.Sequential, so that its keys are fc.weight and fc.bias

    Every layer is created in __init__, none in forward. Every weight is Kaiming-initialized
    (nn.init.kaiming_normal_ with its defaults, mode="fan_in": a Gaussian with standard deviation
    sqrt(2 / fan_in)) and every bias is zero (nn.init.zeros_). PyTorch's default initialization,
    which nn.Conv2d and nn.Linear start with, is not this.

    Graded by task: module_convnet.init
    """

    def __init__(self, in_channel, channel_1, channel_2, num_classes, image_size=(32, 32)):
        super().__init__()
        height, width = image_size
        # BEGIN YOUR CODE
        raise NotImplementedError("ThreeLayerConvNet.__init__ in models.py (graded by task module_convnet.init)")
        # END YOUR CODE

    def forward(self, x):
        """Scores of shape (N, num_classes) for images x of shape (N, in_channel, H, W).

        Graded by task: module_convnet.forward
        """
        scores = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ThreeLayerConvNet.forward in models.py (graded by task module_convnet.forward)")
        # END YOUR CODE
        return scores


def three_layer_convnet_sequential(in_channel, channel_1, channel_2, num_classes, image_size=(32, 32)):
    """The same network as an nn.Sequential of six modules, in this order (their positions are
    their names in the state_dict: "0.weight", "0.bias", "2.weight", ...):

    0: nn.Conv2d(in_channel, channel_1, kernel_size=5, padding=2)
    1: nn.ReLU()
    2: nn.Conv2d(channel_1, channel_2, kernel_size=3, padding=1)
    3: nn.ReLU()
    4: nn.Flatten()
    5: nn.Linear(channel_2 * H * W, num_classes), where (H, W) is image_size

    Initialize the layers yourself, as in ThreeLayerConvNet: nn.init.kaiming_normal_ on every
    weight (the two convolutions' and the linear layer's) and nn.init.zeros_ on every bias. Do not
    leave PyTorch's default initialization (what the layers start with): it is graded as wrong here.

    Returns:
    - model: The nn.Sequential

    Graded by tasks: sequential_convnet.init, sequential_convnet.forward
    """
    height, width = image_size
    model = None
    # BEGIN YOUR CODE
    raise NotImplementedError("three_layer_convnet_sequential in models.py (graded by task sequential_convnet.init)")
    # END YOUR CODE
    return model


# -- Pre-activation residual networks -------------------------------------------------------------


class PlainBlock(nn.Module):
    """Two pre-activation convolutions without a shortcut:
    BN - ReLU - conv 3x3 - BN - ReLU - conv 3x3.

    The first convolution maps Cin to Cout channels with stride 2 when downsampling (halving the
    height and width, rounding up) and stride 1 otherwise; the second maps Cout to Cout with
    stride 1. Both have padding 1 and a bias.

    Submodules (their names are part of the contract):
    - net: nn.Sequential of
      0: nn.BatchNorm2d(Cin), 1: nn.ReLU(),
      2: nn.Conv2d(Cin, Cout, kernel_size=3, stride=2 when downsampling else 1, padding=1),
      3: nn.BatchNorm2d(Cout), 4: nn.ReLU(),
      5: nn.Conv2d(Cout, Cout, kernel_size=3, padding=1)

    Layers keep PyTorch's default initialization.

    Graded by task: plain_block.forward
    """

    def __init__(self, Cin, Cout, downsample=False):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("PlainBlock.__init__ in models.py (graded by task plain_block.forward)")
        # END YOUR CODE

    def forward(self, x):
        """(N, Cin, H, W) -> (N, Cout, H', W'), H' = ceil(H / 2) when downsampling, else H.

        Graded by task: plain_block.forward
        """
        out = None
        # BEGIN YOUR CODE
        raise NotImplementedError("PlainBlock.forward in models.py (graded by task plain_block.forward)")
        # END YOUR CODE
        return out


class ResidualBlock(nn.Module):
    """A PlainBlock plus a shortcut: out = block(x) + shortcut(x), with nothing after the sum.

    The shortcut is
    - the identity (nn.Identity()) when Cin == Cout and the block does not downsample;
    - nn.Conv2d(Cin, Cout, kernel_size=1) (stride 1) when the channels change without downsampling;
    - nn.Conv2d(Cin, Cout, kernel_size=1, stride=2) when the block downsamples.

    Submodules (their names are part of the contract):
    - block: PlainBlock(Cin, Cout, downsample)
    - shortcut: the shortcut above

    A block that downsamples needs the 1x1 convolution with stride 2 even when Cin == Cout: the
    identity would add x at its full height and width to block(x), which has half of them.

    Graded by tasks: residual_block.shortcut, residual_block.forward
    """

    def __init__(self, Cin, Cout, downsample=False):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("ResidualBlock.__init__ in models.py (graded by task residual_block.shortcut)")
        # END YOUR CODE

    def forward(self, x):
        """(N, Cin, H, W) -> (N, Cout, H', W'), as PlainBlock.

        Graded by task: residual_block.forward
        """
        out = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ResidualBlock.forward in models.py (graded by task residual_block.forward)")
        # END YOUR CODE
        return out


class ResidualBottleneckBlock(nn.Module):
    """A bottleneck residual block: three pre-activation convolutions
    BN - ReLU - conv 1x1 - BN - ReLU - conv 3x3 - BN - ReLU - conv 1x1
    whose middle runs at a quarter of the output's channels, plus a shortcut chosen as in
    ResidualBlock: out = block(x) + shortcut(x).

    The first convolution maps Cin to Cout // 4 channels (kernel 1, stride 2 when downsampling,
    else 1); the second maps Cout // 4 to Cout // 4 (kernel 3, padding 1, stride 1); the third
    maps Cout // 4 back to Cout (kernel 1, stride 1). All have a bias.

    Submodules (their names are part of the contract):
    - block: nn.Sequential of
      0: nn.BatchNorm2d(Cin), 1: nn.ReLU(),
      2: nn.Conv2d(Cin, Cout // 4, kernel_size=1, stride=2 if downsample else 1),
      3: nn.BatchNorm2d(Cout // 4), 4: nn.ReLU(),
      5: nn.Conv2d(Cout // 4, Cout // 4, kernel_size=3, padding=1),
      6: nn.BatchNorm2d(Cout // 4), 7: nn.ReLU(),
      8: nn.Conv2d(Cout // 4, Cout, kernel_size=1)
    - shortcut: as in ResidualBlock

    Graded by task: bottleneck_block.forward
    """

    def __init__(self, Cin, Cout, downsample=False):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("ResidualBottleneckBlock.__init__ in models.py (graded by task bottleneck_block.forward)")
        # END YOUR CODE

    def forward(self, x):
        """(N, Cin, H, W) -> (N, Cout, H', W'), as PlainBlock.

        Graded by task: bottleneck_block.forward
        """
        out = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ResidualBottleneckBlock.forward in models.py (graded by task bottleneck_block.forward)")
        # END YOUR CODE
        return out


class ResNetStem(nn.Module):
    """The first layer of the network: conv 3x3 (padding 1, stride 1) - ReLU.

    Submodules (their names are part of the contract):
    - net: nn.Sequential of 0: nn.Conv2d(Cin, Cout, kernel_size=3, padding=1), 1: nn.ReLU()

    Graded by task: resnet.stem_and_stage
    """

    def __init__(self, Cin=3, Cout=8):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNetStem.__init__ in models.py (graded by task resnet.stem_and_stage)")
        # END YOUR CODE

    def forward(self, x):
        """(N, Cin, H, W) -> (N, Cout, H, W).

        Graded by task: resnet.stem_and_stage
        """
        out = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNetStem.forward in models.py (graded by task resnet.stem_and_stage)")
        # END YOUR CODE
        return out


class ResNetStage(nn.Module):
    """num_blocks blocks in a row: the first maps Cin to Cout channels and downsamples when asked;
    the others map Cout to Cout without downsampling.

    Submodules (their names are part of the contract):
    - net: nn.Sequential of block(Cin, Cout, downsample), then num_blocks - 1 times
      block(Cout, Cout) (so "net.0", "net.1", ...)

    Inputs:
    - block: The class of the blocks: PlainBlock, ResidualBlock or ResidualBottleneckBlock

    Graded by task: resnet.stem_and_stage
    """

    def __init__(self, Cin, Cout, num_blocks, downsample=True, block=ResidualBlock):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNetStage.__init__ in models.py (graded by task resnet.stem_and_stage)")
        # END YOUR CODE

    def forward(self, x):
        """(N, Cin, H, W) -> (N, Cout, H', W').

        Graded by task: resnet.stem_and_stage
        """
        out = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNetStage.forward in models.py (graded by task resnet.stem_and_stage)")
        # END YOUR CODE
        return out


class ResNet(nn.Module):
    """A residual network: a stem, stages of blocks, global average pooling, a linear classifier.

    stage_args lists one tuple (Cin, Cout, num_blocks, downsample) per stage. The stem maps the
    image's Cin channels to the first stage's Cin; every stage is
    ResNetStage(Cin, Cout, num_blocks, downsample, block); the scores are a linear function of
    the last stage's output averaged over its height and width.

    Submodules (their names are part of the contract):
    - cnn: nn.Sequential of ResNetStem(Cin, stage_args[0][0]) and then one ResNetStage per
      tuple of stage_args (so "cnn.0" is the stem and "cnn.1", "cnn.2", ... the stages)
    - fc: nn.Linear(stage_args[-1][1], num_classes). It may sit inside an nn.Sequential with
      layers that hold no parameters, e.g. nn.Sequential(nn.Flatten(), nn.Linear(...)), whose
      keys are then fc.1.weight and fc.1.bias: the grader loads its weights under either name and
      grades what the network computes

    Inputs:
    - stage_args: The stages, as above
    - Cin: Channels of the input images
    - block: The class of the blocks: PlainBlock, ResidualBlock or ResidualBottleneckBlock
    - num_classes: Number of scores per image

    Graded by tasks: resnet.shapes, resnet.parameters
    """

    def __init__(self, stage_args, Cin=3, block=ResidualBlock, num_classes=10):
        super().__init__()
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNet.__init__ in models.py (graded by tasks resnet.shapes, resnet.parameters)")
        # END YOUR CODE

    def forward(self, x):
        """Scores of shape (N, num_classes) for images x of shape (N, Cin, H, W).

        Graded by tasks: resnet.shapes, resnet.forward, resnet.gradients
        """
        scores = None
        # BEGIN YOUR CODE
        raise NotImplementedError("ResNet.forward in models.py (graded by task resnet.forward)")
        # END YOUR CODE
        return scores


# Named networks: (block, stage_args). The depth in a name counts the stem, every convolution of
# the blocks and the classifier; the small ones are for quick experiments.
NETWORKS = {
    "plain8": (PlainBlock, [(8, 8, 1, False), (8, 16, 1, True), (16, 32, 1, True)]),
    "resnet8": (ResidualBlock, [(8, 8, 1, False), (8, 16, 1, True), (16, 32, 1, True)]),
    "resnet11": (ResidualBottleneckBlock, [(8, 8, 1, False), (8, 16, 1, True), (16, 32, 1, True)]),
    "plain32": (PlainBlock, [(8, 8, 5, False), (8, 16, 5, True), (16, 32, 5, True)]),
    "resnet32": (ResidualBlock, [(8, 8, 5, False), (8, 16, 5, True), (16, 32, 5, True)]),
    "resnet47": (ResidualBottleneckBlock, [(32, 32, 5, False), (32, 64, 5, True), (64, 128, 5, True)]),
}


def get_resnet(name, num_classes=10):
    """The network NETWORKS names, as a ResNet for 3-channel images."""
    block, stage_args = NETWORKS[name]
    return ResNet(stage_args, Cin=3, block=block, num_classes=num_classes)


# -- Training --------------------------------------------------------------------------------------


def create_resnet_trainer_instance(data_dict, dtype, device):
    """Build the Trainer that trains a residual network to at least 80 % accuracy on CIFAR-10.

    Choose the network (a named one from get_resnet or your own stage_args and block), the
    optimizer (any of torch.optim) and the Trainer's options (batch size, epochs, learning-rate
    schedule, augmentation, channels_last, autocast) yourself.

    The grader calls trainer.train(time_limit=...) itself, with the limit that assignment.yaml
    states (60 seconds on a GPU), and then scores trainer.model on held-out CIFAR-10 images it
    has not shown the trainer: the target is at least 80 %. Training stops early, keeping the
    best parameters so far, when the limit is near, so more epochs than fit do no harm (a
    schedule="one_cycle" Trainer also anneals its learning rate by the time left). Do not call
    train() here; leave verbose off.

    Inputs:
    - data_dict: Dictionary with X_train, y_train, X_val, y_val: images are tensors of shape
      (N, 3, 32, 32) (mean image subtracted), labels integer tensors of shape (N,), all
      already on the device
    - dtype: torch dtype for the network's parameters
    - device: Device for the network's parameters ("cuda", or "cpu" when graded with
      --device cpu)

    Returns:
    - trainer: A Trainer (trainer.py) whose network is a ResNet

    Graded by task: resnet.cifar10
    """
    trainer = None
    # BEGIN YOUR CODE
    raise NotImplementedError("create_resnet_trainer_instance in models.py (graded by task resnet.cifar10)")
    # END YOUR CODE
    return trainer
