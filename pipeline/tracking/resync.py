"""Makes the MLflow runs of job folders whole again: for jobs whose tracking store failed.

DIR is a job's output folder or a sweep folder (its parent run and every job). The folders are
the record: a run the store left RUNNING or half-logged is completed, one it never got is
created (nested under its sweep's parent run), a complete one is left as it is. A job that
finished is FINISHED in MLflow, whatever happened to the store meanwhile.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.core.errors import TrackingError
from pipeline.core.files import load_yaml
from pipeline.core.job_folder import CONFIG_FILE, SWEEP_FILE, job_status, sweep_of
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.job_record import log_job_folder
from pipeline.tracking.sweep_record import log_sweep_folder, parent_run_id


def recorded_mlflow(folder: Path) -> MlflowConfig:
    """The mlflow settings the job (or the sweep's first job) ran with."""
    configs = [folder / CONFIG_FILE, *sorted(folder.glob(f"*/{CONFIG_FILE}"))]
    for path in configs:
        if path.is_file():
            section = (load_yaml(path.read_text(encoding="utf-8")) or {}).get("mlflow") or {}
            return MlflowConfig(**section)
    raise TrackingError(
        f"{folder}: no {CONFIG_FILE} here or in its job folders; expected a job or sweep folder"
    )


def is_sweep(folder: Path) -> bool:
    return (folder / SWEEP_FILE).is_file()


def sweep_jobs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep that have something to record (SKIPPED jobs have no run)."""
    jobs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    jobs = [j for j in jobs if job_status(j)["status"] in ("FINISHED", "FAILED")]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def resync_job(job_dir: Path, cfg: MlflowConfig) -> str:
    """A job's run, nested under its sweep's parent run (made whole first where it is missing)."""
    sweep_dir = sweep_of(job_dir)
    parent = None
    if sweep_dir is not None:
        parent = parent_run_id(cfg, sweep_dir) or log_sweep_folder(cfg, sweep_dir)
    return log_job_folder(job_dir, cfg, parent)


def resync(folder: Path, tracking_uri: str | None = None, experiment: str | None = None) -> list[str]:
    """Resyncs a job folder or a whole sweep; returns one line per run made whole."""
    folder = folder.absolute()
    if not folder.is_dir():
        raise TrackingError(f"{folder}: not a folder; expected a job's or a sweep's output folder")
    recorded = recorded_mlflow(folder)
    cfg = replace(
        recorded,
        enabled=True,
        tracking_uri=tracking_uri or recorded.tracking_uri,
        experiment_name=experiment or recorded.experiment_name,
    )
    if not is_sweep(folder):
        return [f"{folder}: run {resync_job(folder, cfg)}"]
    parent = log_sweep_folder(cfg, folder, finished=False)
    lines = [f"{job}: run {log_job_folder(job, cfg, parent)}" for job in sweep_jobs(folder)]
    log_sweep_folder(cfg, folder)
    return [f"{folder}: parent run {parent}", *lines]
