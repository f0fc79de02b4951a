"""From a run to a served model: MLflow's registry, pyfunc loading, `mlflow models serve`, and a
sweep that picks and registers its champion."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import mlflow
import pytest
import requests

from tests.conftest import RunCli, free_port, running_server, runs_by_kind, venv_command

pytestmark = pytest.mark.slow


def job_predictions(job: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (job / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture
def registered(run_cli: RunCli, user_overrides: list[str], tmp_path: Path) -> tuple[str, Path]:
    """A job run with mlflow.registered_model_name: (tracking URI, job folder)."""
    result = run_cli(*user_overrides, "mlflow.registered_model_name=tiny-classifier", "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered tiny-classifier version 1: models:/tiny-classifier/1" in result.stdout
    return f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "job"


def test_registered_model_loads_and_predicts_like_the_job(
    registered: tuple[str, Path], tmp_path: Path
) -> None:
    uri, job = registered
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    texts, labels = job_predictions(job)
    predicted = model.predict(texts)
    assert predicted["label"].tolist() == labels
    assert set(predicted.columns) == {"label", "confidence", "prob_negative", "prob_positive"}
    assert [spec.type.name for spec in model.metadata.get_input_schema().inputs] == ["string"]
    requirements = Path(
        mlflow.artifacts.download_artifacts(
            "models:/tiny-classifier/1/requirements.txt", dst_path=str(tmp_path / "r")
        )
    )
    pinned = requirements.read_text()
    assert "onnxruntime==" in pinned and "tokenizers==" in pinned and "paddle" not in pinned


def test_mlflow_models_serve_answers_over_http(registered: tuple[str, Path], tmp_path: Path) -> None:
    uri, job = registered
    texts, labels = job_predictions(job)
    port = free_port()
    command = [venv_command("mlflow"), "models", "serve", "-m", "models:/tiny-classifier/1", "--env-manager"]
    command += ["local", "--host", "127.0.0.1", "--port", str(port)]
    # It starts uvicorn by name: the environment's bin folder must be on PATH (make serve does this).
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with running_server(command, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env, seconds=180):
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": texts}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == labels


def test_sweep_selects_its_winner_and_registers_the_champion(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    result = run_cli(
        "-m",
        *user_overrides,
        "precision=fp32,int8",
        "batch_size=8,32",
        "infer.predict_data=false",
        "mlflow.registered_model_name=tiny-sweep",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    summary = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file()):
        summary[job.name] = json.loads((job / "metrics.json").read_text())
    eligible = {k: m for k, m in summary.items() if m["accuracy_delta_vs_fp32"] >= -0.005}
    expected = min(eligible, key=lambda k: eligible[k]["latency_ms"])
    selection = (sweep / "selection.md").read_text()
    assert f"Winner: job {expected} (" in selection and "lowest latency_ms" in selection

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    (parent,), children = runs_by_kind(uri, "cli-test")
    assert len(children) == 4  # one child run per job
    assert parent.data.tags["winner_job"] == expected
    champion = client.get_model_version_by_alias("tiny-sweep", "champion")
    assert champion.run_id == parent.data.tags["winner_run_id"]
    winner_run = client.get_run(champion.run_id)
    assert winner_run.data.tags["job_dir"] == str(sweep / expected)
    assert len(client.search_model_versions("name='tiny-sweep'")) == 1  # only the winner is registered
    mlflow.set_tracking_uri(uri)
    assert len(mlflow.pyfunc.load_model("models:/tiny-sweep@champion").predict(["很好", "太差了"])) == 2
