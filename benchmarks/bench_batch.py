"""Batch grading: submissions per minute, the overhead per submission beyond its checks, and how close
the batch comes to its submissions graded one by one, for N copies of the reference graded by
`grader batch` with the local executor.

Overhead per submission = (batch wall time x jobs / N) - the mean time inside the checks, measured by
the checks themselves; with --jobs 1 that is everything a submission costs that is not checking:
forking its grading process, starting its worker, collecting the checks, loading the reference,
writing its results and committing them. Goal 0.3 s (DESIGN §10 budgets 0.5 s).

Against single gradings: the batch's wall time over (the sum of the submissions' gradings, each timed
in its own process, in the batch run with --jobs 1) / jobs. Goal <= 1.2.

    python benchmarks/bench_batch.py [--submissions 12] [--jobs 1,2] [--assignment a1_fc_numpy] [--mode official]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, yardstick  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 0.3
RATIO_GOAL = 1.2


def build(folder: Path, assignment, count: int) -> None:
    for i in range(count):
        target = folder / f"student{i:03d}"
        target.mkdir(parents=True)
        for name in assignment.spec.student_files:
            shutil.copyfile(assignment.reference_directory / name, target / name)


def measure(assignment_id: str, mode: str, count: int, jobs: int, work: Path) -> dict:
    from grader.assignment import load_assignment
    from grader.batch.run import BatchOptions, grade_batch

    assignment = load_assignment(assignment_id, ROOT)
    subs, out = work / f"subs{jobs}", work / f"out{jobs}"
    build(subs, assignment, count)
    start = time.perf_counter()
    outcome = grade_batch(BatchOptions(assignment=assignment_id, submissions=subs, out=out, jobs=jobs, mode=mode,
                                     seed=1, training=False))
    wall = time.perf_counter() - start
    records = outcome.records
    if any(r["score"] != r["max_score"] for r in records):
        raise SystemExit(f"the reference lost points: {[r['errors'] for r in records if r['errors']]}")
    checks = statistics.fmean(r["checks_s"] for r in records)
    running = statistics.fmean(r["checks_run_seconds"] for r in records)
    inside = statistics.fmean(r["seconds"] for r in records)
    per_submission = wall * jobs / count
    return {"jobs": jobs, "wall": wall, "per_minute": 60 * count / wall, "checks": checks, "running": running,
            "inside": inside, "overhead": per_submission - checks, "beyond_run": per_submission - running,
            "sum_inside": sum(r["seconds"] for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=12)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--assignment", default="a1_fc_numpy")
    parser.add_argument("--mode", choices=["official", "public"], default="official")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    print(yardstick())
    print(f"{args.submissions} copies of the reference of {args.assignment}, {args.mode} mode, tasks scored by checks")
    rows = []
    job_counts = [int(j) for j in args.jobs.split(",")]
    if 1 not in job_counts:
        job_counts.insert(0, 1)  # the single gradings the others are held against
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as work:
        for jobs in job_counts:
            rows.append(measure(args.assignment, args.mode, args.submissions, jobs, Path(work)))
    singles = next(r for r in rows if r["jobs"] == 1)["sum_inside"]
    print(f"{'jobs':>4}  {'wall s':>7}  {'subs/min':>8}  {'checks s':>8}  {'pytest s':>8}  {'graded s':>8}  "
          f"{'overhead s':>10}  {'beyond pytest s':>15}  {'vs singles':>10}")
    for row in rows:
        verdict = "ok" if row["overhead"] <= BUDGET_S else "over"
        ratio = row["wall"] / (singles / row["jobs"])
        print(f"{row['jobs']:>4}  {row['wall']:7.1f}  {row['per_minute']:8.1f}  {row['checks']:8.2f}  "
              f"{row['running']:8.2f}  {row['inside']:8.2f}  {row['overhead']:10.2f} {verdict:<4} "
              f"{row['beyond_run']:15.2f}  {ratio:9.2f}x {'ok' if ratio <= RATIO_GOAL else 'over'}")
    print("checks s: mean time inside the checks' code; pytest s: running them (with pytest's per-check setup "
          "and reports); graded s: a whole grading in its process; overhead: wall x jobs / submissions - checks s "
          f"(goal {BUDGET_S} s); beyond pytest: wall x jobs / submissions - pytest s; vs singles: wall / (the sum "
          f"of the gradings of the --jobs 1 run / jobs) (goal {RATIO_GOAL}x)")


if __name__ == "__main__":
    main()
