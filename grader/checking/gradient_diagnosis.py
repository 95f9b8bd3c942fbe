"""What a wrong gradient looks like, in words a student can act on.

Given the analytic gradient a submission returned and the numeric one the grader computed (for every
element, or for a slice of them), name the pattern of the error: off by a constant factor (and which:
N, 2, 1/N, ...), the wrong sign, transposed, zero where it should not be, nonzero where the input has
no effect, wrong only at one position along an axis (the first or last element, or every k-th one:
the edge or one corner of each window). Pure NumPy; nothing here talks to the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# Two gradients "agree" at an element when they are this close relative to the gradient's scale;
# pattern tests are about structure, so they are looser than the check's own tolerance.
_PATTERN_RTOL = 1e-3


@dataclass(frozen=True)
class Sizes:
    """Sizes a constant factor may be made of, by name, e.g. {"N": 4} for the batch size."""

    named: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, **sizes: int) -> "Sizes":
        return cls(tuple((k, int(v)) for k, v in sizes.items() if int(v) > 1))


def _close(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    return np.abs(a - b) <= _PATTERN_RTOL * scale + 1e-12


def describe_factor(factor: float, sizes: Sizes) -> Optional[str]:
    """`0.25` with N=4 -> "1/N (N = 4)"; None when the factor has no simple name."""
    candidates: list[tuple[str, float]] = [("2", 2.0), ("1/2", 0.5), ("-1 (the wrong sign)", -1.0),
                                           ("-2", -2.0), ("-1/2", -0.5)]
    for name, size in sizes.named:
        candidates += [(f"{name} ({name} = {size})", float(size)), (f"1/{name} ({name} = {size})", 1.0 / size),
                       (f"2{name} ({name} = {size})", 2.0 * size), (f"1/(2{name}) ({name} = {size})", 0.5 / size),
                       (f"-1/{name} ({name} = {size})", -1.0 / size), (f"-{name} ({name} = {size})", -float(size))]
    names = [name for name, value in candidates if abs(factor - value) <= 1e-3 * abs(value)]
    return " = ".join(names) if names else None


def constant_factor(analytic: np.ndarray, numeric: np.ndarray) -> Optional[float]:
    """c when analytic = c * numeric everywhere (c != 1), else None."""
    norm = float(np.sum(numeric * numeric))
    if norm == 0.0:
        return None
    c = float(np.sum(analytic * numeric)) / norm
    scale = float(np.max(np.abs(numeric)))
    if abs(c - 1.0) < 1e-3 or not np.all(_close(analytic, c * numeric, abs(c) * scale)):
        return None
    return c


def patterns(analytic: np.ndarray, numeric: np.ndarray, sizes: Sizes = Sizes()) -> list[str]:
    """Sentences naming the structure of `analytic - numeric` (same shapes); [] when none is clear."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    scale = max(float(np.max(np.abs(n), initial=0.0)), float(np.max(np.abs(a), initial=0.0)), 1e-300)
    wrong = ~_close(a, n, scale)
    if not wrong.any():
        return []
    found: list[str] = []
    if np.all(a == 0) and np.any(n != 0):
        return ["it is all zeros: no gradient reaches this input"]
    c = constant_factor(a, n)
    if c is not None:
        name = describe_factor(c, sizes)
        if c == -1 or (name and name.startswith("-1 ")):
            return ["every element has the wrong sign"]
        return [f"every element is {name or f'{c:.4g}'} times the numeric gradient"
                + (": a scale factor is missing or extra" if name else "")]
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and np.all(_close(a, n.T, scale)):
        return ["it is the transpose of the numeric gradient"]
    if np.all(_close(a, -n, scale)[wrong]):
        found.append(f"{int(wrong.sum())} of {a.size} elements have the wrong sign, the others are right")
    zero_where_not = wrong & (a == 0) & (n != 0)
    if zero_where_not.any() and np.array_equal(zero_where_not, wrong):
        found.append(f"it is 0 at {int(wrong.sum())} of {a.size} elements where the numeric gradient is not "
                     "(a mask on the wrong array, or a path of the gradient left out)")
    extra = wrong & (np.abs(n) <= 1e-9 * scale) & (a != 0)
    if extra.any() and np.array_equal(extra, wrong):
        found.append(f"it is nonzero at {int(wrong.sum())} element(s) that do not affect the output (the "
                     "numeric gradient there is 0): the gradient is routed to too many elements")
    found += _positional(wrong)
    return found


_ORDINALS = {2: "2nd", 3: "3rd", 4: "4th"}


def _positional(wrong: np.ndarray) -> list[str]:
    """Errors confined to one index, or to exactly the indices of one residue modulo a small stride,
    along an axis (the first or last row, one element of each window)."""
    if wrong.ndim == 0 or wrong.all():
        return []
    indices = np.argwhere(wrong)
    found = []
    for axis, size in enumerate(wrong.shape):
        if size < 3:
            continue
        positions = set(int(p) for p in np.unique(indices[:, axis]))
        if positions == {0}:
            found.append(f"only the first position along axis {axis} is wrong")
        elif positions == {size - 1}:
            found.append(f"only the last position along axis {axis} is wrong")
        elif len(positions) == 1:
            found.append(f"only position {positions.pop()} along axis {axis} is wrong")
        else:
            for stride in (4, 3, 2):
                residue = min(positions) % stride
                if size >= 2 * stride and positions == set(range(residue, size, stride)):
                    found.append(f"only every {_ORDINALS[stride]} position along axis {axis} (index {residue} of "
                                 f"each group of {stride}: one element of each window) is wrong")
                    break
    return found[:2]


def worst_elements(analytic: np.ndarray, numeric: np.ndarray, index_of: Sequence[tuple[int, ...]],
                   count: int = 3, wrong: Optional[np.ndarray] = None) -> list[str]:
    """The `count` largest disagreements as "[i, j]: analytic 0.1, numeric 0.4"; `index_of[k]` is the
    position in the input of the k-th compared element; `wrong`, where given, limits the list to the
    elements outside the tolerance."""
    a, n = np.ravel(analytic), np.ravel(numeric)
    listed = np.ravel(wrong) if wrong is not None else a != n
    order = np.argsort(-np.abs(a - n), kind="stable")[:count]
    return [f"{list(index_of[k])}: analytic {a[k]:.6g}, numeric {n[k]:.6g}" for k in order if listed[k] and a[k] != n[k]]
