"""Scores do not depend on the seed: official grading over many fresh seeds (the tasks scored by checks,
hidden checks included), in parallel processes, of each assignment's reference (every check passes), and
with --mistakes K of each catalogued mistake and of the stubs K seeds each (every seed loses the same
tasks). A tolerance that is too tight, or an input that can land on a kink, shows up here as a failure
with its seed, which `grader grade A --seed S` reproduces.

    python benchmarks/bench_reference_seeds.py [--seeds 200] [--jobs 2] [--assignments a1_fc_numpy,a2_cnn_torch]
        [--mistakes K] [--mistake-tasks REGEX]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REFERENCE, STUBS = "reference", "stubs"


class Job(NamedTuple):
    assignment: str
    seed: int
    submission: str  # REFERENCE, STUBS, or a catalogued mistake's id


class Graded(NamedTuple):
    job: Job
    checks_run: int
    failures: list[str]    # checks that did not pass
    lost: frozenset[str]   # tasks below their points
    score: float
    seconds: float


def _folder(assignment, submission: str, work: Path) -> Path:
    """The reference's student files, the stubs', or the reference's with one mistake made."""
    from grader.oracle.mistakes import load_catalogue

    if submission == REFERENCE:
        return assignment.reference_directory
    folder = work / "submission"
    source = assignment.directory if submission == STUBS else assignment.reference_directory
    folder.mkdir()
    for name in assignment.spec.student_files:
        shutil.copyfile(source / name, folder / name)
    if submission != STUBS:
        mistake = next(m for m in load_catalogue(assignment) if m.id == submission)
        (folder / mistake.spec.file).write_text(mistake.source_text)
    return folder


def grade_once(job: Job) -> Graded:
    from grader.assignment import load_assignment
    from grader.engine.grading import GradeOptions, grade
    from grader.engine.submission import prepare_submission
    from grader.results import Outcome

    assignment = load_assignment(job.assignment, ROOT)
    assert assignment.reference_directory is not None
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as work:
        submission = prepare_submission(assignment, _folder(assignment, job.submission, Path(work)))
        start = time.perf_counter()
        try:
            result = grade(assignment, submission, GradeOptions(mode="official", seed=job.seed, training=False))
        finally:
            submission.cleanup()
    checks = [c for t in result.tasks for c in t.checks]
    failures = [f"{c.name}: {c.outcome.value}: {c.message}" for c in checks
                if c.outcome not in (Outcome.PASSED, Outcome.SKIPPED)]
    ran = sum(1 for c in checks if c.outcome is not Outcome.SKIPPED)
    lost = frozenset(t.task_id for t in result.tasks if t.points < t.max_points)
    return Graded(job, ran, failures, lost, sum(t.points for t in result.tasks), time.perf_counter() - start)


def plan(assignments: list[str], seeds: int, mistakes: int, mistake_tasks: Optional[str]) -> list[Job]:
    from grader.assignment import load_assignment
    from grader.oracle.mistakes import load_catalogue

    jobs = [Job(a, secrets.randbelow(2**31), REFERENCE) for _ in range(seeds) for a in assignments]
    for a in assignments if mistakes else ():
        catalogue = load_catalogue(load_assignment(a, ROOT))
        chosen = [m.id for m in catalogue if mistake_tasks is None or re.search(mistake_tasks, m.spec.task)]
        jobs += [Job(a, secrets.randbelow(2**31), s) for s in [STUBS, *chosen] for _ in range(mistakes)]
    return jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="fresh seeds for each reference")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignments", default="a1_fc_numpy,a2_cnn_torch,a3_resnet_pytorch")
    parser.add_argument("--mistakes", type=int, default=0, metavar="K",
                        help="also grade the stubs and each catalogued mistake with K fresh seeds")
    parser.add_argument("--mistake-tasks", metavar="REGEX", help="only the mistakes of the tasks this matches")
    args = parser.parse_args()
    assignments = args.assignments.split(",")
    jobs = plan(assignments, args.seeds, args.mistakes, args.mistake_tasks)
    print(f"machine: {describe_machine()}")
    start = time.perf_counter()
    graded: list[Graded] = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for done, result in enumerate(pool.imap_unordered(grade_once, jobs), 1):
            graded.append(result)
            if done % 20 == 0:
                print(f"  {done}/{len(jobs)} gradings", file=sys.stderr, flush=True)
    problems = []
    print("| assignment | reference seeds | checks run | failed checks | median s per grading |"
          + (" mistakes and stubs | seeds each | graded otherwise by some seed |" if args.mistakes else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if args.mistakes else ""))
    for a in assignments:
        references = [g for g in graded if g.job.assignment == a and g.job.submission == REFERENCE]
        seconds = sorted(g.seconds for g in references)
        failed = [f"{a}: seed {g.job.seed}: {f}" for g in references for f in g.failures]
        problems += failed
        row = (f"| {a} | {len(references)} | {sum(g.checks_run for g in references)} | {len(failed)} | "
               f"{seconds[len(seconds) // 2] if seconds else float('nan'):.2f} |")
        if args.mistakes:
            verdicts: dict[str, set[tuple[frozenset[str], float]]] = defaultdict(set)
            seeds_of: dict[str, list[int]] = defaultdict(list)
            for g in graded:
                if g.job.assignment == a and g.job.submission != REFERENCE:
                    verdicts[g.job.submission].add((g.lost, g.score))
                    seeds_of[g.job.submission].append(g.job.seed)
            varying = sorted(s for s, v in verdicts.items() if len(v) > 1)
            problems += [f"{a}: {s} is graded otherwise by its seeds {seeds_of[s]}: "
                         + "; ".join(f"{score:g} points, lost {sorted(lost)}" for lost, score in verdicts[s])
                         for s in varying]
            row += f" {len(verdicts)} | {args.mistakes} | {len(varying)} |"
        print(row)
    for line in problems:
        print(line)
    print(f"total wall time {time.perf_counter() - start:.0f} s with {args.jobs} processes")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
