"""The team tracking server under load: a 32-job Ray sweep, 4 jobs at a time, logging into a real
`mlflow server` on SQLite and then on PostgreSQL; then 8 resyncs of that sweep at once.

    .venv/bin/python -m bench.tracking_load      # writes its section of docs/BENCHMARKS.md

Each job is the demo model on 256 dev reviews (`infer.predict_data=false`): short, so that the
sweep is mostly the jobs' tracking. Recorded per backend: jobs per minute (the sweep's wall time),
the slowest and median logging call (`log_seconds` in each job's tracking.json: the job folder made
into its run by the sweep's own process, LoggedModel, dataset and artifacts included), and runs
lost (jobs without a FINISHED run holding their accuracy: must be 0). Then 8 `python -m
pipeline.tracking resync SWEEP_DIR` processes at once into a fresh experiment of the same server:
one parent, 32 children, none twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow

from bench.common import cache_dir, demo_subset, machine_lines, replace_section, table
from pipeline import PROJECT_ROOT
from tests.helpers.mlflow_server import tracking_server
from tests.helpers.postgres import running_postgres

# 32 jobs: 8 batch sizes x 4 lengths (4 at a time: 4 Ray CPUs, 1 CPU and 1 thread per job).
SWEEP = ["batch_size=1,2,4,8,16,32,64,128", "max_seq_length=32,64,96,128", "infer.predict_data=false"]
RAY = [
    "hydra/launcher=ray",
    "hydra.launcher.ray.init.address=local",  # a cluster of its own, sized here
    "hydra.launcher.ray.init.num_cpus=4",
    "hydra.launcher.ray.remote.num_cpus=1",
    "device.num_threads=1",
]


def run_sweep(uri: str, experiment: str, data: Path, work: Path) -> tuple[Path, float]:
    sweep = work / f"sweep-{experiment}"
    args = ["-m", *SWEEP, *RAY, f"dataset.dir={data}", "dataset.name=demo256"]
    args += [f"mlflow.tracking_uri={uri}", f"mlflow.experiment_name={experiment}"]
    args.append(f"hydra.sweep.dir={sweep}")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=work,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir())},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"the sweep failed:\n{result.stderr[-3000:]}")
    return sweep, seconds


def lost_runs(uri: str, experiment: str, sweep: Path) -> tuple[int, int, int]:
    """(jobs without a whole run, parent runs, child runs) in the store."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise RuntimeError(f"no experiment {experiment!r} in {uri}: the sweep logged nothing")
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "sweep_dir" in r.data.tags]
    children = [r for r in runs if "job_dir" in r.data.tags]
    whole = {
        r.data.tags["job_dir"]
        for r in children
        if r.info.status == "FINISHED" and "accuracy" in r.data.metrics
    }
    jobs = [p.parent for p in sweep.glob("*/metrics.json")]
    return sum(1 for job in jobs if str(job) not in whole), len(parents), len(children)


def parallel_resyncs(uri: str, sweep: Path, experiment: str, count: int) -> float:
    command = [sys.executable, "-m", "pipeline.tracking", "resync", str(sweep)]
    command += ["--tracking-uri", uri, "--experiment", experiment]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    failures = [p.communicate()[1] for p in processes if p.wait() != 0]
    if failures:
        raise RuntimeError(f"{len(failures)} resyncs failed:\n{failures[0][-3000:]}")
    return time.perf_counter() - started


@contextlib.contextmanager
def server(backend: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        with tracking_server(work / "server-sqlite", auth=False) as running:
            yield running.uri
        return
    with running_postgres() as postgres:
        uri = postgres.create_database("mlflow")
        with tracking_server(work / "server-postgresql", auth=False, backend_uri=uri) as running:
            yield running.uri


def measure(backend: str, data: Path, work: Path, resyncs: int) -> list[str]:
    with server(backend, work) as uri:
        sweep, seconds = run_sweep(uri, f"load-{backend}", data, work)
        logged = [json.loads((job / "tracking.json").read_text()) for job in sorted(sweep.glob("[0-9]*"))]
        log_seconds = [state["log_seconds"] for state in logged if "log_seconds" in state]
        lost, _, _ = lost_runs(uri, f"load-{backend}", sweep)
        resync_seconds = parallel_resyncs(uri, sweep, f"resync-{backend}", resyncs)
        resync_lost, parents, children = lost_runs(uri, f"resync-{backend}", sweep)
    jobs = len(logged)
    return [
        backend,
        str(jobs),
        f"{seconds:.0f}",
        f"{60 * jobs / seconds:.1f}",
        f"{statistics.median(log_seconds):.2f}",
        f"{max(log_seconds):.2f}",
        str(lost + (jobs - len(log_seconds))),
        f"{resyncs} at once: {resync_seconds:.0f} s, {parents} parent, {children} children, "
        f"{resync_lost} lost",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resyncs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    data = demo_subset(dev=256)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tracking-load-") as work:
        for backend in ("sqlite", "postgresql"):
            rows.append(measure(backend, data, Path(work), args.resyncs))
            print(rows[-1])
    header = [
        "store",
        "jobs",
        "sweep s",
        "jobs/min",
        "median log s",
        "slowest log s",
        "runs lost",
        "parallel resync",
    ]
    lines = [
        "## Tracking server under load",
        "",
        f"Generated by `python -m bench.tracking_load`: `python run.py -m {' '.join(SWEEP)}` with the Ray "
        "launcher, 4 jobs at a time (4 Ray CPUs, 1 per job, 1 thread each), the demo model on 256 dev "
        "reviews, "
        "logging into a real `mlflow server` (2 workers, artifacts served) on SQLite, then on a PostgreSQL "
        "15 of its own. `log s`: each job's whole logging call (its folder made into a run by the sweep's "
        "process: params, metrics, tags, dataset, LoggedModel, artifacts). Runs lost: jobs without a "
        "FINISHED run holding their accuracy. "
        f"Then {args.resyncs} `resync SWEEP_DIR` at once into a fresh experiment of the same server.",
        "",
        *machine_lines(),
        "",
        *table(header, rows),
    ]
    replace_section(args.out, "tracking-load", lines)


if __name__ == "__main__":
    main()
