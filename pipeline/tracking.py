"""MLflow tracking: one run per job, with the flattened config, metrics and output files."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.config import MlflowConfig

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


def environment_tags() -> dict[str, str]:
    """Where and with what a run ran: enough to tell two runs' numbers apart."""
    import onnxruntime
    import paddle2onnx

    from pipeline.config import PROJECT_ROOT

    try:
        import paddle

        paddle_version = paddle.__version__
    except ImportError:
        paddle_version = "not installed"
    return {
        "git_commit": _git_commit(PROJECT_ROOT),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": ",".join(onnxruntime.get_available_providers()),
        "paddle": paddle_version,
        "paddle2onnx": paddle2onnx.__version__,
        "python": platform.python_version(),
    }


def _setup_lock(tracking_uri: str) -> FileLock:
    """One lock per tracking store: parallel jobs must not race to create the schema or experiment."""
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return FileLock(os.path.join(tempfile.gettempdir(), f"ernie-onnx-mlflow-{digest}.lock"))


class TrackedRun:
    def __init__(self, mlflow_module: Any, run_id: str) -> None:
        self._mlflow = mlflow_module
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def log_artifact(self, path: Path) -> None:
        self._mlflow.log_artifact(str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


@contextmanager
def tracked_run(
    cfg: MlflowConfig, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
) -> Iterator[TrackedRun | None]:
    """An active MLflow run (None when tracking is off) that ends FAILED if the body raises."""
    if not cfg.enabled:
        yield None
        return
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    if cfg.tracking_uri.startswith("sqlite:///"):
        Path(cfg.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _setup_lock(cfg.tracking_uri):
        mlflow.set_tracking_uri(cfg.tracking_uri)
        mlflow.set_experiment(cfg.experiment_name)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(flatten(params))
        mlflow.set_tags(dict(tags))
        try:
            yield TrackedRun(mlflow, run.info.run_id)
        except BaseException as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.end_run(status="FAILED")
            raise
