"""A tracking server that dies in the middle of a sweep loses nothing: every job keeps its files, the
sweep says once what to resync, and resync makes each run whole -- FINISHED with its metrics, nested
under its sweep's parent, never duplicated -- and changes nothing the second time."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pipeline import PROJECT_ROOT
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.job_record import tracking_state
from pipeline.tracking.store import Store
from tests.conftest import free_port, running_server, venv_command

pytestmark = pytest.mark.slow
EXPERIMENT = "faults"


@contextlib.contextmanager
def server(folder: Path, port: int) -> Iterator[str]:
    """`mlflow server` on SQLite with served artifacts; the same folder and port each time."""
    uri = f"http://127.0.0.1:{port}"
    command = [venv_command("mlflow"), "server", "--host=127.0.0.1", f"--port={port}"]
    command += [
        f"--backend-store-uri=sqlite:///{folder}/mlflow.db",
        f"--artifacts-destination={folder}/artifacts",
    ]
    with running_server(command, f"{uri}/health", folder / f"server-{time.monotonic_ns()}.log"):
        yield uri


def resync(cwd: Path, *folders: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.tracking", "resync", *map(str, folders)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def runs_of(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])


def test_a_server_killed_mid_sweep_is_repaired_by_resync(
    user_overrides: list[str], cache_dir: Path, tmp_path: Path
) -> None:
    port, store = free_port(), tmp_path / "server"
    store.mkdir()
    overrides = [o for o in user_overrides if not o.startswith("mlflow.")]
    args = ["-m", *overrides, "precision=fp32,int8", "batch_size=8,32", "infer.predict_data=false"]
    args += [f"mlflow.tracking_uri=http://127.0.0.1:{port}", f"mlflow.experiment_name={EXPERIMENT}"]
    sweep = tmp_path / "sweep"
    log = tmp_path / "sweep.log"
    with server(store, port), log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "run.py"), *args, f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
        deadline = time.monotonic() + 300
        while "run_id" not in tracking_state(sweep / "0"):
            assert time.monotonic() < deadline and process.poll() is None, "job 0 was never tracked"
            time.sleep(0.2)
    # The server is gone from here on: jobs 1-3 and the sweep's end cannot reach it.
    process.wait(timeout=600)
    stderr = log.read_text()
    assert process.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]  # said once, for the whole sweep
    assert errors[0].startswith("error: the MLflow store did not take jobs 1, 2, 3 of this sweep (MLflow")
    assert errors[0].endswith(f"their files are kept: python -m pipeline.tracking resync {sweep}")
    for job in range(4):
        assert json.loads((sweep / str(job) / "job_status.json").read_text())["status"] == "FINISHED"
        assert (sweep / str(job) / "metrics.json").is_file()

    with server(store, port) as uri:
        (parent,) = [r for r in runs_of(uri) if "sweep_dir" in r.data.tags]
        assert parent.info.status == "RUNNING"  # the sweep could not end it
        first = resync(tmp_path, sweep)
        assert first.returncode == 0, first.stderr[-3000:]
        runs = runs_of(uri)
        (parent,) = [r for r in runs if "sweep_dir" in r.data.tags]
        children = [r for r in runs if "job_dir" in r.data.tags]
        assert parent.info.status == "FINISHED" and parent.data.metrics["jobs"] == 4
        assert "summary.md" in {a.path for a in mlflow.MlflowClient(uri).list_artifacts(parent.info.run_id)}
        assert sorted(Path(r.data.tags["job_dir"]).name for r in children) == ["0", "1", "2", "3"]
        for run in children:
            metrics = json.loads((Path(run.data.tags["job_dir"]) / "metrics.json").read_text())
            assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
        before = {r.info.run_id: (r.info.status, r.data.metrics, r.info.end_time) for r in runs}
        second = resync(tmp_path, sweep)
        assert second.returncode == 0, second.stderr[-3000:]
        after = {r.info.run_id: (r.info.status, r.data.metrics, r.info.end_time) for r in runs_of(uri)}
        assert after == before  # idempotent: nothing added, nothing changed


def test_a_run_left_half_logged_by_a_dead_server_is_completed_not_duplicated(
    run_cli, user_overrides: list[str], tmp_path: Path
) -> None:
    overrides = [o for o in user_overrides if not o.startswith("mlflow.")]
    result = run_cli(*overrides, "mlflow.enabled=false", "infer.predict_data=false", "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    job = tmp_path / "job"
    port, store = free_port(), tmp_path / "server"
    store.mkdir()
    with server(store, port) as uri:
        # What a server that died while the job was logging leaves: its run, RUNNING, part of its params.
        half = Store(MlflowConfig(tracking_uri=uri, experiment_name=EXPERIMENT))
        run_id = half.create_run("default", {"job_dir": str(job)})
        half.run(run_id).log_params({"batch_size": "32"})
    with server(store, port) as uri:
        command = [sys.executable, "-m", "pipeline.tracking", "resync", str(job)]
        command += ["--tracking-uri", uri, "--experiment", EXPERIMENT]
        repaired = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert repaired.returncode == 0 and run_id in repaired.stdout, repaired.stderr[-3000:]
        (run,) = runs_of(uri)
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert run.data.metrics["accuracy"] > 0.5 and run.data.params["precision.name"] == "fp32"


def test_parallel_jobs_logging_the_same_dataset_all_get_it(tmp_path: Path) -> None:
    """The store creates a dataset's row once per experiment: of jobs logging it at once, the ones
    that lose that race log it again and find it (seen here: 6 of 24 refused without the retry)."""
    import threading

    port, store_dir = free_port(), tmp_path / "server"
    store_dir.mkdir()
    split = tmp_path / "dev.txt"
    split.write_text("很好\tpositive\n")
    with server(store_dir, port) as uri:
        for round_ in range(3):
            store = Store(MlflowConfig(tracking_uri=uri, experiment_name=f"{EXPERIMENT}-{round_}"))
            runs = [store.run(store.create_run(f"job {i}", {})) for i in range(8)]
            start, errors = threading.Barrier(len(runs)), []

            def log(run, start: threading.Barrier = start, errors: list = errors) -> None:
                start.wait()
                try:
                    run.log_input("demo/dev", "0123456789abcdef", str(split), "eval", 1)
                except Exception as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=log, args=(run,)) for run in runs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert all(store.get_run(run.run_id).inputs.dataset_inputs for run in runs)
