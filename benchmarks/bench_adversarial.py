"""Grades every hostile and broken submission of tests/adversarial_cases.py end to end and prints,
for each, what was expected and what was observed: the score against the honest score (with the
targeted tasks' outcomes), the untouched tasks, the report, the project's files, the processes left
behind and the containment of sockets and protected files.

    python benchmarks/bench_adversarial.py [--level default] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from machine import describe_machine  # noqa: E402

from adversarial_cases import (  # noqa: E402
    CASES, Observation, Verdict, case_named, grade_case, honest_score, judge, resolved_level,
)
from support import a1  # noqa: E402


def cell(problems: list[str], good: str = "ok") -> str:
    if not problems:
        return good
    text = problems[0].splitlines()[0]
    more = f" (+{len(problems) - 1})" if len(problems) > 1 else ""
    return ("NO: " + text[:90] + more).replace("|", "\\|")


def score_cell(observation: Observation, verdict: Verdict, honest: float) -> str:
    result = observation.result
    if result is None:
        return "grading raised"
    outcomes = {task.task_id: task.outcome.value for task in result.tasks}
    targets = ", ".join(outcomes.get(task_id, "missing") for task_id in observation.case.targets)
    mark = "" if not verdict.score else " NO"
    return f"{result.score:g} / {honest:g} ({targets}){mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="default", help="isolation level: default, process, bwrap, none")
    parser.add_argument("--case", action="append", help="grade only this case (repeatable)")
    args = parser.parse_args()
    cases = [case_named(name) for name in args.case] if args.case else list(CASES)
    assignment = a1()
    print(f"machine: {describe_machine()}")
    resolved, problem = resolved_level(args.level)
    if resolved is None:
        raise SystemExit(f"the {args.level} isolation level cannot run here: {problem}")
    print(f"{len(cases)} submissions of {assignment.id}, official mode, isolation level {args.level} "
          f"({resolved})\n")
    print("| case | kind | expected | score / honest (targets) | untouched | report | files | processes "
          "| contained | time | result |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    failed = 0
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="bench-adversarial-") as workdir:
            observation = grade_case(case, args.level, Path(workdir), assignment)
        verdict = judge(observation, assignment)
        failed += not verdict.ok
        print(f"| {case.name} | {case.kind} | {case.expected} "
              f"| {score_cell(observation, verdict, honest_score(case, assignment))} "
              f"| {cell(verdict.untouched, 'full points')} | {cell(verdict.report)} | {cell(verdict.files)} "
              f"| {cell(verdict.processes)} | {cell(verdict.contained)} "
              f"| {observation.seconds:.1f} s{' NO' if verdict.time else ''} "
              f"| {'PASS' if verdict.ok else 'FAIL'} |", flush=True)
    print(f"\n{len(cases) - failed} of {len(cases)} cases pass")


if __name__ == "__main__":
    main()
