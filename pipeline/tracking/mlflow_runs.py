"""MLflow tracking: one run per job, with the flattened config, metrics and output files."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.config import PROJECT_ROOT, MlflowConfig

# MLflow caps a param value at 6000 characters.
_MAX_PARAM_CHARS = 6000


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'device': {'id': 0}} -> {'device.id': '0'}: MLflow params are flat strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_CHARS]
    return flat


# Overrides that say where things are, not what the experiment is: left out of run names.
_LOCATION_KEYS = ("model.path_prefix", "model.name_or_path", "dataset.dir", "cache_dir", "mlflow.", "hydra.")


def run_name(overrides: list[str]) -> str:
    """`precision=int8,batch_size=32`: the overrides that define the experiment."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_LOCATION_KEYS)]
    return ",".join(kept) if kept else "default"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(root: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _installed_version(distribution: str) -> str:
    """A package's version without importing it (importing paddle takes seconds)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_tags() -> dict[str, str]:
    """Where and with what a run ran: enough to tell two runs' numbers apart."""
    import onnxruntime

    return {
        "git_commit": _git_commit(PROJECT_ROOT),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": ",".join(onnxruntime.get_available_providers()),
        "paddle": _installed_version("paddlepaddle"),
        "paddle2onnx": _installed_version("paddle2onnx"),
        "python": platform.python_version(),
    }


def _sqlite_path(tracking_uri: str) -> Path | None:
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def _store_lock(tracking_uri: str) -> AbstractContextManager:
    """Serialises writes to a SQLite store from parallel jobs (a lock file beside the database);
    a tracking server serialises them itself."""
    database = _sqlite_path(tracking_uri)
    return FileLock(f"{database}.lock") if database is not None else nullcontext()


_BATCH = 100  # MLflow's log_batch takes at most 100 params per call


def _artifact_location(cfg: MlflowConfig) -> str | None:
    """Artifacts beside a SQLite database (MLflow's default is ./mlruns under whatever the cwd is);
    a tracking server decides for itself."""
    database = _sqlite_path(cfg.tracking_uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts" / cfg.experiment_name).resolve().as_uri()


def open_experiment(cfg: MlflowConfig) -> tuple[Any, str, AbstractContextManager]:
    """(client, experiment id, lock): the lock serialises writes from parallel jobs."""
    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    database = _sqlite_path(cfg.tracking_uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    lock = _store_lock(cfg.tracking_uri)
    with lock:
        client = MlflowClient(cfg.tracking_uri)
        experiment = client.get_experiment_by_name(cfg.experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(cfg.experiment_name, artifact_location=_artifact_location(cfg))
        )
    return client, experiment_id, lock


class TrackedRun:
    """One MLflow run, written through an explicit client (no global active run)."""

    def __init__(self, client: Any, run_id: str, lock: AbstractContextManager) -> None:
        self._client = client
        self._lock = lock
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        with self._lock:
            for start in range(0, len(items), _BATCH):
                self._client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        with self._lock:
            for start in range(0, len(items), _BATCH):
                self._client.log_batch(self.run_id, metrics=items[start : start + _BATCH])

    def log_artifact(self, path: Path) -> None:
        with self._lock:
            self._client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        with self._lock:
            for key, value in tags.items():
                self._client.set_tag(self.run_id, key, str(value)[:5000])

    def end(self, status: str) -> None:
        with self._lock:
            self._client.set_terminated(self.run_id, status)


def start_run(
    cfg: MlflowConfig, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> TrackedRun:
    client, experiment_id, lock = open_experiment(cfg)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with lock:
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    return TrackedRun(client, run.info.run_id, lock)


def attach_run(cfg: MlflowConfig, run_id: str) -> TrackedRun:
    client, _, lock = open_experiment(cfg)
    return TrackedRun(client, run_id, lock)


@contextmanager
def tracked_run(
    cfg: MlflowConfig,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> Iterator[TrackedRun | None]:
    """A run (None when tracking is off) that ends FINISHED, or FAILED with the error as a tag."""
    if not cfg.enabled:
        yield None
        return
    run = start_run(cfg, run_name, tags, parent_run_id)
    run.log_params(params)
    try:
        yield run
    except BaseException as exc:
        run.set_tags({"error": f"{type(exc).__name__}: {exc}"})
        run.end("FAILED")
        raise
    run.end("FINISHED")
