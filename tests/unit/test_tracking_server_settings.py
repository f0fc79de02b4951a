"""The team tracking server's settings, in-process: the PostgreSQL dialect, the auth config as
MLflow reads it back, and refused credentials as one error that names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from pipeline.tracking.server import ServerError, auth_config_text, backend_uri, experiment_id, server_url


def test_a_plain_postgresql_uri_gets_the_psycopg_3_dialect(tmp_path: Path) -> None:
    assert (
        backend_uri("postgresql://u:p%25w@db:5432/mlflow", tmp_path)
        == "postgresql+psycopg://u:p%25w@db:5432/mlflow"
    )
    assert backend_uri("postgres://u@db/mlflow", tmp_path) == "postgresql+psycopg://u@db/mlflow"
    assert backend_uri("postgresql+psycopg://u@db/m", tmp_path) == "postgresql+psycopg://u@db/m"
    assert backend_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert server_url("127.0.0.1", 5000) == "http://127.0.0.1:5000"


def test_an_unreadable_tracking_database_is_one_error_with_the_drivers_reason(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"not a database, " * 64)
    with pytest.raises(ServerError, match=r"cannot read it \(file is not a database\)"):
        experiment_id(f"sqlite:///{database}", "ernie")


def test_the_auth_config_is_read_back_by_mlflow_as_written(tmp_path: Path) -> None:
    import configparser

    database = "postgresql+psycopg://mlflow:pg-secret%25word@127.0.0.1:5432/mlflow"
    text = auth_config_text(database, "root-admin", "READ")
    parser = configparser.ConfigParser()  # MLflow reads it so, interpolation included
    parser.read_string(text)
    assert parser["mlflow"]["database_uri"] == database
    assert parser["mlflow"]["admin_username"] == "root-admin"
    assert "admin_password" not in parser["mlflow"]


def refusal(what: str, exc: Exception) -> str:
    from pipeline.tracking.store import CredentialsRefused, store_errors

    with pytest.raises(CredentialsRefused) as refused, store_errors("http://mlflow.example:5000", what):
        raise exc
    return str(refused.value)


def test_refused_credentials_are_one_tracking_error_that_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.mlflow/credentials
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    unauthenticated = MlflowException("401 != 200", error_code=UNAUTHENTICATED)
    assert refusal("start a run", unauthenticated) == (
        "MLflow tracking server http://mlflow.example:5000: it asks for credentials and none are set (401); "
        "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    denied = MlflowException("403 != 200", error_code=PERMISSION_DENIED)
    assert "user 'bob' may not start a run (403 permission denied)" in refusal("start a run", denied)
    response = requests.Response()
    response.status_code = 401  # artifact uploads raise requests' own error
    uploaded = refusal("upload metrics.json", requests.HTTPError("401 Client Error", response=response))
    assert "the credentials of user 'bob' were refused (401)" in uploaded
