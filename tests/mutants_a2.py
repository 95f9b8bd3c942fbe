"""Deliberately wrong versions of the a2_cnn_torch reference: typical student mistakes.

Each mutant replaces one small snippet of one reference file (reference/a2_cnn_torch/). A grader
that is worth its points fails every one of them on some task; the tests that say which tasks
live elsewhere.

The mistakes that checks catch are the assignment's catalogue, reference/a2_cnn_torch/mistakes.yaml,
which also holds a hint for each; the training entries with hopeless hyper-parameters, which only
a training task notices, are written here.
"""

from __future__ import annotations

from mutants_a1 import Mutant, apply, load_mutants

__all__ = ["MUTANTS", "Mutant", "apply"]

# Training entries with hopeless hyper-parameters: training tasks have no checks to explain, so
# they are not in the catalogue.
TRAINING_ENTRY_MUTANTS: list[Mutant] = [
    Mutant(
        "two_layer_solver_learning_rate_too_small",
        "models.py",
        'optim_config={"learning_rate": 1e-3},',
        'optim_config={"learning_rate": 1e-7},',
        "I picked a learning rate so small that nothing trains in the time limit.",
    ),
    Mutant(
        "three_layer_overfit_weight_scale_too_small",
        "models.py",
        "    weight_scale = 5e-2\n    learning_rate = 1e-3\n",
        "    weight_scale = 1e-3\n    learning_rate = 1e-3\n",
        "I kept a tiny weight scale; the signal vanishes before the output.",
    ),
    Mutant(
        "five_layer_overfit_learning_rate_too_small",
        "models.py",
        "    weight_scale = 1e-1\n    learning_rate = 1e-3\n",
        "    weight_scale = 1e-1\n    learning_rate = 1e-5\n",
        "My learning rate was too small to fit 50 images in 20 epochs.",
    ),
    Mutant(
        "conv_solver_learning_rate_too_small",
        "models.py",
        'optim_config={"learning_rate": 2e-3},',
        'optim_config={"learning_rate": 2e-8},',
        "I picked a learning rate so small that the network barely moves in 60 seconds.",
    ),
]

MUTANTS: list[Mutant] = load_mutants("a2_cnn_torch") + TRAINING_ENTRY_MUTANTS
