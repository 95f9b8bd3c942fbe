"""Cost and power of the numeric-gradient checks in each mode (auto, element-wise, directional).

1. Cost: the reference graded as a submission (official mode, fixed seed, tasks scored by checks),
   once per mode and repeat; for every gradient comparison, its forward evaluations, round trips to
   the worker and wall time. Budget: a directional check of one layer input costs at most 8 forward
   evaluations, whatever the size of the input.
2. Detection: every catalogued mistake of a task whose checks compare gradients, graded as the
   reference with that one mistake (only its task, no hints) in each mode; detected when the task
   loses points.

    python benchmarks/bench_gradcheck.py [--assignments a1_fc_numpy,a2_cnn_torch] [--repeat 3]
        [--seed 1234] [--skip-detection] [--detection default|full]

By default the detection table covers every such mistake of a1_fc_numpy and those of the layer
tasks of a2_cnn_torch: each of its gradings starts a worker that imports torch, and its model tasks
(TwoLayerNet ... DeepConvNet) are slow under the element-wise mode; `--detection full` adds them.
Run time with the defaults on 2 CPU cores: about 7 minutes (`--detection full`: 1 to 2 more).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from machine import describe_machine  # noqa: E402

from grader.assignment import Assignment, load_assignment  # noqa: E402
from grader.checking.gradcheck import (DIRECTIONAL_PROBES, FORCED_ELEMENTWISE_MAX_SIZE, Measurement, Mode,  # noqa: E402
                              forced_mode, measuring)
from grader.engine.grading import GradeOptions, grade  # noqa: E402
from grader.oracle.mistakes import Mistake, load_catalogue  # noqa: E402
from grader.results import CheckResult, GradingResult  # noqa: E402
from grader.engine.submission import prepare_submission  # noqa: E402

BUDGET_EVALUATIONS = 8
MODES = (Mode.AUTO, Mode.ELEMENTWISE, Mode.DIRECTIONAL)
MODE_LABEL = {Mode.AUTO: "auto", Mode.ELEMENTWISE: "element-wise", Mode.DIRECTIONAL: "directional"}
# Model tasks: gradients of a whole network's loss, one comparison per parameter.
MODEL_TASK = re.compile(r"^(two_layer_net|fc_net|three_layer_convnet|deep_convnet)\.")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One grading of one submission in one mode: its result and its comparisons, each with its task."""

    result: GradingResult
    seconds: float
    comparisons: list[tuple[str, Measurement]]  # (task id, measurement)

    def lost(self) -> set[str]:
        return {t.task_id for t in self.result.tasks if t.points < t.max_points}


def graded(assignment: Assignment, folder: Path, mode: Mode, seed: int, only: Optional[str] = None) -> Run:
    """Grades `folder` in-process with every gradient comparison in `mode`."""
    submission = prepare_submission(assignment, folder)
    comparisons: list[tuple[str, Measurement]] = []
    try:
        with forced_mode(mode), measuring() as measurements:
            def on_check_done(check: CheckResult) -> None:
                comparisons.extend((check.task_id, m) for m in measurements[len(comparisons):])

            options = GradeOptions(mode="official", only=only, seed=seed, training=False, hints=False,
                                   on_check_done=on_check_done)
            start = time.perf_counter()
            result = grade(assignment, submission, options)
            seconds = time.perf_counter() - start
            comparisons.extend(("?", m) for m in measurements[len(comparisons):])
    finally:
        submission.cleanup()
    return Run(result, seconds, comparisons)


def comparison_group(name: str) -> str:
    """A comparison's name without what varies between the checks of one task: a model's constructor
    arguments and the layer number of its parameters ("grads['W2'] of FullyConnectedNet(reg=0.0).loss"
    becomes "grads['W*'] of FullyConnectedNet.loss")."""
    match = re.match(r"^(grads\[.*?\]) of ([A-Za-z_]\w*).*?(\.\w+)$", name)
    if not match:
        return name
    grads = re.sub(r"\['([A-Za-z_]+?)\d+'\]", r"['\1*']", match.group(1))
    return f"{grads} of {match.group(2)}{match.group(3)}"


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def sizes_text(sizes: set[int]) -> str:
    ordered = sorted(sizes)
    if len(ordered) <= 3:
        return ", ".join(map(str, ordered))
    return f"{ordered[0]}–{ordered[-1]} ({len(ordered)} sizes)"


# ---------------------------------------------------------------------------------------------------
# 1. Cost per comparison


def cost_runs(assignment: Assignment, repeat: int, seed: int) -> dict[Mode, list[Run]]:
    runs: dict[Mode, list[Run]] = {mode: [] for mode in MODES}
    assert assignment.reference_directory is not None
    for r in range(repeat):
        progress(f"{assignment.id}: cost, repeat {r + 1}/{repeat}")
        for mode in MODES:
            run = graded(assignment, assignment.reference_directory, mode, seed)
            if run.lost():
                progress(f"  warning: the reference lost points in {mode.value} mode: {sorted(run.lost())}")
            runs[mode].append(run)
    return runs


def print_cost_summary(all_runs: dict[str, dict[Mode, list[Run]]]) -> None:
    print("\n### Per grading of the reference (medians over the repeats)\n")
    print("| assignment | mode | gradient comparisons | forward evaluations | round trips | "
          "time in comparisons | grading wall time |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for assignment_id, runs in all_runs.items():
        for mode in MODES:
            rs = runs[mode]
            count = median(len(r.comparisons) for r in rs)
            evaluations = median(sum(m.evaluations for _, m in r.comparisons) for r in rs)
            trips = median(sum(m.round_trips for _, m in r.comparisons) for r in rs)
            in_checks = median(sum(m.seconds for _, m in r.comparisons) for r in rs)
            wall = median(r.seconds for r in rs)
            print(f"| {assignment_id} | {MODE_LABEL[mode]} | {number(count)} | {number(evaluations)} | "
                  f"{number(trips)} | {in_checks:.2f} s | {wall:.2f} s |")


def print_cost_table(assignment_id: str, runs: dict[Mode, list[Run]]) -> None:
    # (task, group) -> mode -> measurements over all repeats
    groups: dict[tuple[str, str], dict[Mode, list[Measurement]]] = defaultdict(lambda: {m: [] for m in MODES})
    for mode in MODES:
        for run in runs[mode]:
            for task, m in run.comparisons:
                groups[(task, comparison_group(m.name))][mode].append(m)
    repeats = len(runs[Mode.AUTO])
    print(f"\n### {assignment_id}: cost per gradient comparison (medians over the comparisons and repeats)\n")
    print("Per mode: forward evaluations / round trips / wall ms of one comparison. "
          "auto picks: which mode auto used (e element-wise, d directional).\n")
    print("| task | comparison | per grading | input sizes | auto picks | auto | element-wise | directional "
          f"| directional ≤ {BUDGET_EVALUATIONS} evaluations |")
    print("|---|---|---:|---|---|---|---|---|---|")
    order = {t.id: i for i, t in enumerate(load_assignment(assignment_id, ROOT).spec.tasks)}
    for (task, group), by_mode in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 1e9), kv[0][1])):
        auto = by_mode[Mode.AUTO]
        picks = "".join(sorted({"e" if m.mode is Mode.ELEMENTWISE else "d" for m in auto}))
        cells = []
        for mode in MODES:
            ms = by_mode[mode]
            cell = (f"{number(median(m.evaluations for m in ms))} / {number(median(m.round_trips for m in ms))} / "
                    f"{median(m.seconds for m in ms) * 1000:.1f}")
            if mode is Mode.ELEMENTWISE and any(m.mode is Mode.DIRECTIONAL for m in ms):
                cell += " †"
            cells.append(cell)
        directional = [m.evaluations for m in by_mode[Mode.DIRECTIONAL]]
        worst = max(directional) if directional else 0
        budget = "yes" if worst <= BUDGET_EVALUATIONS else f"**no** (max {worst})"
        sizes = {m.size for ms in by_mode.values() for m in ms}
        print(f"| {task} | {group} | {number(len(auto) / repeats)} | {sizes_text(sizes)} | {picks} | "
              f"{' | '.join(cells)} | {budget} |")
    if any(m.mode is Mode.DIRECTIONAL for ms in groups.values() for m in ms[Mode.ELEMENTWISE]):
        print(f"\n† some inputs have more than {FORCED_ELEMENTWISE_MAX_SIZE} elements: the forced element-wise "
              "mode checks them along directions.")


def print_budget_line(all_runs: dict[str, dict[Mode, list[Run]]]) -> None:
    directional = [m for runs in all_runs.values() for rs in runs.values() for r in rs
                   for _, m in r.comparisons if m.mode is Mode.DIRECTIONAL]
    if not directional:
        return
    evaluations = [m.evaluations for m in directional]
    over = [m for m in directional if m.evaluations > BUDGET_EVALUATIONS]
    print(f"\nDirectional comparisons in all runs: {len(directional)}, sizes {min(m.size for m in directional)}–"
          f"{max(m.size for m in directional)} elements; forward evaluations median {number(median(evaluations))}, "
          f"max {max(evaluations)} ({DIRECTIONAL_PROBES} directions × 2); over the budget of "
          f"{BUDGET_EVALUATIONS}: {len(over)}"
          + (f" (a second attempt with a smaller step after a kink: {', '.join(sorted({m.name for m in over}))})"
             if over else "") + ".")


# ---------------------------------------------------------------------------------------------------
# 2. Detection of the catalogued mistakes


@dataclass
class Detection:
    mistake: Mistake
    detected: dict[Mode, bool] = field(default_factory=dict)
    by_gradient: dict[Mode, bool] = field(default_factory=dict)   # a gradient comparison failed
    outcome: dict[Mode, str] = field(default_factory=dict)


def gradient_tasks(runs: dict[Mode, list[Run]]) -> set[str]:
    return {task for rs in runs.values() for r in rs for task, _ in r.comparisons}


@dataclass
class DetectionRun:
    """The mistakes of one assignment graded in every mode."""

    found: list[Detection]
    seconds: dict[Mode, float]   # wall time per mode, all mistakes together
    left_out: int                # mistakes of model tasks not graded (see --detection)


def detection(assignment: Assignment, tasks: set[str], seed: int, full: bool) -> DetectionRun:
    mistakes = [m for m in load_catalogue(assignment) if m.task in tasks]
    left_out = 0
    if not full and assignment.spec.framework == "torch":
        kept = [m for m in mistakes if not MODEL_TASK.match(m.task)]
        left_out, mistakes = len(mistakes) - len(kept), kept
    reference = assignment.reference_directory
    assert reference is not None
    seconds = {mode: 0.0 for mode in MODES}
    found: list[Detection] = []
    progress(f"{assignment.id}: detection, {len(mistakes)} mistakes × {len(MODES)} modes")
    with tempfile.TemporaryDirectory() as scratch:
        for i, mistake in enumerate(mistakes):
            folder = Path(scratch) / f"m{i}"
            folder.mkdir()
            for name in assignment.spec.student_files:
                text = mistake.source_text if name == mistake.file else (reference / name).read_text()
                (folder / name).write_text(text)
            d = Detection(mistake)
            for mode in MODES:
                run = graded(assignment, folder, mode, seed, only=mistake.task)
                seconds[mode] += run.seconds
                task = next(t for t in run.result.tasks if t.task_id == mistake.task)
                d.detected[mode] = task.points < task.max_points
                d.by_gradient[mode] = any(not m.passed for _, m in run.comparisons)
                d.outcome[mode] = task.outcome.value
            found.append(d)
            if (i + 1) % 10 == 0:
                progress(f"  {i + 1}/{len(mistakes)}")
    return DetectionRun(found, seconds, left_out)


def print_detection(results: dict[str, DetectionRun]) -> None:
    print("\n### Detection of the catalogued mistakes of tasks with gradient comparisons\n")
    print("Each mistake graded as the reference with that mistake, only its task, no hints; detected when the "
          "task loses points; \"by a gradient\": a gradient comparison failed.\n")
    print("| assignment | mode | detected | by a gradient | missed | wall time |")
    print("|---|---|---:|---:|---:|---:|")
    for assignment_id, run in results.items():
        found, seconds = run.found, run.seconds
        for mode in MODES:
            detected = sum(d.detected[mode] for d in found)
            by_gradient = sum(d.by_gradient[mode] for d in found)
            print(f"| {assignment_id} | {MODE_LABEL[mode]} | {detected} / {len(found)} | {by_gradient} | "
                  f"{len(found) - detected} | {seconds[mode]:.1f} s |")
    misses = [(a, d) for a, run in results.items() for d in run.found if not all(d.detected.values())]
    if misses:
        print("\n| assignment | mistake | task | missed by | outcome per mode (auto, element-wise, directional) |")
        print("|---|---|---|---|---|")
        for assignment_id, d in misses:
            missed = ", ".join(MODE_LABEL[m] for m in MODES if not d.detected[m])
            outcomes = ", ".join(d.outcome[m] for m in MODES)
            print(f"| {assignment_id} | {d.mistake.id} | {d.mistake.task} | {missed} | {outcomes} |")
    else:
        print("\nNo mode misses any of these mistakes.")
    left_out = {a: run.left_out for a, run in results.items() if run.left_out}
    if left_out:
        print("\nLeft out (model tasks; `--detection full` grades them): "
              + ", ".join(f"{n} mistakes of {a}" for a, n in left_out.items()) + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", default="a1_fc_numpy,a2_cnn_torch")
    parser.add_argument("--repeat", type=int, default=3, help="gradings of the reference per mode (table 1)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--detection", choices=["default", "full"], default="default",
                        help="full: also the mistakes of a2_cnn_torch's model tasks")
    args = parser.parse_args()
    start = time.perf_counter()
    assignments = [load_assignment(a.strip(), ROOT) for a in args.assignments.split(",") if a.strip()]
    for a in assignments:
        if a.reference_directory is None:
            raise SystemExit(f"{a.id}: the reference solution is not here (reference/{a.id})")

    print(f"machine: {describe_machine()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"gradient checks per mode: reference as submission, official mode, seed {args.seed}, "
          f"{args.repeat} repeat(s), tasks scored by checks (no training)")
    all_runs = {a.id: cost_runs(a, args.repeat, args.seed) for a in assignments}
    print_cost_summary(all_runs)
    for assignment_id, runs in all_runs.items():
        print_cost_table(assignment_id, runs)
    print_budget_line(all_runs)

    if not args.skip_detection:
        results = {a.id: detection(a, gradient_tasks(all_runs[a.id]), args.seed, args.detection == "full")
                   for a in assignments}
        print_detection(results)
    print(f"\ntotal run time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
