"""Beyond one machine: sweeps on a real Ray cluster, tracked in a real MLflow tracking server."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import RunCli, dataset_with_a_bad_test_split, free_port, runs_by_kind

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


def summary_rows(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "summary.csv").open()))


def test_ray_sweep_on_a_running_cluster_tracks_into_the_server(
    run_cli: RunCli, user_overrides: list[str], ray_head: str, mlflow_server: str, tmp_path: Path
) -> None:
    overrides = [o for o in user_overrides if not o.startswith("mlflow.tracking_uri")]
    result = run_cli(
        "-m",
        *overrides,
        f"mlflow.tracking_uri={mlflow_server}",
        "mlflow.experiment_name=ray-sweep",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_head}",
        "precision=fp32,int8",
        "infer.predict_data=false",
        "device.num_threads=1",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parents, children = runs_by_kind(mlflow_server, "ray-sweep")
    assert len(parents) == 1 and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert parents[0].info.status == "FINISHED" and parents[0].data.metrics["jobs"] == 2
    # The dashboard shows a Ray sweep on a server as it shows any: the parent's headline, each job's
    # dataset and its model in the Models tab, its metrics tied to that model.
    assert "best_accuracy" in parents[0].data.metrics and "winner_latency_ms" in parents[0].data.metrics
    assert all(c.inputs.dataset_inputs[0].dataset.name == "demo/dev" for c in children)
    client = mlflow.MlflowClient(mlflow_server)
    models = client.search_logged_models([parents[0].info.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(c.info.run_id for c in children)
    assert all({m.key for m in model.metrics} >= {"accuracy", "latency_ms"} for model in models)

    # Artifacts went through the server: another machine downloads them by run id alone.
    downloads = tmp_path / "downloads"
    for child in children:
        path = mlflow.artifacts.download_artifacts(
            run_id=child.info.run_id,
            artifact_path="metrics.json",
            dst_path=str(downloads / child.info.run_id),
            tracking_uri=mlflow_server,
        )
        metrics = json.loads(Path(path).read_text())
        assert metrics["accuracy"] == pytest.approx(child.data.metrics["accuracy"])
    summary = mlflow.artifacts.download_artifacts(
        run_id=parents[0].info.run_id,
        artifact_path="summary.md",
        dst_path=str(downloads / "parent"),
        tracking_uri=mlflow_server,
    )
    assert Path(summary).read_text().count("FINISHED |") == 2
    assert [r["status"] for r in summary_rows(tmp_path / "sweep")] == ["FINISHED", "FINISHED"]


def test_single_run_tracks_into_the_server(
    run_cli: RunCli, user_overrides: list[str], mlflow_server: str, tmp_path: Path
) -> None:
    overrides = [o for o in user_overrides if not o.startswith("mlflow.")]
    result = run_cli(
        *overrides,
        f"mlflow.tracking_uri={mlflow_server}",
        "mlflow.experiment_name=single",
        "hydra.run.dir=job",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("single").experiment_id])
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="predictions.jsonl",
        dst_path=str(tmp_path / "d"),
        tracking_uri=mlflow_server,
    )
    assert Path(path).read_bytes() == (tmp_path / "job" / "predictions.jsonl").read_bytes()


def test_ray_launcher_gives_the_same_summary_as_the_basic_launcher(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    """A Ray cluster of the sweep's own (address=local: never one running on this machine); a
    failing job is FAILED, the rest run."""
    data = dataset_with_a_bad_test_split(tmp_path / "data")
    common = [*user_overrides, f"dataset.dir={data}", "dataset.eval_split=dev,test", "device.num_threads=1"]
    rows = {}
    launchers = {
        "basic": [],
        "ray": ["hydra.launcher.ray.init.address=local", "hydra.launcher.ray.init.num_cpus=2"],
    }
    errors = {}
    for launcher, settings in launchers.items():
        result = run_cli(
            "-m",
            *common,
            f"hydra/launcher={launcher}",
            *settings,
            "infer.predict_data=false",
            f"hydra.sweep.dir={launcher}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "1 finished, 1 failed" in result.stdout
        # Our launcher's config is the only `hydra/launcher/ray`: Hydra has no schema to warn about.
        assert "ConfigStore schema" not in result.stderr and "Plugin is incompatible" not in result.stderr
        errors[launcher] = summary_rows(tmp_path / launcher)[1]["error"]
        rows[launcher] = [
            {k: r[k] for k in ("job", "overrides", "status", "accuracy", "macro_f1", "agreement_vs_fp32")}
            | {"error": r["error"].split(" [host ")[0]}
            for r in summary_rows(tmp_path / launcher)
        ]
    assert rows["ray"] == rows["basic"]
    assert "test.txt:2: label 'broken-label'" in rows["ray"][1]["error"]
    # A job may run on another machine: its error says where.
    assert errors["ray"].endswith(f"[host {platform.node()}]")


LOSES_A_TASK = """
import os
import sys
from pathlib import Path

import ray

from hydra_plugins.ernie_ray_launcher._core import job_result

@ray.remote(max_retries=0)
def dies():
    os._exit(1)

ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="error")
try:
    result = job_result(dies.remote(), Path(sys.argv[1]), ["precision=int8"])
finally:
    ray.shutdown()
assert result.return_value is None
"""


def test_a_lost_ray_task_is_recorded_failed(tmp_path: Path, ray_tmp: Path) -> None:
    """A job whose worker process dies is a FAILED row in the summary, not the end of the sweep. The
    launcher's code runs in a process of its own on a cluster of its own, as in a sweep: a Ray
    driver inside the test process, after the other Ray tests, could not reach its GCS
    (InvalidAuthToken), in CI and here."""
    from pipeline import PROJECT_ROOT
    from pipeline.sweep.summary import sweep_rows

    driver = subprocess.run(
        [sys.executable, "-c", LOSES_A_TASK, str(tmp_path / "0")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "RAY_TMPDIR": str(ray_tmp)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    (row,) = sweep_rows(tmp_path)
    assert (row["overrides"], row["status"]) == ("precision=int8", "FAILED")
    assert "Ray task lost" in row["error"]


def test_unreachable_tracking_server_is_one_error_and_loses_no_work(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    overrides = [o for o in user_overrides if not o.startswith("mlflow.tracking_uri")]
    started = time.monotonic()
    result = run_cli(*overrides, f"mlflow.tracking_uri={dead}", "hydra.run.dir=job", timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"MLflow tracking server {dead} is unreachable" in errors[0]
    assert "Traceback" not in result.stderr
    job = tmp_path / "job"
    assert json.loads((job / "metrics.json").read_text())["accuracy"] > 0.5
    assert (job / "predictions.jsonl").read_text().count("\n") == 100
    # The job finished; only the store failed: the folder says both, for resync.
    assert json.loads((job / "job_status.json").read_text())["status"] == "FINISHED"
    assert "is unreachable" in json.loads((job / "tracking.json").read_text())["error"]
    assert elapsed < 240, f"{elapsed:.0f} s: MLflow's retries were not bounded"
