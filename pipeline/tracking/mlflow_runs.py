"""MLflow tracking: one run per job, with the flattened config, metrics and output files."""

from __future__ import annotations

import contextlib
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

from pipeline import PROJECT_ROOT
from pipeline.core.cache import installed_version
from pipeline.core.errors import TrackingError
from pipeline.options.tracking import MlflowConfig, sqlite_database
from pipeline.tracking.run_process import RunProcess

log = logging.getLogger(__name__)
# Every job's run names its output folder: `python -m pipeline.tracking resync` finds it by that.
JOB_DIR_TAG = "job_dir"

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

    return {
        "git_commit": _git_commit(PROJECT_ROOT),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": ",".join(onnxruntime.get_available_providers()),
        "paddle": installed_version("paddlepaddle"),
        "paddle2onnx": installed_version("paddle2onnx"),
        "python": platform.python_version(),
    }


def _store_lock(tracking_uri: str) -> AbstractContextManager:
    """Serialises writes to a SQLite store from parallel jobs (a lock file beside the database);
    a tracking server serialises them itself."""
    database = sqlite_database(tracking_uri)
    return FileLock(f"{database}.lock") if database is not None else nullcontext()


_BATCH = 100  # MLflow's log_batch takes at most 100 params per call
# A tracking server that does not answer is an error in seconds, not minutes of retries
# (MLflow's own defaults: 7 retries with exponential backoff, 120 s per request).
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_PROBE_SECONDS = 5


def _artifact_location(cfg: MlflowConfig) -> str | None:
    """Artifacts beside a SQLite database (MLflow's default is ./mlruns under whatever the cwd is);
    a tracking server decides for itself (`--artifacts-destination`)."""
    database = sqlite_database(cfg.tracking_uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts" / cfg.experiment_name).resolve().as_uri()


class CredentialsRefused(TrackingError):
    """A tracking server with accounts refused the request: no or wrong credentials (401), or a user
    without permission for it (403)."""


_CREDENTIALS_HELP = "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"


def _refusal(tracking_uri: str, exc: Exception) -> int | None:
    """401 or 403 where a tracking server refused the request; MLflow's REST calls raise an
    MlflowException that knows its status, its artifact uploads a requests.HTTPError."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    status_of = getattr(exc, "get_http_status_code", None)
    response = getattr(exc, "response", None)
    status = status_of() if callable(status_of) else getattr(response, "status_code", None)
    return status if status in (401, 403) else None


def _refused(tracking_uri: str, what: str, status: int) -> CredentialsRefused:
    from mlflow.utils.credentials import read_mlflow_creds

    user = read_mlflow_creds().username
    if status == 403:
        why = f"user {user!r} may not {what} (403 permission denied); an admin of the server can grant it"
    elif user:
        why = f"the credentials of user {user!r} were refused (401); {_CREDENTIALS_HELP}"
    else:
        why = f"it asks for credentials and none are set (401); {_CREDENTIALS_HELP}"
    return CredentialsRefused(f"MLflow tracking server {tracking_uri}: {why}")


@contextmanager
def store_errors(tracking_uri: str, what: str) -> Iterator[None]:
    """Any failure of the tracking store (server gone, database locked or read-only, credentials
    refused) as one TrackingError."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:  # MLflow, SQLAlchemy and requests raise many types for the same event
        if (status := _refusal(tracking_uri, exc)) is not None:
            raise _refused(tracking_uri, what, status) from None
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"MLflow tracking store {tracking_uri}: could not {what} ({detail})") from None


def _check_server(tracking_uri: str) -> None:
    """A tracking server must answer its health check within seconds."""
    import requests

    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        response = requests.get(tracking_uri.rstrip("/") + "/health", timeout=_PROBE_SECONDS)
        # MLflow's accounts leave /health open; a proxy that does not has answered all the same, and
        # the API calls, which send the credentials, say whether it takes them.
        if response.status_code not in (401, 403):
            response.raise_for_status()
    except requests.RequestException as exc:
        reason = type(exc).__name__ if isinstance(exc, requests.ConnectionError | requests.Timeout) else exc
        raise TrackingError(
            f"MLflow tracking server {tracking_uri} is unreachable ({reason}); start it (make mlflow-server) "
            "or set mlflow.tracking_uri"
        ) from None


def open_experiment(cfg: MlflowConfig) -> tuple[Any, str, AbstractContextManager]:
    """(client, experiment id, lock): the lock serialises writes from parallel jobs."""
    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    database = sqlite_database(cfg.tracking_uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    if cfg.tracking_uri.startswith(("http://", "https://")):
        _check_server(cfg.tracking_uri)
    lock = _store_lock(cfg.tracking_uri)
    with lock, store_errors(cfg.tracking_uri, f"open experiment {cfg.experiment_name!r}"):
        client = MlflowClient(cfg.tracking_uri)
        experiment = client.get_experiment_by_name(cfg.experiment_name)
        if experiment is not None:
            return client, experiment.experiment_id, lock
        try:
            experiment_id = client.create_experiment(
                cfg.experiment_name, artifact_location=_artifact_location(cfg)
            )
        except Exception:  # another job on another machine created it first
            experiment = client.get_experiment_by_name(cfg.experiment_name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    return client, experiment_id, lock


class TrackedRun:
    """One MLflow run, written through an explicit client (no global active run)."""

    def __init__(self, client: Any, run_id: str, lock: AbstractContextManager, tracking_uri: str) -> None:
        self._client = client
        self._lock = lock
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        with self._lock, store_errors(self.tracking_uri, f"{what} of run {self.run_id}"):
            yield

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        with self._writing("log the params"):
            for start in range(0, len(items), _BATCH):
                self._client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        with self._writing("log the metrics"):
            for start in range(0, len(items), _BATCH):
                self._client.log_batch(self.run_id, metrics=items[start : start + _BATCH])

    def log_artifact(self, path: Path) -> None:
        with self._writing(f"upload {Path(path).name}"):
            self._client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        with self._writing("set the tags"):
            for key, value in tags.items():
                self._client.set_tag(self.run_id, key, str(value)[:5000])

    def reopen(self) -> None:
        with self._writing("mark RUNNING again"):
            self._client.update_run(self.run_id, status="RUNNING")

    def end(self, status: str) -> None:
        with self._writing(f"mark {status}"):
            self._client.set_terminated(self.run_id, status)


def start_run(
    cfg: MlflowConfig, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> TrackedRun:
    client, experiment_id, lock = open_experiment(cfg)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with lock, store_errors(cfg.tracking_uri, "start a run"):
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    return TrackedRun(client, run.info.run_id, lock, cfg.tracking_uri)


def attach_run(cfg: MlflowConfig, run_id: str) -> TrackedRun:
    client, _, lock = open_experiment(cfg)
    return TrackedRun(client, run_id, lock, cfg.tracking_uri)


def find_run_by_tag(cfg: MlflowConfig, key: str, value: str) -> str | None:
    """The newest run of the experiment whose tag `key` is `value`."""
    client, experiment_id, lock = open_experiment(cfg)
    quote = "'" if "'" not in value else '"'
    with lock, store_errors(cfg.tracking_uri, f"search runs tagged {key}"):
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.{key} = {quote}{value}{quote}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    return runs[0].info.run_id if runs else None


@contextmanager
def tracked_run(
    cfg: MlflowConfig,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
    helper: RunProcess | None = None,
) -> Iterator[TrackedRun | RunProcess | None]:
    """A run (None when tracking is off) that ends FINISHED, or FAILED with the error as a tag.

    Where the store cannot be reached, the job still runs and writes its files, and the
    TrackingError is raised once the body is done: no work is lost to tracking. With a `helper`
    (a single run from run.py), that process writes the run while this one works.
    """
    if not cfg.enabled:
        yield None
        return
    run: TrackedRun | RunProcess
    if helper is not None:
        run = helper.start_run(cfg, run_name, params, tags, parent_run_id)
    else:
        try:
            run = start_run(cfg, run_name, tags, parent_run_id)
            run.log_params(params)
        except TrackingError as unreachable:
            log.warning("%s -- the job runs on and keeps its files; nothing is logged", unreachable)
            yield None
            raise unreachable from None
    try:
        yield run
    except BaseException as exc:
        with contextlib.suppress(TrackingError):
            run.set_tags({"error": f"{type(exc).__name__}: {exc}"})
            run.end("FAILED")
        raise
    run.end("FINISHED")
