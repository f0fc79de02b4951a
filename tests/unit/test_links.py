"""Every link the project prints opens the runs table of its experiment, with its columns."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.cli import link
from pipeline.tracking.store import EXPERIMENT_TAGS, RUNS_VIEW, VIEW_KEY, Store, runs_page


def test_the_links_go_to_the_runs_table_with_the_project_view(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert (
        link(uri, "ernie-onnx", "http://127.0.0.1:5000")
        == "http://127.0.0.1:5000 (no runs of ernie-onnx yet)"
    )
    store = Store(MlflowConfig(tracking_uri=uri, experiment_name="ernie-onnx"))
    page = f"http://127.0.0.1:5000/#/experiments/{store.experiment_id}/runs?workflowType=machine_learning"
    assert link(uri, "ernie-onnx", "http://127.0.0.1:5000") == f"{page}&viewStateShareKey={VIEW_KEY}"
    assert store.runs_page() == runs_page("http://127.0.0.1:5000", store.experiment_id)
    assert runs_page("http://mlflow.team:5000/", "7").startswith(
        "http://mlflow.team:5000/#/experiments/7/runs?"
    )
    experiment = store.client.get_experiment(store.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert json.loads(experiment.tags[f"mlflow.sharedViewState.{VIEW_KEY}"]) == RUNS_VIEW
    assert experiment.tags["mlflow.note.content"] == EXPERIMENT_TAGS["mlflow.note.content"]
