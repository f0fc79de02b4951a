"""The same 8-job sweep with Hydra's basic, joblib and Ray launchers: wall time, per-job overhead,
and where the time goes.

    .venv/bin/python -m bench.launchers      # writes its section of docs/BENCHMARKS.md

The sweep is `python run.py -m precision=fp32,int8 batch_size=8,32 max_seq_length=64,128` on the
demo model and dev split, tracked in a fresh SQLite store, with a warm cache (converted and
optimized models built before timing). Both CPUs are used by every launcher: basic runs one job
at a time with 2 threads, joblib and Ray two jobs at a time with 1 thread each. Ray runs twice:
with a cluster of the sweep's own (started and stopped by the sweep), and joining a cluster that
`ray start` runs already, as on a real cluster.

Per-job overhead = (wall x parallel jobs - time in the model) / jobs, where the time in the model
is each job's tokenization + feeds + model calls (`e2e_ms` x samples, from its metrics.json):
process start, imports, config, tracking, the FP32 reference, reports. A cold job (empty cache:
convert + optimize) is timed once to give the per-node cost of a cluster.

Where the time goes comes from the job folders' own clocks (job_status.json's started_at and
ended_at, tracking.json's logging time): the start-up before the first job, the wind-down after
the last, and for each job that a worker runs after another one, the time from one job's start
to the next one's in that worker, less the time in the model (the marginal cost of a job). The
sweep process makes each job folder its run (pipeline/sweep/job_logging.py) while the jobs run.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
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
RAY_JOINED = ["hydra/launcher=ray", "hydra.launcher.ray.remote.num_cpus=1", "device.num_threads=1"]
PARALLEL = {"basic": 1, "joblib": 2, "ray": 2, "ray (joined)": 2}
# What a fresh process imports, in this order: a worker the first two, the sweep process all.
IMPORTS = [
    ("hydra and the pipeline's job", "pipeline.job"),
    ("ONNX Runtime", "onnxruntime"),
    ("MLflow", "mlflow"),
    ("MLflow's SQLite store (SQLAlchemy, alembic)", "mlflow.store.tracking.sqlalchemy_store"),
]


def cpu_seconds() -> float:
    """CPU time of this process's ended children and theirs (a process reaped by its parent adds
    its own and its reaped children's): a sweep and its joblib workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], work: Path, cache: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(start time, seconds) of `python run.py ARGS`; raises with its stderr when it fails."""
    began, started = time.time(), time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=work,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache), **(env or {})},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"run.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return began, seconds


def _job_model_seconds(job: Path) -> float:
    metrics = json.loads((job / "metrics.json").read_text())
    return metrics["e2e_ms"] * metrics["n_samples"] / 1000


def model_seconds(sweep: Path) -> tuple[int, float]:
    """(finished jobs, total seconds in tokenization + feeds + model) from the jobs' metrics.json."""
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    finished = [r for r in rows if r["status"] == "FINISHED"]
    return len(finished), sum(_job_model_seconds(sweep / row["job"]) for row in finished)


def _clock(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def where_time_goes(sweep: Path, began: float, wall: float) -> dict[str, float]:
    """Seconds of each part of a sweep, from its job folders' clocks (see the module's docstring)."""
    jobs = []
    for folder in sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        status = json.loads((folder / "job_status.json").read_text())
        tracking = json.loads((folder / "tracking.json").read_text())
        start, end = _clock(status["started_at"]), _clock(status["ended_at"])
        jobs.append(
            {
                "pid": status["pid"],
                "start": start,
                "end": end,
                "work": end - start,
                "model": _job_model_seconds(folder),
                "log": tracking["log_seconds"],
            }
        )
    by_worker: dict[int, list[dict[str, float]]] = {}
    for job in sorted(jobs, key=lambda j: j["start"]):
        by_worker.setdefault(int(job["pid"]), []).append(job)
    following = [
        b["start"] - a["start"] - a["model"] for run in by_worker.values() for a, b in itertools.pairwise(run)
    ]
    later = [job for run in by_worker.values() for job in run[1:]]
    return {
        "start-up": min(j["start"] for j in jobs) - began,
        "wind-down": began + wall - max(j["end"] for j in jobs),
        "per job": statistics.median(following) if following else float("nan"),
        "job outside the model": statistics.median(j["work"] - j["model"] for j in later or jobs),
        "logging (sweep process)": statistics.median(j["log"] for j in jobs),
    }


def import_seconds() -> list[tuple[str, float]]:
    """Seconds each of IMPORTS adds to a fresh Python process, imported in that order."""
    script = "import json, time\nseconds = []\n"
    for _, module in IMPORTS:
        script += f"t = time.perf_counter(); import {module}; seconds.append(time.perf_counter() - t)\n"
    script += "print(json.dumps(seconds))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds = json.loads(result.stdout.strip().splitlines()[-1])
    return [(name, s) for (name, _), s in zip(IMPORTS, seconds, strict=True)]


@contextmanager
def ray_head(work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start --head` (2 CPUs) in a session of its own, as a cluster's head node runs: yields its
    address and the environment that joins it; stopped by its process group afterwards."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))  # Ray's sockets want a short path
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    with socket.socket() as probe:  # a free port: another head may hold Ray's default one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus=2"]
    command += [f"--port={port}"]
    command += [f"--temp-dir={ray_tmp / 'ray'}", "--include-dashboard=false", "--disable-usage-stats"]
    with (work / "ray-head.log").open("w") as log:
        head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        recorded = ray_tmp / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 120
        while not recorded.exists():
            if time.monotonic() > deadline or head.poll() is not None:
                raise RuntimeError(f"ray start did not come up: see {work / 'ray-head.log'}")
            time.sleep(0.5)
        time.sleep(3)  # the raylet registers after the cluster is recorded
        yield recorded.read_text().strip(), env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def cpu_column(name: str, cpu: float, in_model: float, jobs: int) -> str:
    if name.startswith("ray"):
        return ""
    if name == "basic":  # its jobs' 2 threads: the time in the model is not its CPU time
        return f"{cpu:.1f}"
    return f"{cpu:.1f} ({(cpu - in_model) / jobs:.1f})"


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
    _, cold = run(["precision=int8", *tracking, "hydra.run.dir=cold"], work, work / "empty-cache")
    _, warm = run(["precision=int8", *tracking, "hydra.run.dir=warm-single"], work, cache)

    rows, parts_rows = [], []
    measured = {}

    def measure(name: str, settings: list[str], env: dict[str, str] | None = None) -> None:
        sweep = work / "-".join(re.findall(r"[a-z]+", name))  # "ray (joined)" -> ray-joined
        cpu_before = cpu_seconds()
        began, wall = run(["-m", *SWEEP, *settings, *tracking, f"hydra.sweep.dir={sweep}"], work, cache, env)
        cpu = cpu_seconds() - cpu_before
        jobs, in_model = model_seconds(sweep)
        overhead = (wall * PARALLEL[name] - in_model) / jobs
        parts = where_time_goes(sweep, began, wall)
        measured[name] = (overhead, in_model / jobs, parts)
        rows.append(
            [
                name,
                str(jobs),
                str(PARALLEL[name]),
                f"{wall:.1f}",
                f"{in_model:.1f}",
                f"{overhead:.1f}",
                cpu_column(name, cpu, in_model, jobs),
            ]
        )
        parts_rows.append([name, *(f"{value:.1f}" for value in parts.values())])
        print(rows[-1], parts, flush=True)

    for name, settings in LAUNCHERS.items():
        measure(name, settings)
    with ray_head(work) as (address, env):
        measure("ray (joined)", [*RAY_JOINED, f"hydra.launcher.ray.init.address={address}"], env)
    imports = import_seconds()

    _, ray_model, ray_parts = measured["ray (joined)"]
    job_seconds = ray_parts["per job"] + ray_model
    n = args.projected_jobs

    def minutes(nodes: int, slots: int = 2) -> float:
        fixed = ray_parts["start-up"] + ray_parts["wind-down"] + cold
        return (fixed + -(-n // (nodes * slots)) * job_seconds) / 60

    parts_header = ["launcher", *next(iter(measured.values()))[2].keys()]
    projection = [
        f"- A {n}-job sweep on a running Ray cluster of N nodes with S job slots each (`remote.num_cpus` per "
        f"job): wall ~= start-up + wind-down ({ray_parts['start-up']:.1f} + {ray_parts['wind-down']:.1f} s "
        f"here) + the first job per node (cold cache: {cold:.1f} s here vs {warm:.1f} s warm) + "
        f"ceil({n} / (N x S)) x per-job time ({job_seconds:.1f} s here: {ray_parts['per job']:.1f} s "
        f"outside the model + {ray_model:.1f} s in it for the 2,000-review dev split).",
        f"- With these figures: this machine (N=1, S=2) ~{minutes(1):.0f} min; 10 such nodes "
        f"~{minutes(10):.1f} min; 50 nodes ~{minutes(50):.1f} min. Larger models move time from the "
        "overhead into the model (docs/BENCHMARKS.md, latency per architecture), which scales with N x S.",
    ]
    lines = [
        "## Sweep launchers: basic, joblib, Ray (one machine)",
        "",
        "Generated by `python -m bench.launchers`: the 8-job sweep "
        f"`python run.py -m {' '.join(SWEEP)}` on the demo model, warm cache, SQLite tracking. "
        "Both CPUs busy in every launcher (basic: 1 job x 2 threads; joblib and Ray: 2 jobs x 1 thread). "
        "`ray` starts a Ray cluster of its own for the sweep; `ray (joined)` joins one that `ray start` "
        "runs already, as on a cluster. "
        "Per-job overhead = (wall x parallel jobs - time in the model) / jobs. CPU: the CPU time of "
        "the sweep process and the workers it started, summed (getrusage); for jobs of one thread "
        "(CPU - time in the model) / jobs, the overhead's floor with every CPU busy. Not for Ray, "
        "whose workers are the raylet's children, not reaped through the sweep.",
        "",
        *machine_lines(),
        "",
        *table(
            [
                "launcher",
                "jobs",
                "parallel jobs",
                "wall s",
                "in the model s",
                "overhead per job s",
                "CPU s (its floor per job)",
            ],
            rows,
        ),
        "",
        "Where the time goes, in seconds, from the job folders' clocks: start-up (the process until "
        "the first job starts), wind-down (after the last job ended: its run, summary, plots, parent "
        "run, workers and Ray stopping), and the medians for a job that follows another in its worker: "
        "start to next start less the time in the model (per job), of which the job's own work outside "
        "the model; and the median time the sweep process takes to make a job folder its run (in a "
        "thread, while the jobs run).",
        "",
        *table(parts_header, parts_rows),
        "",
        "What a fresh process imports (seconds, in this order, one process; a worker the first two, "
        "the sweep process MLflow and its store too): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in imports)
        + ".",
        "",
        *projection,
    ]
    replace_section(args.out, "launchers", lines)
    print(f"wrote the launchers section of {args.out}")


if __name__ == "__main__":
    main()
