"""A job's output folder: the one record of a job.

The runner writes what the job did (config, what ran, metrics, reports); the job writes how it
ended (job_status.json) and where MLflow has it (tracking.json). Everything else reads these:
the MLflow run is made from them, sweeps summarise them, resync repairs a run from them.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.files import atomic_write_text, load_yaml

CONFIG_FILE = "config.yaml"  # the composed config, resolved
JOB_FILE = "job.json"  # what ran: run name, mode, tags, the dataset, the model
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PER_CLASS_FILE = "per_class.md"
PER_CLASS_TABLE = "per_class.json"
CONFUSION_FILE = "confusion_matrix.svg"
# RUNNING (started_at, host, pid) from the job's start; then FINISHED | FAILED | SKIPPED | KILLED,
# the error and ended_at. A job's MLflow run takes its start and end times from here.
JOB_STATUS_FILE = "job_status.json"
TRACKING_FILE = "tracking.json"  # the MLflow run, or why the store did not take it
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"  # Hydra writes it; sweeps list jobs by it
SWEEP_FILE = "sweep.json"  # in a sweep folder: what was swept, then the outcome (pipeline.sweep)
# In a sweep folder: how the sweep ended where that is not FINISHED (a search stopped early, an
# interrupt). Whoever ends a sweep early writes it before Hydra's end-of-sweep callbacks run; they
# read it to close the parent run with that status. A sweep that starts (or resumes) removes it.
SWEEP_END_FILE = "sweep_end.json"
# In a sweep folder: what an optimising sweeper found (the best parameters and value, or the best
# trials), as Hydra's Optuna sweeper names it; the parent run carries it.
SWEEPER_RESULTS_FILE = "optimization_results.yaml"
# Reports a run carries as artifacts, where the job wrote them (per_class.json goes in as a table).
ARTIFACT_FILES = (METRICS_FILE, CONFIG_FILE, PER_CLASS_FILE, CONFUSION_FILE, PREDICTIONS_FILE)


# Overrides that say where things are, not what the experiment is: left out of job names.
_LOCATION_KEYS = (
    "model.path_prefix",
    "model.name_or_path",
    "dataset.dir",
    "predict.input",
    "predict.output",
    "predict.labels",
    "cache_dir",
    "mlflow.",
    "hydra.",
)


def job_name(overrides: list[str]) -> str:
    """`precision=int8,batch_size=32`: the overrides that define the experiment (its MLflow run name)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_LOCATION_KEYS)]
    return ",".join(kept) if kept else "default"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None where it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


# What a job writes as it runs: an attempt that runs the job again in its folder starts without them.
ATTEMPT_FILES = (JOB_FILE, METRICS_FILE, PREDICTIONS_FILE, PER_CLASS_FILE, PER_CLASS_TABLE, CONFUSION_FILE)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def start_job(job_dir: Path) -> None:
    """The job starts (again) in `job_dir`: RUNNING since now, on this host and pid. An earlier
    attempt's outputs and run record go (a prediction's part files stay: it resumes from them)."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in (*ATTEMPT_FILES, TRACKING_FILE):
        (job_dir / name).unlink(missing_ok=True)
    record = {"status": "RUNNING", "error": "", "started_at": now_iso()}
    write_json(job_dir / JOB_STATUS_FILE, {**record, "host": platform.node(), "pid": os.getpid()})


def write_job_status(job_dir: Path, status: str, error: str = "") -> None:
    """How the job ended, now; it keeps when and where it started (`start_job`)."""
    started = {k: v for k, v in job_status(job_dir).items() if k in ("started_at", "host", "pid")}
    record = {"status": status, "error": error, **started, "ended_at": now_iso()}
    write_json(Path(job_dir) / JOB_STATUS_FILE, record)


def job_status(job_dir: Path) -> dict[str, Any]:
    return read_json(Path(job_dir) / JOB_STATUS_FILE) or {"status": "UNKNOWN", "error": ""}


def epoch_ms(stamp: object) -> int | None:
    """An ISO time (`now_iso()`) in ms since the epoch; None where there is none."""
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def job_times(job_dir: Path) -> tuple[int | None, int | None]:
    """(start, end) of the job in ms since the epoch, as MLflow keeps run times. A folder written
    before job_status.json had times: when config.yaml and job_status.json were written."""
    job_dir = Path(job_dir)
    status = job_status(job_dir)
    start, end = epoch_ms(status.get("started_at")), epoch_ms(status.get("ended_at"))
    if start is None and (job_dir / CONFIG_FILE).is_file():
        start = int((job_dir / CONFIG_FILE).stat().st_mtime * 1000)
    if end is None and status["status"] != "RUNNING" and (job_dir / JOB_STATUS_FILE).is_file():
        end = int((job_dir / JOB_STATUS_FILE).stat().st_mtime * 1000)
    return start, end


def update_job_record(job_dir: Path, **fields: Any) -> dict[str, Any]:
    """Adds `fields` to job.json as the job learns them (a job that dies keeps what it knew)."""
    path = Path(job_dir) / JOB_FILE
    record = read_json(path) or {}
    record.update(fields)
    write_json(path, record)
    return record


def read_overrides(job_dir: Path) -> list[str] | None:
    """The job's overrides (Hydra's .hydra/overrides.yaml); None where the file is missing or damaged
    (not a YAML list: a job killed as Hydra wrote it, or a file edited by hand)."""
    path = Path(job_dir) / OVERRIDES_FILE
    try:
        value = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if value is None:
        return []
    return [str(o) for o in value] if isinstance(value, list) else None


def job_overrides(job_dir: Path) -> list[str]:
    return read_overrides(job_dir) or []


def sweep_of(job_dir: Path) -> Path | None:
    """The sweep folder a job belongs to (its sweep.json is there), or None for a single run."""
    parent = Path(job_dir).absolute().parent
    return parent if (parent / SWEEP_FILE).is_file() else None


def swept_names(overrides: list[str], sweep_dir: Path | None) -> list[str]:
    """The overrides that tell a sweep's jobs apart (the swept keys); all of them for a single run."""
    if sweep_dir is None:
        return overrides
    swept = set((read_json(sweep_dir / SWEEP_FILE) or {}).get("swept_keys") or [])
    return [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in swept] or overrides


def record_lost_job(job_dir: Path, overrides: list[str], error: str) -> None:
    """A job whose process died before it could say so: FAILED, with its overrides for the summary."""
    overrides_file = Path(job_dir) / OVERRIDES_FILE
    if not overrides_file.is_file():
        atomic_write_text(overrides_file, yaml.safe_dump(list(overrides)))
    write_job_status(job_dir, "FAILED", error)


def write_sweep_end(sweep_dir: Path, status: str, reason: str) -> None:
    """Says how a sweep ends when it does not end FINISHED (FAILED, KILLED), and why."""
    write_json(Path(sweep_dir) / SWEEP_END_FILE, {"status": status, "reason": reason})


def sweep_end(sweep_dir: Path) -> dict[str, str]:
    """{status, reason} of a sweep ending early; FINISHED where nobody said otherwise."""
    return read_json(Path(sweep_dir) / SWEEP_END_FILE) or {"status": "FINISHED", "reason": ""}


def clear_sweep_end(sweep_dir: Path) -> None:
    (Path(sweep_dir) / SWEEP_END_FILE).unlink(missing_ok=True)
