"""Fair time limits: the same reference submission's training task graded N times on a quiet machine
and N times beside a CPU-heavy neighbour, with the limit calibrated (grader.engine.calibration) and,
for comparison, as written. With calibration the verdicts should be identical and the accuracy the
same within its spread: the neighbour slows the calibration workload as much as the training, so the
limit grows with it. As written, the neighbour costs the submission iterations.

The limit is calibrated once on this machine, quiet (`grader calibrate`), in a copy of the project;
`--limit` overrides the task's written limit so that the limit binds (the reference otherwise stops
on its own long before it). With `--calibrate-on cpu --device cuda` on a GPU machine it states the
card's factor against the CPU-calibrated reference.

    python benchmarks/bench_fair_limits.py [--assignment a1_fc_numpy] [--task two_layer_net.cifar10]
        [--limit 4] [--runs 5] [--device cpu] [--calibrate-on cpu] [--neighbours N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def busy(stop_at: float) -> None:
    """A CPU-heavy neighbour, in a session of its own (as another user's job would be, so that the
    kernel's per-session CPU sharing counts it apart from the benchmark): arithmetic until told to stop."""
    os.setsid()
    x = 0
    while time.time() < stop_at:
        for i in range(100_000):
            x += i * i


def copy_project(work: Path, assignment: str, task: str, limit: float | None) -> Path:
    root = work / "project"
    for part in ("assignments", "reference"):
        shutil.copytree(ROOT / part / assignment, root / part / assignment)
    if limit is not None:
        config = root / "assignments" / assignment / "assignment.yaml"
        text = config.read_text()
        start = text.index(f"id: {task}\n")
        match = re.compile(r"time_limit_s: [0-9.]+").search(text, start)
        assert match is not None, f"{task} has no time limit"
        config.write_text(text[:match.start()] + f"time_limit_s: {limit:g}" + text[match.end():])
    return root


def grader(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "GRADER_ROOT": str(root)}, timeout=1800)


def grade_once(root: Path, assignment: str, task: str, device: str, out: Path) -> dict:
    done = grader(root, "grade", assignment, "--submission", str(root / "reference" / assignment), "--only", task,
                  "--data", "synthetic", "--device", device, "--no-zip", "--mode", "public", "--sandbox", "process",
                  "--json", str(out))
    if not out.is_file():
        raise SystemExit(f"grading failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    test = json.loads(out.read_text())["tests"][0]
    return {**test["extra_data"], "score": test["score"]}


def set_calibrated(root: Path, assignment: str, task: str, calibrated: bool) -> None:
    config = root / "assignments" / assignment / "assignment.yaml"
    text = config.read_text().replace("      calibrated: false\n", "")
    if not calibrated:
        start = text.index(f"id: {task}\n")
        limit = text.index("time_limit_s:", start)
        line_end = text.index("\n", limit) + 1
        text = text[:line_end] + "      calibrated: false\n" + text[line_end:]
    config.write_text(text)


def condition(root: Path, args: argparse.Namespace, work: Path, name: str, neighbours: int) -> list[dict]:
    runs = []
    for i in range(args.runs):
        processes = []
        if neighbours:
            stop_at = time.time() + 3600
            processes = [multiprocessing.Process(target=busy, args=(stop_at,), daemon=True) for _ in range(neighbours)]
            for process in processes:
                process.start()
        try:
            runs.append(grade_once(root, args.assignment, args.task, args.device, work / f"{name}{i}.json"))
        finally:
            for process in processes:
                process.kill()
                process.join()
    return runs


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="a1_fc_numpy")
    parser.add_argument("--task", default="two_layer_net.cifar10")
    parser.add_argument("--limit", type=float, default=6.0, help="the task's written limit in the copy (0: as written)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--calibrate-on", default="cpu", help="the device the copy is calibrated on (cpu or cuda)")
    parser.add_argument("--neighbours", type=int, default=os.cpu_count() or 2,
                        help="CPU-heavy processes beside the grading in the busy conditions")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory(prefix="bench-fair-") as folder:
        work = Path(folder)
        root = copy_project(work, args.assignment, args.task, args.limit or None)
        calibrated = grader(root, "calibrate", args.assignment, "--device", args.calibrate_on)
        if calibrated.returncode != 0:
            raise SystemExit(calibrated.stderr)
        print(calibrated.stdout.strip())
        table = []
        for name, neighbours, scaled in (("quiet, calibrated", 0, True), ("busy, calibrated", args.neighbours, True),
                                         ("quiet, as written", 0, False), ("busy, as written", args.neighbours, False)):
            set_calibrated(root, args.assignment, args.task, scaled)
            table.append((name, condition(root, args, work, name.replace(", ", "-").replace(" ", "_"), neighbours)))
    print(f"\n{args.assignment} {args.task} on {args.device}, {args.runs} runs per condition, "
          f"neighbours: {args.neighbours} busy processes")
    print(f"{'condition':<20} {'verdicts':<14} {'points':<20} {'accuracy % median [min, max]':<30} "
          f"{'time s median [min, max]':<26} {'limit here s':<22} factor")
    for name, runs in table:
        verdicts = "/".join(sorted({r["outcome"] for r in runs}))
        points = spread([r["score"] for r in runs], ".2f")
        accuracy = spread([100 * r["accuracy"] for r in runs if r.get("accuracy") is not None], ".1f")
        seconds = spread([r["train_seconds"] for r in runs if r.get("train_seconds") is not None], ".1f")
        limits = spread([r["time_limit_s"] for r in runs if r.get("time_limit_s") is not None], ".1f")
        factors = [r["limit_factor"] for r in runs if r.get("limit_factor") is not None]
        factor = (f"x{statistics.median(factors):.2f} +- {statistics.median(r['limit_factor_spread'] for r in runs):.2f}"
                  if factors else "-")
        print(f"{name:<20} {verdicts:<14} {points:<20} {accuracy:<30} {seconds:<26} {limits:<22} {factor}")
    same = {r["outcome"] for _, runs in table[:2] for r in runs}
    print(f"\ncalibrated verdicts identical quiet and busy: {'yes' if len(same) == 1 else 'NO: ' + ', '.join(sorted(same))}")
    models = {r.get("device_model") for _, runs in table for r in runs if r.get("device_model")}
    print(f"device: {'; '.join(sorted(models))}")


if __name__ == "__main__":
    main()
