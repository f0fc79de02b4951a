"""What every job writes first and how it names its model: config.yaml and job.json's tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.environment import environment_tags
from pipeline.core.files import atomic_write_text, file_digest
from pipeline.core.job_folder import CONFIG_FILE, JOB_FILE, job_name, read_json, update_job_record
from pipeline.options.config import Config


def begin_record(config: Config, job_dir: Path, overrides: list[str], composed_yaml: str) -> None:
    """config.yaml and job.json (run name, mode, tags): all a run needs even if the job then fails."""
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job_dir / CONFIG_FILE, composed_yaml)
    tags = {
        "mode": config.mode,
        "model": config.model.name,
        "dataset": config.dataset.name,
        "weights": config.model.weights,
        # Random weights: latency is real, accuracy is chance.
        "accuracy_meaningful": str(config.model.weights != "random").lower(),
        **config.engine.describe(),
        **environment_tags(),
    }
    update_job_record(
        job_dir,
        name=job_name(overrides),
        mode=config.mode,
        tags=tags,
        model_name=model_name(config, overrides),
    )


def add_tags(job_dir: Path, **tags: str) -> None:
    """Tags the job learns as it runs (e.g. the tokenizer it could load)."""
    record = read_json(job_dir / JOB_FILE) or {}
    update_job_record(job_dir, tags={**(record.get("tags") or {}), **tags})


def model_name(config: Config, overrides: list[str]) -> str:
    """The job's model as the MLflow Models tab lists it: what distinguishes it from its neighbours,
    e.g. `ernie-3.0-medium-zh · int8 · onnxruntime · bs32 · max_seq_length=64`."""
    parts = [config.model.name, config.precision.name, config.engine.name, f"bs{config.batch_size}"]
    shown = ("model=", "precision=", "engine=", "batch_size=")
    name = job_name(overrides)
    for override in overrides:
        if override in name and not override.startswith(shown):
            key, _, value = override.partition("=")
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return " · ".join(parts)


def dataset_record(name: str, path: Path, context: str, rows: int) -> dict[str, Any]:
    """An input as MLflow's runs table shows it: `<dataset>/<split>`, its content hash and file."""
    return {
        "name": name,
        "path": str(path.absolute()),
        "digest": file_digest(path)[:16],
        "context": context,
        "rows": rows,
    }
