"""Inputs for checks that keep correct code away from kinks, so it never fails by accident. Where an
input had to be drawn again for that reason, the check's notes say so."""

from __future__ import annotations

import numpy as np

from grader.checking.notes import note


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], margin: float = 1e-2) -> np.ndarray:
    """Standard-normal values with |v| >= margin: a ReLU's kink at 0 is never straddled by the
    finite-difference step. Values too close to 0 are drawn again."""
    values = rng.standard_normal(shape)
    redrawn = 0
    for _ in range(100):
        close = np.abs(values) < margin
        if not close.any():
            break
        redrawn += int(close.sum())
        values[close] = rng.standard_normal(int(close.sum()))
    else:
        raise RuntimeError("could not draw values away from zero")
    if redrawn:
        note(f"{redrawn} input value(s) within {margin:g} of the kink at 0 were drawn again, so that the "
             "numeric gradient is exact")
    return values


def distinct(rng: np.random.Generator, shape: tuple[int, ...], spacing: float = 1e-2) -> np.ndarray:
    """Values in random order, any two at least `spacing` apart: no max-pooling window has a tie."""
    count = int(np.prod(shape))
    values = (np.arange(count) - count / 2) * spacing
    return rng.permutation(values).reshape(shape)


def hinge_safe_scores(rng: np.random.Generator, labels: np.ndarray, num_classes: int, margin: float = 1.0,
                      gap: float = 1e-2) -> np.ndarray:
    """Scores (N, C) for a multiclass hinge loss where no s_j - s_y + margin lies within `gap` of 0."""
    scores = 2 * rng.standard_normal((len(labels), num_classes))
    for _ in range(1000):
        slack = scores - scores[np.arange(len(labels)), labels][:, None] + margin
        slack[np.arange(len(labels)), labels] = 1.0
        bad = np.any(np.abs(slack) < gap, axis=1)
        if not bad.any():
            return scores
        note(f"{int(bad.sum())} row(s) of scores had a margin within {gap:g} of the hinge's kink and were "
             "drawn again")
        scores[bad] = 2 * rng.standard_normal((int(bad.sum()), num_classes))
    raise RuntimeError("could not draw hinge-safe scores")
