"""What a task costs beyond multi-class: the same model, batch and sequence length for every task.

    .venv/bin/python -m bench.tasks_bench [--rounds 5]    # writes its section of docs/BENCHMARKS.md

Each round runs one evaluate job per task as a user does (`python run.py task=...`, a fresh
process), on the same random-weight ERNIE 3.0 Nano with every batch padded to max_seq_length
(`infer.padding=max_length`), so the model computes exactly the same shapes for every task; what
differs is the task's own work: reading its format, encoding pairs, its head, metrics and reports.
Each task evaluates its demo dev split (2,000 samples). The tasks alternate within a round, each
round starting with the next one, so drift hits them alike; the medians are compared with
multi_class's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cache_dir, machine_lines, replace_section, table
from pipeline import PROJECT_ROOT
from pipeline.options.tasks import TASKS

GOAL = 0.05  # a task's job may cost at most 5% more than a multi-class job
REFERENCE = "multi_class"
ORDER = [REFERENCE, *(name for name in TASKS.names() if name != REFERENCE)]


def job_overrides(args: argparse.Namespace, task: str) -> list[str]:
    return [
        f"task={task}",
        "model=ernie-3.0-nano-zh",
        "model.weights=random",
        "infer.padding=max_length",
        "infer.predict_data=false",
        f"batch_size={args.batch_size}",
        f"max_seq_length={args.max_seq_length}",
        f"device.num_threads={args.threads}",
        "mlflow.enabled=false",
    ]


def timed_job(args: argparse.Namespace, work: Path, task: str, folder: str) -> dict[str, float]:
    """Wall seconds of one `python run.py` from a fresh process, and its metrics."""
    command = [
        sys.executable,
        str(PROJECT_ROOT / "run.py"),
        *job_overrides(args, task),
        f"hydra.run.dir={folder}",
    ]
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir())}
    started = time.perf_counter()
    subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    metrics = json.loads((work / folder / "metrics.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "latency_ms": metrics["latency_ms"], "e2e_ms": metrics["e2e_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {task: [] for task in ORDER}
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as folder:
        work = Path(folder)
        for task in ORDER:  # builds the export, the ONNX model and each task's demo dataset
            timed_job(args, work, task, f"warmup-{task}")
        for round_ in range(args.rounds):
            # Each round starts with the next task: no task always runs first (or last) in a round.
            for task in ORDER[round_ % len(ORDER) :] + ORDER[: round_ % len(ORDER)]:
                results[task].append(timed_job(args, work, task, f"{task}-{round_}"))
                print(task, results[task][-1], flush=True)
    medians = {
        task: {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "latency_ms", "e2e_ms")}
        for task, runs in results.items()
    }
    base = medians[REFERENCE]
    rows = []
    for task in ORDER:
        m = medians[task]
        extra = m["wall_s"] / base["wall_s"] - 1
        rows.append(
            [
                task,
                f"{m['wall_s']:.2f}",
                f"{extra:+.1%}",
                f"{m['latency_ms']:.3f}",
                f"{m['e2e_ms']:.3f}",
                f"{m['e2e_ms'] / base['e2e_ms'] - 1:+.1%}",
                "yes" if extra <= GOAL else "no",
            ]
        )
    lines = [
        "## What a task costs (bench/tasks_bench.py)",
        "",
        f"`python -m bench.tasks_bench --rounds {args.rounds}`: one evaluate job per task from a fresh",
        "process, ERNIE 3.0 Nano with random weights, every batch padded to max_seq_length (identical",
        f"model shapes), batch {args.batch_size}, {args.max_seq_length} tokens, {args.threads} threads,",
        "each task's demo dev split (2,000 samples), cached model, no tracking; median of the rounds,",
        f"tasks alternating (each round starts with the next). Goal: a task's job within {GOAL:.0%} of a",
        "multi-class job.",
        "",
        *machine_lines(),
        "",
        *table(
            [
                "task",
                "job wall s",
                "vs multi_class",
                "latency ms/sample",
                "e2e ms/sample",
                "e2e vs multi_class",
                "within 5%",
            ],
            rows,
        ),
    ]
    replace_section(args.out, "tasks", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
