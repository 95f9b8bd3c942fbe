"""Wall time and peak memory of `grader grade A` on the reference, start-up included, for the tasks
scored by checks, against DESIGN §10's goals (a1 <= 1.5 s, a2 and a3 <= 3 s on 2 CPU cores) and
Gradescope's default container (768 MB: <= 700 MB for grader and worker together).

Each run is a fresh `grader grade` process; its result's timings split the wall time:
start-up (interpreter, imports, reading the submission: from the command to the grading's start),
sandbox proof (official mode) and the loading of the reference with its framework (torch), side by side
with each other and with the worker's start, collection (pytest finding the checks), checks (running them), and teardown (from the grading's end to the process's exit: reports
written, worker stopped). Peak memory is the largest sum of the resident sizes of the grader and
every process below it, sampled every 20 ms.

    python benchmarks/bench_grade.py [--runs 5] [--assignment a1_fc_numpy,a2_cnn_torch,a3_resnet_pytorch]
        [--mode official]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, yardstick  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOALS_S = {"a1_fc_numpy": 1.5, "a2_cnn_torch": 3.0, "a3_resnet_pytorch": 3.0}
MEMORY_GOAL_MB = 700
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and every process below it."""
    from grader.sandbox.worker_process import process_tree

    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass  # ended meanwhile
    return total


def grade_once(assignment: str, mode: str, work: Path) -> dict:
    out = work / "result.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "grader", "grade", assignment, "--submission", f"reference/{assignment}",
               "--mode", mode, "--skip-training", "--no-zip", "--quiet", "--json", str(out)]
    peak = 0
    began_at, start = time.time(), time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall, ended_at = time.perf_counter() - start, time.time()
    done.set()
    sampler.join()
    if process.returncode != 0 or not out.is_file():
        raise SystemExit(f"grading failed:\n{stdout}\n{stderr}")
    result = json.loads(out.read_text())
    if result["score"] != result["extra_data"]["max_score"]:
        raise SystemExit(f"the reference lost points: {result['score']} of {result['extra_data']['max_score']}")
    timings = result["extra_data"].get("timings", {})
    startup = timings["started_at"] - began_at
    teardown = ended_at - timings["ended_at"]
    run = {"wall": wall, "startup": startup, "proof": timings.get("sandbox_proof_s", 0.0),
           "reference": timings.get("reference_load_s", 0.0),
           "collection": timings.get("collection_s", 0.0), "checks": timings.get("checks_s", 0.0),
           "teardown": teardown, "memory_mb": peak / 2**20}
    print(f"  {assignment} run: {wall:5.2f} s (start-up {startup:.2f}, proof {run['proof']:.2f}, reference "
          f"{run['reference']:.2f}, collection "
          f"{run['collection']:.2f}, checks {run['checks']:.2f}, teardown {teardown:.2f}), peak {run['memory_mb']:.0f} MB",
          flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--assignment", default=",".join(GOALS_S))
    parser.add_argument("--mode", choices=["official", "public"], default="official")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    print(f"before: {yardstick()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as folder:
        for assignment in args.assignment.split(","):
            runs = [grade_once(assignment, args.mode, Path(folder)) for _ in range(args.runs)]
            rows.append((assignment, runs))
    print(f"after: {yardstick()}")
    print(f"\ngrader grade A --mode {args.mode} --skip-training, reference, {args.runs} runs each (medians of the split)")
    print("| assignment | median | min | max | goal | start-up | proof* | reference* | collection | checks | teardown "
          "| peak memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for assignment, runs in rows:
        walls = [r["wall"] for r in runs]
        median = statistics.median(walls)
        goal = GOALS_S.get(assignment)
        verdict = "" if goal is None else f"{goal:g} s ({'met' if median <= goal else 'NOT met'})"
        parts = " | ".join(f"{statistics.median(r[k] for r in runs):.2f} s"
                           for k in ("startup", "proof", "reference", "collection", "checks", "teardown"))
        memory = max(r["memory_mb"] for r in runs)
        print(f"| {assignment} | {median:.2f} s | {min(walls):.2f} s | {max(walls):.2f} s | {verdict} | {parts} | "
              f"{memory:.0f} MB ({'within' if memory <= MEMORY_GOAL_MB else 'OVER'} {MEMORY_GOAL_MB} MB) |")
    print("* the sandbox's proof, the worker's start-up and the loading of the reference (with its framework) run "
          "side by side at the start of the grading: not additive")


if __name__ == "__main__":
    main()
