"""Deliberately wrong versions of the a3_resnet_pytorch reference: typical student mistakes.

Each mutant replaces one small snippet of reference/a3_resnet_pytorch/models.py. The mistakes that
checks catch are the assignment's catalogue, reference/a3_resnet_pytorch/mistakes.yaml, which also
holds a hint for each; the training entry with hopeless hyper-parameters, which only the training
task notices, is written here.
"""

from __future__ import annotations

from mutants_a1 import Mutant, apply, load_mutants

__all__ = ["MUTANTS", "TRAINING_ENTRY_MUTANTS", "Mutant", "apply"]

TRAINING_ENTRY_MUTANTS: list[Mutant] = [
    Mutant(
        "resnet_trainer_learning_rate_too_small",
        "models.py",
        "batch_size, num_epochs, learning_rate, clip_grad_norm = 64, 3, 0.1, 5.0",
        "batch_size, num_epochs, learning_rate, clip_grad_norm = 64, 3, 1e-7, 5.0",
        "I picked a learning rate so small that the network barely moves in the time limit.",
    ),
]

MUTANTS: list[Mutant] = load_mutants("a3_resnet_pytorch") + TRAINING_ENTRY_MUTANTS
