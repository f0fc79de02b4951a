"""A sweep's jobs made into runs by the sweep's own process (pipeline/sweep/job_logging.py), on real
job folders and a real SQLite store: what it logs, and that it waits while a job times its model."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import mlflow
import yaml

from pipeline.core.job_folder import start_job
from pipeline.core.measuring import MEASUREMENT
from pipeline.job import execute
from pipeline.options.config import Config, compose_config
from pipeline.options.tracking import MlflowConfig
from pipeline.sweep.job_logging import JobLogger
from tests.conftest import dataset_with_a_bad_test_split, runs_by_kind


def sweep_job(config: Config, sweep: Path, number: int, override: str) -> Path:
    """Job `number` of `sweep` run as a sweep's worker runs it: its folder, no run."""
    job_dir = sweep / str(number)
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([override]))
    execute(config, job_dir, [override], yaml.safe_dump(asdict(config)), sweep_dir=sweep)
    assert not (job_dir / "tracking.json").exists(), "a sweep's job logs nothing itself"
    return job_dir


def new_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(
        json.dumps({"overrides": ["batch_size=8,32"], "swept_keys": ["batch_size"]})
    )
    return sweep


def tiny_config(tiny_model: Path, cache_dir: Path, tmp_path: Path, *overrides: str) -> Config:
    return compose_config(
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=job-logging",
        f"cache_dir={cache_dir}",
        "infer.predict_data=false",
        *overrides,
    )


def test_jobs_that_end_before_and_while_the_parent_run_opens_are_all_logged(
    tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Job 0 finished before this sweep process (a resume into a new store): caught up. Job 1 fails
    after the process started but before its thread had opened the parent run: a new attempt,
    logged as FAILED, not taken for an earlier attempt that will run again."""
    sweep = new_sweep(tmp_path)
    config = tiny_config(tiny_model, cache_dir, tmp_path)
    sweep_job(config, sweep, 0, "batch_size=8")
    logger = JobLogger(config.mlflow, sweep)  # the sweep process starts
    bad = dataset_with_a_bad_test_split(tmp_path / "bad-data")
    failing = replace(config, dataset=replace(config.dataset, dir=str(bad), eval_split="test"))
    sweep_job(failing, sweep, 1, "batch_size=32")
    logger.open()
    logger.log_due()

    parents, children = runs_by_kind(config.mlflow.tracking_uri, "job-logging")
    assert len(parents) == 1
    assert sorted((c.data.tags["job_dir"], c.info.status) for c in children) == [
        (str(sweep / "0"), "FINISHED"),
        (str(sweep / "1"), "FAILED"),
    ]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    for job in ("0", "1"):
        assert json.loads((sweep / job / "tracking.json").read_text())["logged_by_pid"] == os.getpid()


def test_the_logging_waits_while_a_job_of_its_process_times_its_model(
    tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """With the basic launcher the jobs run in the sweep's own process: a run logged during the
    next job's timed section would slow the latency that job measures."""
    sweep = new_sweep(tmp_path)
    config = tiny_config(tiny_model, cache_dir, tmp_path)
    logger = JobLogger(config.mlflow, sweep)
    logger.open()
    job = sweep_job(config, sweep, 0, "batch_size=8")
    with MEASUREMENT:  # the next job times its model
        logger.start(opening=False)
        time.sleep(3 * 0.5 + 1)
        assert not (job / "tracking.json").exists(), "logged during a timed section"
    deadline = time.monotonic() + 60
    while not (job / "tracking.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    logger.stop()
    assert "run_id" in json.loads((job / "tracking.json").read_text())
    assert [t for t in threading.enumerate() if t.name == "sweep-job-logger"] == []
    client = mlflow.MlflowClient(config.mlflow.tracking_uri)
    assert client.get_run(json.loads((job / "tracking.json").read_text())["run_id"]).info.status == "FINISHED"


def test_the_parent_run_opens_once_a_job_has_started(tmp_path: Path) -> None:
    """MLflow's import and the store wait for the first job: before it, they would slow the sweep's
    start (the sweeper composing configs, the workers importing)."""
    sweep = new_sweep(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = JobLogger(MlflowConfig(tracking_uri=uri, experiment_name="opens-late"), sweep)
    logger.start(opening=True)
    try:
        time.sleep(1.5)
        assert logger.parent_run_id is None, "opened before any job started"
        start_job(sweep / "0")
        deadline = time.monotonic() + 30
        while logger.parent_run_id is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert logger.parent_run_id is not None, "not opened after a job started"
    finally:
        logger.stop()
    parents, _ = runs_by_kind(uri, "opens-late")
    assert [p.info.run_id for p in parents] == [logger.parent_run_id]


def test_a_sweep_that_ends_before_any_job_starts_still_opens_its_parent_run(tmp_path: Path) -> None:
    sweep = new_sweep(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = JobLogger(MlflowConfig(tracking_uri=uri, experiment_name="ends-early"), sweep)
    logger.start(opening=True)
    logger.stop(timeout=30)
    assert logger.parent_run_id is not None
