"""A job folder -> its MLflow run: the one way a job reaches MLflow.

Single runs, sweep jobs and `python -m pipeline.tracking resync` all call `log_job_folder`. It
finds the folder's run by its `job_dir` tag (or creates it), logs what the run lacks (params,
metrics, tags, the dataset, the model, artifacts) and gives it the job's status. A run left
RUNNING or half-logged by a store that failed is completed, never duplicated; a second call
changes nothing. A run is one attempt of its job: its start and end times are the job's (from
job_status.json), and a job run again in its folder (a resumed sweep) replaces the run of the
earlier attempt, which goes to MLflow's trash.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.core.errors import TrackingError
from pipeline.core.files import load_yaml
from pipeline.core.job_folder import (
    ARTIFACT_FILES,
    CONFIG_FILE,
    JOB_FILE,
    METRICS_FILE,
    PER_CLASS_TABLE,
    TRACKING_FILE,
    job_name,
    job_overrides,
    job_status,
    job_times,
    read_json,
    sweep_of,
    write_json,
)
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.models import log_job_model
from pipeline.tracking.store import NOTE_TAG, Store, TrackedRun, flatten
from pipeline.tracking.sweep_record import SWEEP_DIR_TAG

# Every job's run names its output folder: resync finds it by that.
JOB_DIR_TAG = "job_dir"
# A sweep job's run names its sweep (the folder's name: a column of the runs table); the parent run
# holds the whole path in `sweep_dir`.
SWEEP_TAG = "sweep"
# When the job's attempt started: a run whose tag differs belongs to an earlier attempt.
ATTEMPT_TAG = "job_started_at"
_TERMINAL = ("FINISHED", "FAILED")


@dataclass
class JobFolder:
    """What a job folder says about its job, read once."""

    path: Path
    status: str
    error: str
    config: dict[str, Any]
    record: dict[str, Any]  # job.json
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""  # job_status.json's, "" in folders written before it had one
    times: tuple[int | None, int | None] = (None, None)  # (start, end) in ms since the epoch

    @classmethod
    def read(cls, job_dir: Path) -> JobFolder:
        path = Path(job_dir).absolute()
        status = job_status(path)
        if status["status"] not in _TERMINAL or not (path / CONFIG_FILE).is_file():
            raise TrackingError(
                f"{path}: not the folder of a job that ran to its end (status {status['status']}, "
                f"{CONFIG_FILE} {'present' if (path / CONFIG_FILE).is_file() else 'missing'})"
            )
        config = load_yaml((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        record = read_json(path / JOB_FILE) or {}
        metrics = read_json(path / METRICS_FILE) or {}
        started = str(status.get("started_at") or "")
        return cls(
            path, status["status"], status.get("error", ""), config, record, metrics, started, job_times(path)
        )

    @property
    def name(self) -> str:
        return self.record.get("name") or job_name(job_overrides(self.path))

    @property
    def scalar_metrics(self) -> dict[str, float]:
        values = {
            k: float(v)
            for k, v in self.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        values |= {f"fused_ops.{op}": float(n) for op, n in (self.metrics.get("fused_ops") or {}).items()}
        return values

    def tags(self, sweep_dir: Path | None) -> dict[str, str]:
        tags = {str(k): str(v) for k, v in (self.record.get("tags") or {}).items()}
        tags[JOB_DIR_TAG] = str(self.path)
        if self.started_at:
            tags[ATTEMPT_TAG] = self.started_at
        if self.error:
            tags["error"] = self.error
        if sweep_dir is not None:
            tags[SWEEP_TAG] = sweep_dir.name
        tags[NOTE_TAG] = describe_job(self)
        return tags


def describe_job(job: JobFolder) -> str:
    """One paragraph for the run's page: what ran and its headline result."""
    what = job.record.get("model_name") or job.name
    dataset = job.record.get("dataset") or {}
    on = f" on {dataset['name']} ({dataset.get('rows', '?')} rows)" if dataset else ""
    m = job.metrics
    if job.status != "FINISHED":
        result = f"It failed: {job.error or 'no error recorded'}."
    elif job.record.get("mode") == "predict":
        rate = f"{m.get('lines_per_s', 0):.0f} lines/s"
        result = f"It wrote {m.get('rows', '?')} predictions at {rate} to {job.record.get('output')}."
    else:
        headline = (job.config.get("task") or {}).get("headline_metric", "accuracy")
        quality = (
            f"{headline} is chance (random weights)"
            if (job.record.get("tags") or {}).get("accuracy_meaningful") == "false"
            else f"{headline} {m.get(headline, 0):.4f}, macro-F1 {m.get('macro_f1', 0):.4f}"
        )
        result = (
            f"Result: {quality}; model latency {m.get('latency_ms', 0):.3f} ms/sample, end to end "
            f"{m.get('e2e_ms', 0):.3f} ms/sample; {m.get('agreement_vs_fp32', 1):.2%} of its predictions "
            "agree with FP32's."
        )
    return f"{what}{on}. {result} Job folder: {job.path}"


def log_job_folder(job_dir: Path, cfg: MlflowConfig, parent_run_id: str | None = None) -> str:
    """Makes `job_dir`'s run whole, nested under `parent_run_id` or its sweep's parent run; returns
    its id. A lock in the folder keeps concurrent callers (a job and a resync, two resyncs) from
    creating it twice."""
    job = JobFolder.read(job_dir)
    started = time.perf_counter()
    with FileLock(str(job.path / ".tracking.lock")):
        try:
            store = Store(cfg)
            run_id = _log(job, store, parent_run_id)
        except TrackingError as exc:
            write_json(job.path / TRACKING_FILE, {"tracking_uri": cfg.tracking_uri, "error": str(exc)})
            raise
    state = {
        "tracking_uri": cfg.tracking_uri,
        "run_id": run_id,
        "runs_page": store.runs_page(),
        "log_seconds": round(time.perf_counter() - started, 3),  # the store's speed, for operators
        "logged_by_pid": os.getpid(),  # a sweep's own process, not its job's worker
    }
    write_json(job.path / TRACKING_FILE, state)
    return run_id


def _log(job: JobFolder, store: Store, parent_run_id: str | None) -> str:
    found = store.find_run(JOB_DIR_TAG, str(job.path))
    sweep_dir = sweep_of(job.path)
    tags = job.tags(sweep_dir)
    if parent_run_id is None and sweep_dir is not None:  # a sweep job nests under its parent run
        parent = store.find_run(SWEEP_DIR_TAG, str(sweep_dir))
        parent_run_id = parent.info.run_id if parent else None
    # A run of an earlier attempt of this job goes (one run per job); one without the tag (logged
    # before runs had it) is completed.
    if found is not None and found.data.tags.get(ATTEMPT_TAG, job.started_at) != job.started_at:
        store.run(found.info.run_id).delete()
        found = None
    start, end = job.times
    if found is None:
        run = store.run(store.create_run(job.name, tags, parent_run_id, start_time=start))
        logged_params, logged_metrics, logged_tags, status, inputs = {}, {}, {}, "RUNNING", []
    else:
        run = store.run(found.info.run_id)
        logged_params, logged_metrics = found.data.params, found.data.metrics
        logged_tags, status = found.data.tags, found.info.status
        inputs = [i.dataset.digest for i in (found.inputs.dataset_inputs if found.inputs else [])]
        if parent_run_id and logged_tags.get("mlflow.parentRunId") != parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
    if params := {k: v for k, v in flatten(job.config).items() if k not in logged_params}:
        run.log_params(params)
    if changed := {k: v for k, v in tags.items() if logged_tags.get(k) != v}:
        run.set_tags(changed)
    dataset = job.record.get("dataset")
    if dataset and dataset["digest"] not in inputs:
        run.log_input(
            dataset["name"], dataset["digest"], dataset["path"], dataset["context"], dataset["rows"]
        )
    links = _metric_links(job, store, run.run_id)
    if missing := {k: v for k, v in job.scalar_metrics.items() if k not in logged_metrics}:
        run.log_metrics(missing, timestamp=end, **links)
    _log_artifacts(job, run, new_run=found is None)
    if status != job.status:
        run.end(job.status, end_time=end)
    return run.run_id


def end_job_run(job_dir: Path, cfg: MlflowConfig, status: str) -> None:
    """Ends the folder's run with `status` where the store has it RUNNING (a job interrupted while
    it was being logged); every store call ends within seconds."""
    store = Store(cfg, quick=True)
    found = store.find_run(JOB_DIR_TAG, str(Path(job_dir).absolute()))
    if found is not None and found.info.status == "RUNNING":
        store.run(found.info.run_id).end(status, end_time=job_times(job_dir)[1])


def _metric_links(job: JobFolder, store: Store, run_id: str) -> dict[str, str]:
    """An evaluate job's metrics belong to its LoggedModel and its eval dataset (the Models tab)."""
    links: dict[str, str] = {}
    if dataset := job.record.get("dataset"):
        links |= {"dataset_name": dataset["name"], "dataset_digest": dataset["digest"]}
    if job.record.get("mode") == "evaluate" and job.status == "FINISHED" and job.record.get("model_name"):
        model_tags = {
            JOB_DIR_TAG: str(job.path),
            "model_file": (job.record.get("model") or {}).get("path", ""),
        }
        links["model_id"] = log_job_model(store, run_id, job.record, job.config, model_tags)
    return links


def _log_artifacts(job: JobFolder, run: TrackedRun, *, new_run: bool) -> None:
    present = [name for name in ARTIFACT_FILES if (job.path / name).is_file()]
    table = job.path / PER_CLASS_TABLE
    if not present and not table.is_file():
        return
    logged = set() if new_run else run.artifact_names()  # a run created just now has none
    for name in present:
        if name not in logged:
            run.log_artifact(job.path / name)
    if table.is_file() and PER_CLASS_TABLE not in logged:
        run.log_table(json.loads(table.read_text(encoding="utf-8")), PER_CLASS_TABLE)


def tracking_state(job_dir: Path) -> dict[str, Any]:
    """tracking.json: {run_id} where the store took the job, {error} where it did not, {} before."""
    return read_json(Path(job_dir) / TRACKING_FILE) or {}
