"""Training entries for the overfitting tasks; the grader calls them like the entries in models.py.

Provided; you do not need to change this file. Each builds a fully-connected network with the
weight scale and learning rate your models.get_*_network_params() choose, and a Solver that
trains it with SGD for 20 epochs in batches of 25 on the 50 training images it is given.
"""

from . import models, optim
from .solver import Solver


def _overfit_solver(hidden_dims, params, data_dict, dtype, device):
    weight_scale, learning_rate = params
    model = models.FullyConnectedNet(
        hidden_dims, weight_scale=weight_scale, dtype=dtype, device=device
    )
    return Solver(
        model,
        data_dict,
        print_every=10**9,
        num_epochs=20,
        batch_size=25,
        update_rule=optim.sgd,
        optim_config={"learning_rate": learning_rate},
        device=device,
        verbose=False,
    )


def three_layer_overfit_solver(data_dict, dtype, device):
    """A Solver for FullyConnectedNet([100, 100]) with models.get_three_layer_network_params()."""
    params = models.get_three_layer_network_params()
    return _overfit_solver([100] * 2, params, data_dict, dtype, device)


def five_layer_overfit_solver(data_dict, dtype, device):
    """A Solver for FullyConnectedNet([100] * 4) with models.get_five_layer_network_params()."""
    params = models.get_five_layer_network_params()
    return _overfit_solver([100] * 4, params, data_dict, dtype, device)
