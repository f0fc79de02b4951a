"""Sweeps as users run them: a parent MLflow run, one child per job, summaries, parallel jobs."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import mlflow
import pytest

from tests.conftest import RunCli, dataset_with_a_bad_test_split, runs_by_kind

pytestmark = pytest.mark.slow


def test_parallel_joblib_sweep_loses_no_run(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    result = run_cli(
        "-m",
        *user_overrides,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "precision=fp32,int8",
        "batch_size=4,16",
        "infer.predict_data=false",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parents, children = runs_by_kind(f"sqlite:///{tmp_path}/mlflow.db", "cli-test")
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.info.status == "FINISHED" and c.data.metrics["accuracy"] > 0 for c in children)
    # Jobs are named by what they sweep; what they share is the parent's.
    assert sorted(c.info.run_name for c in children) == sorted(
        f"precision={p},batch_size={b}" for p in ("fp32", "int8") for b in (4, 16)
    )
    assert "infer.predict_data=false" in parent.data.params["sweep.overrides"]
    assert {c.data.tags["sweep"] for c in children} == {"sweep"}
    for tag in ("git_commit", "host", "cpu", "onnxruntime", "onnxruntime_providers", "paddle", "paddle2onnx"):
        assert children[0].data.tags[tag], tag
    by_precision: dict[str, set[float]] = {}
    for child in children:
        by_precision.setdefault(child.data.params["precision.name"], set()).add(
            round(child.data.metrics["accuracy"], 3)
        )
    assert all(len(accuracies) == 1 for accuracies in by_precision.values()), "batch size changed results"
    assert parent.data.metrics["jobs"] == 4 and parent.data.metrics["jobs_failed"] == 0

    sweep = tmp_path / "sweep"
    # The sweep's own process made every run; the workers that ran the jobs never opened the store.
    loggers = {json.loads((sweep / str(n) / "tracking.json").read_text())["logged_by_pid"] for n in range(4)}
    workers = {json.loads((sweep / str(n) / "job_status.json").read_text())["pid"] for n in range(4)}
    assert len(loggers) == 1 and not loggers & workers, (loggers, workers)
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and all(r["status"] == "FINISHED" and float(r["latency_ms"]) > 0 for r in rows)
    assert (sweep / "summary.md").read_text().count("FINISHED |") == 4
    for name in ("latency_vs_batch_size.svg", "accuracy_vs_latency.svg"):  # a point per job, at least
        assert len(list(ET.parse(sweep / name).getroot().iter("{http://www.w3.org/2000/svg}circle"))) >= 4
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "summary.md", "latency_vs_batch_size.svg", "base_config.yaml"} <= parent_artifacts
    child_artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"confusion_matrix.svg", "per_class.md", "metrics.json"} <= child_artifacts


def test_failing_job_is_recorded_and_the_sweep_goes_on(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    data = dataset_with_a_bad_test_split(tmp_path / "data")
    result = run_cli(
        "-m", *user_overrides, f"dataset.dir={data}", "dataset.eval_split=dev,test", "hydra.sweep.dir=sweep"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 finished, 1 failed" in result.stdout
    _, children = runs_by_kind(f"sqlite:///{tmp_path}/mlflow.db", "cli-test")
    statuses = {c.data.params["dataset.eval_split"]: c for c in children}
    assert statuses["dev"].info.status == "FINISHED"
    assert statuses["test"].info.status == "FAILED"
    assert "test.txt:2: label 'broken-label'" in statuses["test"].data.tags["error"]
    rows = {r["overrides"]: r for r in csv.DictReader((tmp_path / "sweep" / "summary.csv").open())}
    assert rows["dataset.eval_split=test"]["status"] == "FAILED"
    assert "broken-label" in rows["dataset.eval_split=test"]["error"]


def test_seed_table_skips_gpu_rows_without_cuda(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA: the GPU rows run")
    result = run_cli(
        "experiment=seed_table", *user_overrides, "infer.predict_data=false", "hydra.sweep.dir=sweep"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("skipped +seed_row=gpu_") == 2
    rows = {
        r["overrides"].split(",")[0]: r for r in csv.DictReader((tmp_path / "sweep" / "summary.csv").open())
    }
    assert {k: r["status"] for k, r in rows.items()} == {
        "+seed_row=gpu_fp32": "SKIPPED",
        "+seed_row=gpu_fp16": "SKIPPED",
        "+seed_row=cpu_fp32": "FINISHED",
        "+seed_row=cpu_int8": "FINISHED",
    }
