"""A real MLflow tracking server as `make mlflow-server` starts it (`python -m pipeline.tracking.server`):
SQLite or PostgreSQL, with accounts or without, on a free 127.0.0.1 port, stopped by its process id."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, running_server

ADMIN = "admin"
ADMIN_PASSWORD = "admin-Secret-2026"
# What a client reads its MLflow credentials from (besides ~/.mlflow/credentials), and what the
# server script reads: a test sets them itself, whatever the environment it runs in.
_OWN_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH",
    "MLFLOW_ADMIN_USERNAME",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_BACKEND_URI",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    folder: Path
    log: Path
    pid: int


def credentials(username: str, password: str) -> dict[str, str]:
    """The environment a client authenticates with (MLflow's own variables)."""
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


def server_environment(
    auth: bool, admin_password: str | None = ADMIN_PASSWORD, backend_uri: str | None = None
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _OWN_VARIABLES}
    env["MLFLOW_AUTH"] = "true" if auth else "false"
    if admin_password is not None:
        env["MLFLOW_ADMIN_PASSWORD"] = admin_password
    if backend_uri is not None:
        env["MLFLOW_BACKEND_URI"] = backend_uri
    return env


def server_command(folder: Path, port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.tracking.server",
        f"--dir={folder}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",  # MLflow's 4 are many for a 2-core test machine
    ]


@contextlib.contextmanager
def tracking_server(
    folder: Path,
    *,
    auth: bool = False,
    admin_password: str | None = ADMIN_PASSWORD,
    backend_uri: str | None = None,
    log_name: str = "server.log",
) -> Iterator[TrackingServer]:
    """The server in `folder` (its data stay there after it stops: a later start serves them again)."""
    if auth:
        pytest.importorskip("flask_wtf", reason="MLflow's accounts need its auth extra: mlflow[auth]")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = folder / log_name
    env = server_environment(auth, admin_password, backend_uri)
    with running_server(server_command(folder, port), f"{uri}/health", log, env=env, seconds=180) as process:
        yield TrackingServer(uri, folder, log, process.pid)
