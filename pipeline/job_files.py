"""The files of a job's output folder: written by the runner and the job, read by reports and sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.cache import atomic_write_text

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PER_CLASS_FILE = "per_class.md"
CONFUSION_FILE = "confusion_matrix.png"
JOB_STATUS_FILE = "job_status.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"  # Hydra writes it; sweeps list jobs by it


def write_job_status(job_dir: Path, status: str, error: str = "") -> None:
    atomic_write_text(Path(job_dir) / JOB_STATUS_FILE, json.dumps({"status": status, "error": error}) + "\n")


def record_lost_job(job_dir: Path, overrides: list[str], error: str) -> None:
    """A job whose process died before it could say so: FAILED, with its overrides for the summary."""
    overrides_file = Path(job_dir) / OVERRIDES_FILE
    if not overrides_file.is_file():
        atomic_write_text(overrides_file, yaml.safe_dump(list(overrides)))
    write_job_status(job_dir, "FAILED", error)
