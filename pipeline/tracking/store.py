"""The MLflow tracking store: one experiment, opened through an explicit client (no global active
run), every failure one TrackingError that says what could not be done and why."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.core import interrupts
from pipeline.core.errors import TrackingError
from pipeline.options.tracking import MlflowConfig, sqlite_database

log = logging.getLogger(__name__)

_MAX_PARAM_CHARS = 6000  # MLflow caps a param value at 6000 characters
_MAX_TAG_CHARS = 5000
_BATCH = 100  # MLflow's log_batch takes at most 100 params per call
# A tracking server that does not answer is an error in seconds, not minutes of retries
# (MLflow's own defaults: 7 retries with exponential backoff, 120 s per request).
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_PROBE_SECONDS = 5
# A clean-up after an interrupt (Store(quick=True)) must end soon: one try of 5 s per request, and
# at most 10 s waiting for another process's SQLite write.
_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_QUICK_LOCK_SECONDS = 10
# How SQLite and PostgreSQL refuse a row that a concurrent writer has just created.
_ALREADY_CREATED = ("UNIQUE constraint failed", "duplicate key value violates unique constraint")
NOTE_TAG = "mlflow.note.content"  # the description the UI shows (experiment, run, model)
GLOSSARY = """ERNIE text classifiers converted to ONNX, optimized and evaluated: one run per job.

A sweep is a parent run with one child run per job (the `sweep` column names it). Every evaluate job
is also a model in the Models tab, its metrics tied to it and to its eval dataset.

Metrics (each task's headline metric leads: accuracy for multi_class and pair, micro_f1 for
multi_label and hierarchical):
- accuracy, macro_f1: on the eval split (dataset.eval_split), against its labels.
- micro_f1, subset_accuracy, hamming_loss (multi_label, hierarchical): F1 of every (text, label)
  decision pooled; the share of texts whose whole label set is right; the share of wrong decisions.
- level1_micro_f1, level1_macro_f1, level2_... (hierarchical): the same over each level's nodes.
- latency_ms: model time per sample: the timed engine calls over the split / samples (the seed's latency).
- e2e_ms: end to end per sample: tokenization + padding and feeds + engine calls + restoring order.
- tokenize_ms: tokenization per sample.
- batch_latency_p50_ms / p95 / p99: per engine call (one batch), in ms: the tail a service sees.
- throughput_sps: samples per second of model time.
- agreement_vs_fp32: the share of eval texts whose predicted label set equals the same engine's
  FP32 model's.
- accuracy_delta_vs_fp32 (micro_f1_delta_vs_fp32, ...): the headline metric minus that FP32 model's
  (negative: this precision loses).
- model_size_mb: the model file the engine runs. fused_ops.*: fused operators in it.
- infer_peak_rss_mb / job_peak_rss_mb: resident memory while the model ran / over the whole job.
- n_samples, n_truncated: eval texts, and those cut at max_seq_length.
- Sweep parent runs: jobs, jobs_failed, jobs_skipped, jobs_killed, best_<headline> (best_accuracy, ...),
  best_latency_ms, and the winner's headline metric, latency and e2e (winner_*): the rule that picks
  it is in its description and selection.md.
- Predict runs: rows, input_lines, skipped_lines, parts, wall_s, lines_per_s, peak_rss_mb."""
# The runs table as every link opens it: a view stored in the experiment, every job with its metrics,
# best accuracy first. Sorted by start time, MLflow 3.17 folds each sweep's jobs under its parent
# run, where the link shows one row of dashes until a click unfolds it (checked in a browser).
VIEW_KEY = "ernie"
RUNS_VIEW = {
    "selectedColumns": [
        "tags.`sweep`",
        "attributes.`Dataset`",
        "attributes.`Models`",
        *(
            f"metrics.`{name}`"
            for name in (
                "accuracy",
                "micro_f1",
                "macro_f1",
                "latency_ms",
                "e2e_ms",
                "agreement_vs_fp32",
                "model_size_mb",
            )
        ),
        *(
            f"params.`{name}`"
            for name in ("task.name", "precision.name", "engine.name", "batch_size", "max_seq_length")
        ),
    ],
    "orderByKey": "metrics.`accuracy`",
    "orderByAsc": False,
    "searchFilter": "",
}
# The experiment opens on the runs table ("Model training") once MLflow honours mlflow.experimentKind
# (mlflow issue #24498); until then every link carries ?workflowType=machine_learning.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    NOTE_TAG: GLOSSARY,
    f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(RUNS_VIEW),
}


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


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


class CredentialsRefused(TrackingError):
    """A tracking server with accounts refused the request: no or wrong credentials (401), or a user
    without permission for it (403)."""


_CREDENTIALS_HELP = "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"


def _refusal(tracking_uri: str, exc: Exception) -> int | None:
    """401 or 403 where a tracking server refused the request; MLflow's REST calls raise an
    MlflowException that knows its status, its artifact uploads a requests.HTTPError."""
    if not is_server(tracking_uri):
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


def _store_lock(tracking_uri: str, timeout: float = -1) -> AbstractContextManager:
    """Serialises writes to a SQLite store from parallel jobs (a lock file beside the database);
    a tracking server serialises them itself. `timeout` in seconds (-1: wait as long as it takes)."""
    database = sqlite_database(tracking_uri)
    return FileLock(f"{database}.lock", timeout=timeout) if database is not None else nullcontext()


def _artifact_location(cfg: MlflowConfig) -> str | None:
    """Artifacts beside a SQLite database (MLflow's default is ./mlruns under whatever the cwd is);
    a tracking server decides for itself (`--artifacts-destination`)."""
    database = sqlite_database(cfg.tracking_uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts" / cfg.experiment_name).resolve().as_uri()


class Store:
    """The project's experiment in one tracking store. `quick`: every call ends within seconds,
    for the clean-up after an interrupt (a second Ctrl-C must not find a run left RUNNING)."""

    def __init__(self, cfg: MlflowConfig, *, quick: bool = False) -> None:
        from mlflow import MlflowClient

        logging.getLogger("alembic").setLevel(logging.WARNING)
        # Its database errors reach us as MlflowException, which `writing` says in one line; its own
        # report of them is a traceback.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        self.uri = cfg.tracking_uri
        self.cfg = cfg
        database = sqlite_database(cfg.tracking_uri)
        self.is_sqlite = database is not None
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        if quick:
            os.environ.update(_QUICK_HTTP)  # the process ends after its clean-up
        if is_server(cfg.tracking_uri):
            _check_server(cfg.tracking_uri)
        self.lock = _store_lock(cfg.tracking_uri, _QUICK_LOCK_SECONDS if quick else -1)
        with self.writing(f"open experiment {cfg.experiment_name!r}"):
            self.client = MlflowClient(cfg.tracking_uri)
            self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.cfg.experiment_name)
        if experiment is not None:
            for key, value in EXPERIMENT_TAGS.items():
                if experiment.tags.get(key) != value:
                    self.client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        try:
            return self.client.create_experiment(
                self.cfg.experiment_name, artifact_location=_artifact_location(self.cfg), tags=EXPERIMENT_TAGS
            )
        except Exception:  # another job on another machine created it first
            experiment = self.client.get_experiment_by_name(self.cfg.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        # A signal raised inside a SQLite commit leaves its connection holding the database's lock,
        # and the clean-up after the interrupt then finds the database locked: a SQLite write ends
        # first (within its busy timeout). An HTTP request may be cut short: the server is whole.
        ends_first = interrupts.deferred() if self.is_sqlite else nullcontext()
        with self.lock, store_errors(self.uri, what), ends_first:
            yield

    def find_run(self, key: str, value: str) -> Any | None:
        """The newest run of the experiment whose tag `key` is `value` (an mlflow Run), or None."""
        quote = "'" if "'" not in value else '"'
        with self.writing(f"search runs tagged {key}"):
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.{key} = {quote}{value}{quote}",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
        return runs[0] if runs else None

    def create_run(
        self,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """A new run; `start_time` (ms since the epoch) is when its job started (default: now)."""
        all_tags = {k: str(v)[:_MAX_TAG_CHARS] for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        with self.writing("start a run"):
            run = self.client.create_run(
                self.experiment_id, start_time=start_time, run_name=name, tags=all_tags
            )
            return run.info.run_id

    def running_children(self, parent_run_id: str) -> list[str]:
        """The ids of the child runs of `parent_run_id` that are RUNNING."""
        running = f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
        with self.writing(f"search the running child runs of {parent_run_id}"):
            runs = self.client.search_runs([self.experiment_id], filter_string=running)
        return [run.info.run_id for run in runs]

    def get_run(self, run_id: str) -> Any:
        with self.writing(f"read run {run_id}"):
            return self.client.get_run(run_id)

    def run(self, run_id: str) -> TrackedRun:
        return TrackedRun(self, run_id)

    def runs_page(self) -> str:
        """The link that opens the experiment on its runs table (not MLflow 3's GenAI overview)."""
        return runs_page(self.uri, self.experiment_id)


def runs_page(tracking_uri: str, experiment_id: str) -> str:
    """The runs table with the project's columns (for SQLite: where `make mlflow-ui` serves it)."""
    where = tracking_uri.rstrip("/") if is_server(tracking_uri) else "http://127.0.0.1:5000"
    view = f"workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    return f"{where}/#/experiments/{experiment_id}/runs?{view}"


class TrackedRun:
    """One run of the store, written through its client."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        with self.store.writing(f"{what} of run {self.run_id}"):
            yield

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        with self._writing("log the params"):
            for start in range(0, len(items), _BATCH):
                self.store.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], timestamp: int | None = None, **links: Any) -> None:
        """`timestamp`: when they were measured (ms; default now). `links`: model_id, dataset_name,
        dataset_digest (ties each metric to a model and its data)."""
        from mlflow.entities import Metric

        when = timestamp if timestamp is not None else int(time.time() * 1000)
        items = [Metric(k, float(v), when, 0, **links) for k, v in metrics.items()]
        with self._writing("log the metrics"):
            for start in range(0, len(items), _BATCH):
                self.store.client.log_batch(self.run_id, metrics=items[start : start + _BATCH])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        with self._writing(f"upload {Path(path).name}"):
            self.store.client.log_artifact(self.run_id, str(path), folder)

    def log_input(self, name: str, digest: str, path: str, context: str, rows: int) -> None:
        """A dataset the run read (the runs table's Dataset column): named, hashed, where it lies."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        source = json.dumps({"uri": Path(path).absolute().as_uri()})
        profile = json.dumps({"num_rows": rows})
        dataset = Dataset(name=name, digest=digest, source_type="local", source=source, profile=profile)
        tags = [InputTag("mlflow.data.context", context)]
        with self._writing(f"log the input {name}"):
            try:
                self.store.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])
            except Exception as exc:
                # Parallel jobs of a sweep log the same dataset: the store creates its row once per
                # experiment, and the job that loses that race finds it there on a second try.
                if not any(clash in str(exc) for clash in _ALREADY_CREATED):
                    raise
                self.store.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        """Rows as a table the UI's artifact view shows as a grid."""
        columns = list(rows[0]) if rows else []
        with self._writing(f"log the table {artifact_file}"):
            self.store.client.log_table(
                self.run_id,
                data={c: [row.get(c) for row in rows] for c in columns},
                artifact_file=artifact_file,
            )

    def artifact_names(self) -> set[str]:
        with self._writing("list the artifacts"):
            return {info.path for info in self.store.client.list_artifacts(self.run_id)}

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:_MAX_TAG_CHARS]) for k, v in tags.items()]
        with self._writing("set the tags"):
            for start in range(0, len(items), _BATCH):
                self.store.client.log_batch(self.run_id, tags=items[start : start + _BATCH])

    def reopen(self) -> None:
        with self._writing("mark RUNNING again"):
            self.store.client.update_run(self.run_id, status="RUNNING")

    def end(self, status: str, end_time: int | None = None) -> None:
        """Ends the run with `status` at `end_time` (ms since the epoch; default now)."""
        with self._writing(f"mark {status}"):
            self.store.client.set_terminated(self.run_id, status, end_time=end_time)

    def delete(self) -> None:
        """Moves the run to MLflow's trash (an earlier attempt of a job that ran again)."""
        with self._writing("delete"):
            self.store.client.delete_run(self.run_id)
