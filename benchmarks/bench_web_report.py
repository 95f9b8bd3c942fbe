"""report.html: the time to write a batch's web report (the page and one page per submission) for N
synthetic records, median of several runs, against the time a batch spends grading one submission.

The records are one real grading of a1's reference (tasks scored by checks) copied N times with
scores, outcomes and messages varied, each with both training tasks' runs and a 200-iteration loss
history, so every plot the report draws is drawn. The grading time is measured here by grading that
reference once in the benchmark's process, checks only: a batch with training adds the training
tasks' time (their limits: 120 s and 60 s on CPU for a1), so the figure is a lower bound.

    python benchmarks/bench_web_report.py [--records 300] [--runs 5]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "a1_fc_numpy"


def graded_reference(work: Path):
    from grader.assignment import load_assignment
    from grader.engine.grading import GradeOptions, grade
    from grader.engine.submission import prepare_submission

    assignment = load_assignment(ASSIGNMENT, ROOT)
    folder = work / "reference"
    folder.mkdir()
    for name in assignment.spec.student_files:
        shutil.copyfile(assignment.reference_directory / name, folder / name)
    start = time.perf_counter()
    submission = prepare_submission(assignment, folder)
    try:
        result = grade(assignment, submission, GradeOptions(mode="official", seed=1, training=False))
    finally:
        submission.cleanup()
    return assignment, result, time.perf_counter() - start


def training_task(assignment, task_id: str, rng: random.Random):
    from grader.engine.training_history import history_from
    from grader.results import Outcome, TaskResult, TrainingMeasurement

    spec = assignment.spec.task(task_id)
    target = spec.training.target["synthetic"]
    accuracy, seconds = rng.uniform(0.2, 1.0), rng.uniform(1, 1.2 * spec.training.time_limit_s)
    decay, floor = rng.uniform(30, 300), rng.uniform(0.2, 1.2)
    loss = [2.3 * 2.718 ** (-i / decay) + floor + rng.gauss(0, 0.05) for i in range(200)]
    val = [0.1 + (accuracy - 0.1) * k / 5 for k in range(6)]
    history = history_from(loss, [min(1.0, v + 0.05) for v in val], val)
    passed = accuracy >= target
    message = (f"{accuracy:.1%} accuracy on 1000 held-out images (synthetic, cpu) after {seconds:.1f} s of training "
               f"and prediction; target {target:.0%}")
    return TaskResult(task_id, spec.title, spec.points, spec.points if passed else 0.0,
                      Outcome.PASSED if passed else Outcome.FAILED, message, kind="training",
                      training=TrainingMeasurement(accuracy, seconds, "cpu", "synthetic", target, None, history=history,
                                                   time_limit_s=spec.training.time_limit_s))


def synthetic_records(assignment, result, count: int) -> list[dict]:
    from grader.batch.job import JobSettings, SubmissionJob, graded_record
    from grader.results import Outcome

    rng = random.Random(0)
    settings = JobSettings(assignment=ASSIGNMENT, project_root=str(ROOT), mode="official", seed=1)
    trained_ids = [t.id for t in assignment.spec.tasks if t.training is not None]
    records = []
    for i in range(count):
        tasks = []
        for task in result.tasks:
            if rng.random() < 0.15:
                outcome = rng.choice([Outcome.FAILED, Outcome.ERROR, Outcome.NOT_IMPLEMENTED, Outcome.TIMEOUT])
                task = dataclasses.replace(task, points=0.0, outcome=outcome,
                                           message=f"{task.task_id}: differs by {rng.random():.3g} at [{rng.randrange(9)}]",
                                           detail=f"hint: a common mistake number {rng.randrange(3)}")
            tasks.append(task)
        tasks += [training_task(assignment, task_id, rng) for task_id in trained_ids]
        varied = dataclasses.replace(result, tasks=tuple(tasks))
        job = SubmissionJob(f"student{i:04d}", f"/batch/student{i:04d}", "0" * 64, settings)
        records.append(graded_record(job, varied, 5.0))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from grader.batch.outputs import TaskColumn
    from grader.batch.web_report import write_web_report

    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-web-report-") as work:
        assignment, result, grading_s = graded_reference(Path(work))
        records = synthetic_records(assignment, result, args.records)
        tasks = [TaskColumn(t.id, t.points) for t in assignment.spec.tasks]
        times = []
        for run in range(args.runs):
            out = Path(work) / f"out{run}"
            start = time.perf_counter()
            path = write_web_report(out, ASSIGNMENT, copy.deepcopy(records) if run == 0 else records, tasks)
            times.append(time.perf_counter() - start)
        size = path.stat().st_size
        pages = sum(p.stat().st_size for p in (out / "submissions").glob("*/index.html"))
    median = statistics.median(times)
    print(f"{args.records} synthetic records of {ASSIGNMENT} (every task, both training tasks with histories), "
          f"{args.runs} runs")
    print(f"report: median {median:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}), "
          f"{median / args.records * 1000:.1f} ms per submission; report.html {size / 1024:.0f} KiB, "
          f"submission pages {pages / 1024 / args.records:.0f} KiB each")
    print(f"grading one submission (the reference, checks only, measured here): {grading_s:.2f} s; "
          f"the report adds {100 * median / args.records / grading_s:.2f} % to a batch graded one at a time")


if __name__ == "__main__":
    main()
