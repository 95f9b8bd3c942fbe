"""The reference passes every check whatever the seed: official grading of each assignment's reference
over many fresh seeds (the tasks scored by checks, hidden checks included), in parallel processes.
A tolerance that is too tight, or an input that can land on a kink, shows up here as a failure with
its seed, which `grader grade A --seed S` reproduces.

    python benchmarks/bench_reference_seeds.py [--seeds 200] [--jobs 2] [--assignments a1_fc_numpy,a2_cnn_torch]
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402


def grade_once(job: tuple[str, int]) -> tuple[str, int, int, list[str], float]:
    """(assignment, seed) -> (assignment, seed, checks run, failures, seconds)."""
    from grader.assignment import load_assignment
    from grader.engine.grading import GradeOptions, grade
    from grader.results import Outcome
    from grader.engine.submission import prepare_submission

    assignment_id, seed = job
    assignment = load_assignment(assignment_id, ROOT)
    assert assignment.reference_directory is not None
    submission = prepare_submission(assignment, assignment.reference_directory)
    start = time.perf_counter()
    try:
        result = grade(assignment, submission, GradeOptions(mode="official", seed=seed, training=False))
    finally:
        submission.cleanup()
    checks = [c for t in result.tasks for c in t.checks]
    failures = [f"{c.name}: {c.outcome.value}: {c.message}" for c in checks
                if c.outcome not in (Outcome.PASSED, Outcome.SKIPPED)]
    ran = sum(1 for c in checks if c.outcome is not Outcome.SKIPPED)
    return assignment_id, seed, ran, failures, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignments", default="a1_fc_numpy,a2_cnn_torch")
    args = parser.parse_args()
    assignments = args.assignments.split(",")
    jobs = [(a, secrets.randbelow(2**31)) for _ in range(args.seeds) for a in assignments]
    print(f"machine: {describe_machine()}")
    start = time.perf_counter()
    runs: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    failed_runs: dict[str, list[str]] = {a: [] for a in assignments}
    seconds: dict[str, list[float]] = {a: [] for a in assignments}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for done, (assignment_id, seed, ran, failures, elapsed) in enumerate(
                pool.imap_unordered(grade_once, jobs), 1):
            runs[assignment_id] += 1
            checks[assignment_id] += ran
            seconds[assignment_id].append(elapsed)
            for failure in failures:
                failed_runs[assignment_id].append(f"seed {seed}: {failure}")
            if done % 20 == 0:
                print(f"  {done}/{len(jobs)} gradings", file=sys.stderr, flush=True)
    print("| assignment | seeds | checks run | failed checks | median s per grading |")
    print("|---|---|---|---|---|")
    for a in assignments:
        median = sorted(seconds[a])[len(seconds[a]) // 2]
        print(f"| {a} | {runs[a]} | {checks[a]} | {len(failed_runs[a])} | {median:.2f} |")
    for a in assignments:
        for line in failed_runs[a]:
            print(f"{a}: {line}")
    print(f"total wall time {time.perf_counter() - start:.0f} s with {args.jobs} processes")
    return 1 if any(failed_runs.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
