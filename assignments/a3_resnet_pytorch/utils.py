"""Looking inside torch.nn modules: names, shapes and counts of parameters, gradients by autograd.

Provided; you do not need to change this file. Use it to inspect your modules; the grader calls
these functions on them too.
"""


def count_parameters(model):
    """Number of learnable numbers in the model (every element of every parameter)."""
    return sum(p.numel() for p in model.parameters())


def parameter_shapes(model):
    """{name: shape} for every parameter of model.named_parameters(), in registration order."""
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def state_shapes(model):
    """{name: shape} for every entry of model.state_dict(): the parameters and the buffers, such
    as batch normalization's running averages."""
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def state_tensors(model):
    """model.state_dict() as a plain dict of detached copies."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def parameter_gradients(model, x, dout):
    """Gradients of sum(model(x) * dout) with respect to every parameter, by autograd.

    Inputs:
    - model: An nn.Module (in whatever mode it is in)
    - x: Its input
    - dout: Upstream gradient, a tensor of the shape of model(x)

    Returns:
    - grads: {name: gradient} for every parameter of model.named_parameters(); None for a
      parameter that no gradient reaches (one that forward does not use)
    """
    model.zero_grad(set_to_none=True)
    (model(x) * dout).sum().backward()
    return {name: None if p.grad is None else p.grad.detach().clone() for name, p in model.named_parameters()}


def as_leaf_parameters(*tensors):
    """Copies of the tensors as leaves that require grad, in a tuple: parameters for barebones code."""
    return tuple(t.detach().clone().requires_grad_(True) for t in tensors)


def buffer_tensors(model):
    """{name: copy} for every buffer of model.named_buffers(), such as batch normalization's
    running averages."""
    return {name: value.detach().clone() for name, value in model.named_buffers()}
