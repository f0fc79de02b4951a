"""Where and how runs are tracked: the `mlflow` options and the tracking database's location."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import PROJECT_ROOT

SQLITE_PREFIX = "sqlite:///"


@dataclass
class MlflowConfig:
    enabled: bool = True
    # A SQLite file for one machine (artifacts beside it, in mlartifacts/), or http://HOST:PORT.
    tracking_uri: str = "sqlite:///${project_root:}/mlflow.db"
    experiment_name: str = "ernie-onnx"
    # Log the job's model as an MLflow pyfunc model and register it under this name (a single run),
    # or, in a sweep, register the winner of `select` and point the alias `champion` at it.
    registered_model_name: str | None = None


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a SQLite tracking URI; None for a tracking server."""
    return Path(tracking_uri.removeprefix(SQLITE_PREFIX)) if tracking_uri.startswith(SQLITE_PREFIX) else None


def beside_tracking_database(tracking_uri: str, file_name: str) -> str:
    """A SQLite URI for `file_name` beside a SQLite tracking database (for a server: in the project root)."""
    database = sqlite_database(tracking_uri)
    return f"{SQLITE_PREFIX}{(database.parent if database else PROJECT_ROOT) / file_name}"
