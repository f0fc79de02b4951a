"""A job run in this process as `run.py` runs it (pipeline.job.execute), without Hydra's CLI."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import yaml

from pipeline.job import Outcome, execute
from pipeline.options.config import Config


def run_in_process(config: Config, job_dir: Path, *overrides: str) -> Outcome:
    """Runs `config`'s stages into `job_dir` and logs its MLflow run (where mlflow.enabled)."""
    return execute(config, job_dir, list(overrides), yaml.safe_dump(asdict(config)))


def evaluate_in_process(config: Config, job_dir: Path, *overrides: str) -> dict:
    """The metrics of a job that must finish; its error otherwise."""
    outcome = run_in_process(config, job_dir, *overrides)
    if outcome.bug is not None:
        raise outcome.bug
    assert outcome.status == "FINISHED", outcome.error
    assert outcome.tracking_error is None, outcome.tracking_error
    return outcome.metrics
