"""Wall time of `grader grade a1_fc_numpy` on the reference, start-up included, for the tasks scored
by checks (budget: 5 s on 2 CPU cores). Prints the median of several runs.

    python benchmarks/bench_grade.py [--runs 5] [--assignment a1_fc_numpy] [--mode official]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 5.0


def time_grade(assignment: str, mode: str) -> float:
    command = [sys.executable, "-m", "grader", "grade", assignment, "--submission", f"reference/{assignment}",
               "--mode", mode, "--skip-training", "--no-zip", "--quiet"]
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0 or "Score:" not in completed.stdout:
        raise SystemExit(f"grading failed:\n{completed.stdout}\n{completed.stderr}")
    score = completed.stdout.split("Score:")[1].split("(")[0].strip()
    print(f"  run: {elapsed:6.2f} s   score {score}", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--assignment", default="a1_fc_numpy")
    parser.add_argument("--mode", choices=["official", "public"], default="official")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    print(f"grader grade {args.assignment} (reference, {args.mode} mode, tasks scored by checks)")
    times = [time_grade(args.assignment, args.mode) for _ in range(args.runs)]
    median = statistics.median(times)
    print(f"| what | median | min | max | budget |\n|---|---|---|---|---|\n"
          f"| grade {args.assignment} ({args.mode}) | {median:.2f} s | {min(times):.2f} s | {max(times):.2f} s "
          f"| {BUDGET_S:.0f} s ({'within' if median <= BUDGET_S else 'OVER'}) |")


if __name__ == "__main__":
    main()
