"""Logs a finished job folder to MLflow afterwards: for jobs whose tracking store failed.

    python -m pipeline.tracking resync OUTPUT_DIR [--tracking-uri URI] [--experiment NAME]

The job's files are the record (config.yaml, metrics.json, job_status.json, its reports); the
run gets the same params, metrics, tags and artifacts a tracked job gets, and the tag `job_dir`,
by which a folder already in the store is found and not logged twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from pipeline.config import MlflowConfig, compose_config
from pipeline.errors import PipelineError, TrackingError
from pipeline.job_files import (
    CONFIG_FILE,
    CONFUSION_FILE,
    JOB_STATUS_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    PER_CLASS_FILE,
    PREDICTIONS_FILE,
)
from pipeline.tracking.mlflow_runs import JOB_DIR_TAG, environment_tags, find_run_by_tag, run_name, start_run


def resync(job_dir: Path, tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """Logs `job_dir` as a run; returns its id. Refuses a folder that is not a finished job."""
    job_dir = job_dir.absolute()
    for name in (CONFIG_FILE, JOB_STATUS_FILE):
        if not (job_dir / name).is_file():
            raise TrackingError(
                f"{job_dir}: no {name}; expected the output folder of a job that ran to its end"
            )
    config = yaml.safe_load((job_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    status = json.loads((job_dir / JOB_STATUS_FILE).read_text(encoding="utf-8"))
    recorded = (
        MlflowConfig(**(config.get("mlflow") or {})) if config.get("mlflow") else compose_config().mlflow
    )
    cfg = MlflowConfig(
        enabled=True,
        tracking_uri=tracking_uri or recorded.tracking_uri,
        experiment_name=experiment or recorded.experiment_name,
    )
    existing = find_run_by_tag(cfg, JOB_DIR_TAG, str(job_dir))
    if existing is not None:
        raise TrackingError(f"{job_dir} is already in {cfg.tracking_uri} as run {existing}")
    overrides_file = job_dir / OVERRIDES_FILE
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    tags = {**environment_tags(), JOB_DIR_TAG: str(job_dir), "resynced": "true"}
    if status.get("error"):
        tags["error"] = status["error"]
    run = start_run(cfg, run_name(list(overrides or [])), tags)
    run.log_params(config)
    metrics_file = job_dir / METRICS_FILE
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        run.log_metrics({f"fused_ops.{op}": n for op, n in (metrics.get("fused_ops") or {}).items()})
    for name in (METRICS_FILE, CONFIG_FILE, PER_CLASS_FILE, CONFUSION_FILE, PREDICTIONS_FILE):
        if (job_dir / name).is_file():
            run.log_artifact(job_dir / name)
    run.end("FINISHED" if status.get("status") == "FINISHED" else "FAILED")
    return run.run_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tracking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("resync", help="log finished job folders to MLflow")
    command.add_argument("job_dirs", nargs="+", type=Path, metavar="OUTPUT_DIR")
    command.add_argument("--tracking-uri", help="default: the job's own mlflow.tracking_uri")
    command.add_argument("--experiment", help="default: the job's own mlflow.experiment_name")
    args = parser.parse_args(argv)
    failed = False
    for job_dir in args.job_dirs:
        try:
            run_id = resync(job_dir, args.tracking_uri, args.experiment)
            print(f"{job_dir}: logged as run {run_id}")
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    sys.exit(2 if failed else 0)
