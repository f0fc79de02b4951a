"""The team tracking server (`make mlflow-server`, pipeline/tracking/server.py): accounts, PostgreSQL,
and what jobs and sweeps do when the server refuses their credentials."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests

from pipeline import PROJECT_ROOT
from pipeline.tracking.store import runs_page
from tests.conftest import RunCli, free_port, runs_by_kind
from tests.helpers.mlflow_server import (
    ADMIN,
    ADMIN_PASSWORD,
    TrackingServer,
    credentials,
    server_command,
    server_environment,
    tracking_server,
)
from tests.helpers.postgres import running_postgres

USER, USER_PASSWORD = "alice", "alice-Secret-2026"


def grant_experiment(uri: str, username: str, password: str, experiment: str) -> str:
    """What the README shows an admin doing (run with the admin's MLFLOW_TRACKING_* set)."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    auth = get_app_client("basic-auth", tracking_uri=uri)
    auth.create_user(username=username, password=password)
    found = MlflowClient(uri).get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else MlflowClient(uri).create_experiment(experiment)
    auth.grant_user_permission(username, "experiment", experiment_id, "EDIT")
    return experiment_id


def job_overrides(user_overrides: list[str], uri: str, experiment: str) -> list[str]:
    kept = [
        o for o in user_overrides if not o.startswith(("mlflow.tracking_uri=", "mlflow.experiment_name="))
    ]
    return [*kept, f"mlflow.tracking_uri={uri}", f"mlflow.experiment_name={experiment}"]


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_the_server_refuses_to_start_without_an_admin_password(tmp_path: Path) -> None:
    folder = tmp_path / "server"
    result = subprocess.run(
        server_command(folder, free_port()),
        env=server_environment(auth=True, admin_password=None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: MLFLOW_AUTH=true needs MLFLOW_ADMIN_PASSWORD")
    assert not folder.exists()  # nothing written, nothing started


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A server with accounts on SQLite, and alice, who may write to the experiment `team`."""
    with tracking_server(tmp_path_factory.mktemp("auth-server"), auth=True) as server:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in credentials(ADMIN, ADMIN_PASSWORD).items():
                patch.setenv(key, value)
            grant_experiment(server.uri, USER, USER_PASSWORD, "team")
        yield server


@pytest.mark.slow
def test_the_api_needs_credentials_and_the_folder_keeps_them_private(auth_server: TrackingServer) -> None:
    api = f"{auth_server.uri}/api/2.0/mlflow/experiments/get-by-name"
    assert requests.get(api, params={"experiment_name": "team"}, timeout=30).status_code == 401
    assert (
        requests.get(api, params={"experiment_name": "team"}, auth=(USER, "wrong"), timeout=30).status_code
        == 401
    )
    assert requests.get(api, params={"experiment_name": "team"}, auth=(USER, USER_PASSWORD), timeout=30).ok
    assert requests.get(f"{auth_server.uri}/health", timeout=30).ok  # what jobs probe first, open
    for name in ("basic_auth.ini", "basic_auth.db", "flask_secret_key"):
        assert stat.S_IMODE((auth_server.folder / name).stat().st_mode) == 0o600, name
    assert ADMIN_PASSWORD not in (auth_server.folder / "basic_auth.ini").read_text()


@pytest.mark.slow
def test_a_granted_user_logs_a_finished_run(
    auth_server: TrackingServer,
    run_cli: RunCli,
    user_overrides: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = run_cli(
        *job_overrides(user_overrides, auth_server.uri, "team"),
        "hydra.run.dir=job",
        env=credentials(USER, USER_PASSWORD),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import mlflow

    for key, value in credentials(ADMIN, ADMIN_PASSWORD).items():
        monkeypatch.setenv(key, value)
    client = mlflow.MlflowClient(auth_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("team").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["job_dir"] == str(tmp_path / "job")
    assert run.data.metrics["accuracy"] > 0.5
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        # A cluster of the sweep's own, never one running on this machine.
        [
            "hydra/launcher=ray",
            "hydra.launcher.ray.init.address=local",
            "hydra.launcher.ray.init.num_cpus=2",
            "device.num_threads=1",
        ],
    ],
    ids=["joblib", "ray"],
)
def test_parallel_sweeps_and_registration_log_in_with_the_users_credentials(
    launcher: list[str],
    auth_server: TrackingServer,
    run_cli: RunCli,
    user_overrides: list[str],
    tmp_path: Path,
) -> None:
    """The workers (joblib's processes, a Ray cluster the launcher starts) inherit the credentials;
    the winner is registered, and the registered model loads with them (what `make serve` does)."""
    if launcher[0].endswith("ray"):
        pytest.importorskip("ray")
    experiment = f"team-{launcher[0].rsplit('=', 1)[1]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in credentials(ADMIN, ADMIN_PASSWORD).items():
            patch.setenv(key, value)
        grant_experiment(auth_server.uri, f"carol-{experiment}", USER_PASSWORD, experiment)
    user = credentials(f"carol-{experiment}", USER_PASSWORD)
    result = run_cli(
        "-m",
        *job_overrides(user_overrides, auth_server.uri, experiment),
        *launcher,
        "precision=fp32,int8",
        "infer.predict_data=false",
        f"mlflow.registered_model_name={experiment}-model",
        "hydra.sweep.dir=sweep",
        env=user,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"registered the winner as models:/{experiment}-model@champion" in result.stdout
    with pytest.MonkeyPatch.context() as patch:
        for key, value in user.items():
            patch.setenv(key, value)
        parents, children = runs_by_kind(auth_server.uri, experiment)
        assert len(parents) == 1 and len(children) == 2
        assert all(c.info.status == "FINISHED" for c in children)
        mlflow.set_tracking_uri(auth_server.uri)
        served = mlflow.pyfunc.load_model(f"models:/{experiment}-model@champion")
        assert len(served.predict(["很好", "太差了"])) == 2


@pytest.mark.slow
def test_wrong_credentials_are_one_error_the_job_keeps_its_files_and_resync_logs_them(
    auth_server: TrackingServer, run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    result = run_cli(
        *job_overrides(user_overrides, auth_server.uri, "team"),
        "hydra.run.dir=job",
        env=credentials(USER, "not-alices-password"),
        timeout=300,
    )
    assert result.returncode == 2
    job = tmp_path / "job"
    assert error_lines(result) == [
        f"error: MLflow tracking server {auth_server.uri}: the credentials of user 'alice' were refused "
        "(401); set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials); "
        f"the job's files are in {job}"
    ]
    assert "Traceback" not in result.stderr
    assert json.loads((job / "metrics.json").read_text())["accuracy"] > 0.5
    assert (job / "predictions.jsonl").read_text().count("\n") == 100
    assert "(401)" in json.loads((job / "tracking.json").read_text())["error"]
    # The right credentials later: resync logs the kept folder.
    resynced = subprocess.run(
        [sys.executable, "-m", "pipeline.tracking", "resync", str(job)],
        env={**os.environ, **credentials(USER, USER_PASSWORD)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resynced.returncode == 0, resynced.stderr[-3000:]
    assert "run_id" in json.loads((job / "tracking.json").read_text())


@pytest.mark.slow
def test_a_user_without_permission_is_told_so(
    auth_server: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """403, not 401: bob's password is right, but he was granted nothing on `team` (default: READ)."""
    from mlflow.server import get_app_client

    from pipeline.options.tracking import MlflowConfig
    from pipeline.tracking.store import CredentialsRefused, Store

    for key, value in credentials(ADMIN, ADMIN_PASSWORD).items():
        monkeypatch.setenv(key, value)
    get_app_client("basic-auth", tracking_uri=auth_server.uri).create_user("bob", "bob-Secret-20266")
    for key, value in credentials("bob", "bob-Secret-20266").items():
        monkeypatch.setenv(key, value)
    config = MlflowConfig(tracking_uri=auth_server.uri, experiment_name="team")
    with pytest.raises(CredentialsRefused, match=r"user 'bob' may not .+ \(403 permission denied\)"):
        Store(config).create_run("denied", {})


@pytest.mark.slow
def test_the_admin_password_is_the_one_given_at_each_start(tmp_path: Path) -> None:
    """MLflow itself keeps the first start's password; the server script sets the one given now."""
    folder = tmp_path / "server"
    api = "/api/2.0/mlflow/experiments/get-by-name"
    with tracking_server(folder, auth=True, log_name="first.log") as server:
        assert requests.get(
            server.uri + api, params={"experiment_name": "Default"}, auth=(ADMIN, ADMIN_PASSWORD), timeout=30
        ).ok
        created = requests.post(
            f"{server.uri}/api/2.0/mlflow/experiments/create",
            json={"name": "ernie-onnx"},
            auth=(ADMIN, ADMIN_PASSWORD),
            timeout=30,
        )
        experiment_id = created.json()["experiment_id"]
        assert f"MLflow tracking server at {server.uri}\n" in server.log.read_text()
    rotated = "rotated-Secret-2027"
    with tracking_server(folder, auth=True, admin_password=rotated, log_name="second.log") as server:
        assert requests.get(
            server.uri + api, params={"experiment_name": "Default"}, auth=(ADMIN, rotated), timeout=30
        ).ok
        old = requests.get(
            server.uri + api, params={"experiment_name": "Default"}, auth=(ADMIN, ADMIN_PASSWORD), timeout=30
        )
        assert old.status_code == 401
        # The experiment exists now: the server names its runs page.
        page = runs_page(server.uri, experiment_id)
        assert page.startswith(f"{server.uri}/#/experiments/{experiment_id}/runs?workflowType=")
        assert f"MLflow tracking server at {page}\n" in server.log.read_text()
        assert "(admin 'admin': password set)" in server.log.read_text()


@pytest.mark.slow
def test_a_sweep_on_postgresql_with_accounts(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_postgres() as postgres:
        database = postgres.create_database("mlflow")
        with tracking_server(tmp_path / "server", auth=True, backend_uri=database) as server:
            for key, value in credentials(ADMIN, ADMIN_PASSWORD).items():
                monkeypatch.setenv(key, value)
            grant_experiment(server.uri, "carol", "carol-Secret-2026", "pg-sweep")
            result = run_cli(
                "-m",
                *job_overrides(user_overrides, server.uri, "pg-sweep"),
                "batch_size=8,16",
                "hydra.sweep.dir=sweep",
                env=credentials("carol", "carol-Secret-2026"),
                timeout=600,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            assert not error_lines(result), result.stderr[-3000:]
            parents, children = runs_by_kind(server.uri, "pg-sweep")
            assert len(parents) == 1 and len(children) == 2
            assert {run.info.status for run in parents + children} == {"FINISHED"}
            assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}
        # Runs and accounts both live in PostgreSQL; the server folder holds neither.
        with postgres.connect("mlflow") as connection:
            assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
            users = {row[0] for row in connection.execute("SELECT username FROM users")}
        assert users == {ADMIN, "carol"}
        assert not (tmp_path / "server" / "mlflow.db").exists()
        assert not (tmp_path / "server" / "basic_auth.db").exists()


def test_the_makefile_target_runs_the_server_script_on_127_0_0_1() -> None:
    root = PROJECT_ROOT
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_HOST", "MLFLOW_PORT")}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "mlflow-server"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "-m pipeline.tracking.server" in result.stdout and "--host 127.0.0.1" in result.stdout
