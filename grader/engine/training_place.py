"""Where a submission's training tasks run: the device the worker sees, the CPU cores it is pinned to,
and what else of this grader runs meanwhile. A training task never shares what it trains on with
another training task of the same grader (batch grading lends each place to one submission at a
time, see grader.batch.local), and the time limit is calibrated on the same place
(grader.engine.calibration), so that a verdict does not depend on what else the machine runs."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

ALONE = "nothing else of this grader"


@dataclass(frozen=True)
class TrainingPlace:
    # The training worker's environment beyond the scrubbed one (CUDA_VISIBLE_DEVICES of a lent GPU).
    env: dict[str, str] = field(default_factory=dict)
    # The CPU cores the training worker (and the calibration workload) are pinned to; None: those of
    # this process, unpinned.
    cores: Optional[tuple[int, ...]] = None
    # What else this grader runs meanwhile, in words for the result ("checks of other submissions on
    # cores 1-3").
    alongside: str = ALONE

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """This thread pinned to `cores` while inside (a worker started inside inherits them)."""
        if self.cores is None or not hasattr(os, "sched_setaffinity"):
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)


def usable_cores() -> tuple[int, ...]:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def describe_cores(cores: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) -> 'cores 0-2, 5'; (3,) -> 'core 3'."""
    runs: list[str] = []
    ordered = sorted(cores)
    start = previous = ordered[0] if ordered else None
    for core in ordered[1:] + [None]:  # type: ignore[list-item]
        if core is not None and previous is not None and core == previous + 1:
            previous = core
            continue
        runs.append(f"{start}" if start == previous else f"{start}-{previous}")
        start = previous = core
    return ("core " if len(ordered) == 1 else "cores ") + ", ".join(runs)
