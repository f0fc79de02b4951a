"""The same 8-job sweep with Hydra's basic, joblib and Ray launchers: wall time and per-job overhead.

    .venv/bin/python -m bench.launchers      # writes its section of docs/BENCHMARKS.md

The sweep is `python run.py -m precision=fp32,int8 batch_size=8,32 max_seq_length=64,128` on the
demo model and dev split, tracked in a fresh SQLite store, with a warm cache (converted and
optimized models built before timing). Both CPUs are used by every launcher: basic runs one job
at a time with 2 threads, joblib and Ray two jobs at a time with 1 thread each.

Per-job overhead = (wall x parallel jobs - time in the model) / jobs, where the time in the model
is each job's tokenization + feeds + model calls (`e2e_ms` x samples, from its metrics.json):
process start, imports, config, tracking, the FP32 reference, reports. A cold job (empty cache:
convert + optimize) is timed once to give the per-node cost of a cluster.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cache_dir, machine_lines, replace_section, table
from pipeline import PROJECT_ROOT

SWEEP = ["precision=fp32,int8", "batch_size=8,32", "max_seq_length=64,128", "infer.predict_data=false"]
LAUNCHERS = {
    "basic": ["hydra/launcher=basic", "device.num_threads=2"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "device.num_threads=1"],
    "ray": [
        "hydra/launcher=ray",
        "hydra.launcher.ray.init.address=local",  # a cluster of its own, sized here
        "hydra.launcher.ray.init.num_cpus=2",
        "hydra.launcher.ray.remote.num_cpus=1",
        "device.num_threads=1",
    ],
}
PARALLEL = {"basic": 1, "joblib": 2, "ray": 2}


def run(args: list[str], work: Path, cache: Path) -> float:
    """Seconds `python run.py ARGS` took; raises with its stderr when it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=work,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"run.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds


def model_seconds(sweep: Path) -> tuple[int, float]:
    """(finished jobs, total seconds in tokenization + feeds + model) from the jobs' metrics.json."""
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    finished = [r for r in rows if r["status"] == "FINISHED"]
    total = 0.0
    for row in finished:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        total += metrics["e2e_ms"] * metrics["n_samples"] / 1000
    return len(finished), total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--projected-jobs", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-launchers-"))
    cache = cache_dir()
    tracking = [f"mlflow.tracking_uri=sqlite:///{work}/mlflow.db", "mlflow.experiment_name=bench-launchers"]
    # Warm the cache (every model of the sweep built once), then time a cold single job in an
    # empty cache: what each new node pays once.
    run(["-m", *SWEEP, *tracking, f"hydra.sweep.dir={work}/warm"], work, cache)
    cold = run(["precision=int8", *tracking, "hydra.run.dir=cold"], work, work / "empty-cache")
    warm = run(["precision=int8", *tracking, "hydra.run.dir=warm-single"], work, cache)

    rows = []
    measured = {}
    for name, settings in LAUNCHERS.items():
        sweep = work / name
        wall = run(["-m", *SWEEP, *settings, *tracking, f"hydra.sweep.dir={sweep}"], work, cache)
        jobs, in_model = model_seconds(sweep)
        overhead = (wall * PARALLEL[name] - in_model) / jobs
        measured[name] = (overhead, in_model / jobs)
        rows.append(
            [name, str(jobs), str(PARALLEL[name]), f"{wall:.1f}", f"{in_model:.1f}", f"{overhead:.1f}"]
        )
        print(rows[-1], flush=True)

    ray_overhead, ray_model = measured["ray"]
    job_seconds = ray_overhead + ray_model
    n = args.projected_jobs

    def minutes(nodes: int, slots: int = 2) -> float:
        return (cold + -(-n // (nodes * slots)) * job_seconds) / 60

    projection = [
        f"- A {n}-job sweep on a Ray cluster of N nodes with S job slots each (`remote.num_cpus` per job): "
        f"wall ~= node start-up + first job per node (cold cache: {cold:.1f} s here vs {warm:.1f} s warm) "
        f"+ ceil({n} / (N x S)) x per-job time ({job_seconds:.1f} s here: {ray_overhead:.1f} s overhead "
        f"+ {ray_model:.1f} s in the model for the 2,000-review dev split).",
        f"- With these figures: this machine (N=1, S=2) ~{minutes(1):.0f} min; 10 such nodes "
        f"~{minutes(10):.1f} min; 50 nodes ~{minutes(50):.1f} min. Larger models move time from the "
        "overhead into the model (docs/BENCHMARKS.md, latency per architecture), which scales with N x S.",
        "- Per job: process start, imports, config, its MLflow child run, the FP32 reference (cached per "
        "node after the first precision job), reports. Per node: converting and optimizing each model "
        "variant once (the cache is per node, or shared with `cache_dir` on a shared folder, under "
        "the cache's file locks). Shared: the tracking server (one parent run; each job writes one "
        "child run and uploads its files) and the sweep folder (shared filesystem).",
    ]
    lines = [
        "## Sweep launchers: basic, joblib, Ray (one machine)",
        "",
        "Generated by `python -m bench.launchers`: the 8-job sweep "
        f"`python run.py -m {' '.join(SWEEP)}` on the demo model, warm cache, SQLite tracking. "
        "Both CPUs busy in every launcher (basic: 1 job x 2 threads; joblib and Ray: 2 jobs x 1 thread). "
        "Per-job overhead = (wall x parallel jobs - time in the model) / jobs.",
        "",
        *machine_lines(),
        "",
        *table(["launcher", "jobs", "parallel jobs", "wall s", "in the model s", "overhead per job s"], rows),
        "",
        *projection,
    ]
    replace_section(args.out, "launchers", lines)
    print(f"wrote the launchers section of {args.out}")


if __name__ == "__main__":
    main()
