"""The helper process that writes a single run's MLflow run while the job works."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import mlflow
import pytest

from pipeline.config import MlflowConfig
from pipeline.errors import TrackingError
from pipeline.tracking.run_process import RunProcess, serve
from tests.conftest import free_port


def store(tmp_path: Path) -> MlflowConfig:
    return MlflowConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment_name="helper")


def only_run(cfg: MlflowConfig):
    client = mlflow.MlflowClient(cfg.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.experiment_name).experiment_id])
    return client, run


def test_the_helper_logs_the_run_and_returns_when_it_is_stored(tmp_path: Path) -> None:
    cfg = store(tmp_path)
    artifact = tmp_path / "metrics.json"
    artifact.write_text('{"accuracy": 0.5}\n')
    helper = RunProcess.spawn()
    run = helper.start_run(cfg, "job", {"batch_size": 32, "model": {"name": "tiny"}}, {"job_dir": "x"}, None)
    run.set_tags({"tokenizer": "fast"})
    run.log_metrics({"accuracy": 0.5})
    run.log_artifact(artifact)
    run_id = run.run_id
    run.end("FINISHED")
    client, stored = only_run(cfg)
    assert stored.info.run_id == run_id and stored.info.status == "FINISHED"
    assert stored.data.params == {"batch_size": "32", "model.name": "tiny"}
    assert stored.data.tags["tokenizer"] == "fast" and stored.data.metrics == {"accuracy": 0.5}
    assert [a.path for a in client.list_artifacts(run_id)] == ["metrics.json"]


def test_a_run_its_job_never_ended_is_failed(tmp_path: Path) -> None:
    cfg = store(tmp_path)
    start = {"config": asdict(cfg), "run_name": "job", "params": {}, "tags": {}, "parent_run_id": None}
    requests = [
        {"call": "start", "args": [start]},
        {"call": "log_metrics", "args": [{"accuracy": 0.5}]},
    ]  # and then the job process died: its helper reads the end of its input
    replies = io.StringIO()
    serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), replies)
    assert json.loads(replies.getvalue().splitlines()[-1]) == {"done": True, "error": None}
    _, stored = only_run(cfg)
    assert stored.info.status == "FAILED" and stored.data.metrics == {"accuracy": 0.5}


def test_an_unreachable_store_is_reported_when_the_run_ends() -> None:
    cfg = MlflowConfig(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment_name="helper")
    run = RunProcess.spawn().start_run(cfg, "job", {}, {}, None)
    run.log_metrics({"accuracy": 0.5})  # queued: the job is not held up by the store
    with pytest.raises(TrackingError, match="is unreachable"):
        run.end("FINISHED")


def test_a_helper_that_died_is_an_error_when_the_run_ends(tmp_path: Path) -> None:
    helper = RunProcess.spawn()
    run = helper.start_run(store(tmp_path), "job", {}, {}, None)
    helper._process.kill()  # as the kernel's OOM killer would
    run.log_metrics({"accuracy": 0.5})
    with pytest.raises(TrackingError, match="exited"):
        run.end("FINISHED")


def test_a_helper_given_no_run_is_stopped() -> None:
    helper = RunProcess.spawn()
    helper.discard()
    assert helper._process.poll() is not None


def test_a_helper_shipped_to_a_launchers_worker_arrives_as_none() -> None:
    import cloudpickle

    helper = RunProcess.spawn()

    def task() -> object:  # as Ray and joblib ship run.py's main, with the globals it uses
        return helper

    try:
        assert cloudpickle.loads(cloudpickle.dumps(task))() is None
    finally:
        helper.discard()
