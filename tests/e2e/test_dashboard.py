"""The dashboard checked in a real browser (project issue 25): a real sweep, `mlflow ui` over its
SQLite store as `make mlflow-ui` serves it, and the pages a user opens, rendered by headless Chromium.

What the pages show is read from the rendered DOM: its text, and the cells of MLflow's tables by
column (`grid_cells`). The tables render only the columns inside the window, hence wide windows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from mlflow import MlflowClient

from pipeline import PROJECT_ROOT
from pipeline.tracking.store import GLOSSARY, RUNS_VIEW, runs_page
from tests.conftest import free_port, running_server, venv_command
from tests.helpers.browser import (
    dump_dom,
    find_chromium,
    grid_cells,
    missing,
    mlflow_models_url,
    mlflow_runs_url,
    page_text,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="needs Chromium: apt-get install -y chromium"),
]

EXPERIMENT = "cli-test"
WIDE = 3200  # every column of the project's view, beside MLflow's Assistant panel (a third of the window)
# What only MLflow 3's GenAI pages show (its overview, sidebar and "Agent versions" title), never the
# classic runs table or Models tab the project links to.
GENAI_ONLY = ("Detect Issues", "Evaluation runs", "Agent versions", "Training runs")
# The sort that lists a sweep's child runs as rows of their own: sorted by start time (the default
# and the project's view) the table folds them under their parent, behind a "+" only a click opens.
BY_ACCURACY = "metrics.`accuracy`"


@dataclass(frozen=True)
class Dashboard:
    base: str  # the UI's address
    experiment_id: str
    tracking_uri: str
    sweep: Path
    parent: Any  # mlflow Run
    children: list[Any]
    model_names: list[str]  # the LoggedModels', as search_logged_models reads them


def js_number(value: float) -> str:
    """A metric as MLflow's UI prints it (JavaScript's shortest form: 0.84, 1, 0.8393939393939394)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def rendered(url: str, expected: list[str], width: int = WIDE) -> str:
    """The page's DOM once it shows `expected`; a second load if the first settled early (a cold server)."""
    dom = dump_dom(url, width=width)
    if missing(dom, expected):
        dom = dump_dom(url, width=width)
    return dom


def not_genai(dom: str) -> list[str]:
    text = page_text(dom)
    return [marker for marker in GENAI_ONLY if marker in text]


@pytest.fixture(scope="module")
def dashboard(
    tiny_model: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """A 2-job sweep of the tiny model (as run_cli and user_overrides run it, once for the module),
    served by `mlflow ui` on a free 127.0.0.1 port."""
    folder = tmp_path_factory.mktemp("dashboard")
    uri = f"sqlite:///{folder}/mlflow.db"
    overrides = [
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri={uri}",
        f"mlflow.experiment_name={EXPERIMENT}",
    ]
    sweep = ["precision=fp32,int8", "infer.predict_data=false", "hydra.sweep.dir=sweep"]
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", *overrides, *sweep],
        cwd=folder,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    model_names = sorted(m.name for m in client.search_logged_models([experiment_id]))
    assert len(model_names) == 2

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [venv_command("mlflow"), "ui", f"--backend-store-uri={uri}"]
    command += ["--host=127.0.0.1", f"--port={port}", "--workers=1"]
    with running_server(command, f"{base}/health", folder / "mlflow-ui.log", seconds=180):
        yield Dashboard(base, experiment_id, uri, folder / "sweep", parents[0], children, model_names)


def view_columns(runs: list[Any]) -> list[str]:
    """The view's columns the UI shows for these runs: it leaves out a metric that none of them logged
    (micro_f1 in a multi-class experiment)."""
    logged = {f"metrics.`{name}`" for run in runs for name in run.data.metrics}
    columns = cast(list[str], RUNS_VIEW["selectedColumns"])
    return [c for c in columns if not c.startswith("metrics.") or c in logged]


def test_the_project_link_opens_the_runs_table_every_job_with_its_metrics(dashboard: Dashboard) -> None:
    # The link every job folder records (tracking.json), on the UI's own address.
    recorded = json.loads((dashboard.sweep / "0" / "tracking.json").read_text(encoding="utf-8"))["runs_page"]
    assert recorded == runs_page(dashboard.tracking_uri, dashboard.experiment_id)
    url = runs_page(dashboard.base, dashboard.experiment_id)
    assert url.split("#", 1)[1] == recorded.split("#", 1)[1]
    parent = dashboard.parent.info.run_name
    assert parent == "sweep sweep"

    children = [c.info.run_name for c in dashboard.children]
    dom = rendered(url, [parent, *children, "You're viewing a shared view"])
    text = page_text(dom)
    assert missing(dom, [parent, *children, "You're viewing a shared view", GLOSSARY.splitlines()[0]]) == []
    assert text.startswith("Runs - Experiment"), text[:200]  # the page's title: the runs table
    assert not_genai(dom) == []
    cells = grid_cells(dom)
    assert [c for c in view_columns(dashboard.children) if c not in cells] == [], sorted(
        cells
    )  # the view's columns
    assert any(parent in name for name in cells["attributes.`Run Name`"])
    # Every job on its own row with its metrics (the sweep's row has none: "-"), best accuracy first.
    for metric in ("accuracy", "latency_ms"):
        expected = [js_number(c.data.metrics[metric]) for c in dashboard.children]
        assert sorted(cells[f"metrics.`{metric}`"]) == sorted([*expected, "-"]), metric
    best = max(dashboard.children, key=lambda c: c.data.metrics["accuracy"])
    assert cells["metrics.`accuracy`"][0] == js_number(best.data.metrics["accuracy"])
    assert sorted(cells["params.`precision.name`"]) == ["-", "fp32", "int8"]
    assert sorted(cells["tags.`sweep`"]) == ["-", "sweep", "sweep"]


def test_sorted_by_a_metric_the_table_lists_every_job_its_dataset_and_model(dashboard: Dashboard) -> None:
    url = mlflow_runs_url(dashboard.base, dashboard.experiment_id, order_by=BY_ACCURACY)
    names = [dashboard.parent.info.run_name, *(c.info.run_name for c in dashboard.children)]
    dom = rendered(url, [*names, "demo/dev", *dashboard.model_names])
    assert missing(dom, [*names, "demo/dev", *dashboard.model_names, "Sort: accuracy"]) == []
    assert not_genai(dom) == []
    cells = grid_cells(dom)
    assert sorted(cells["attributes.`Models`"]) == sorted([*dashboard.model_names, "-"])  # "-": the parent
    datasets = cells["attributes.`Dataset`"]
    assert sum(d.startswith("demo/dev (") for d in datasets) == 2, datasets


def test_the_models_tab_lists_each_job_model_with_its_metrics(dashboard: Dashboard) -> None:
    url = mlflow_models_url(dashboard.base, dashboard.experiment_id)
    children = [c.info.run_name for c in dashboard.children]
    dom = rendered(url, dashboard.model_names)
    assert missing(dom, [*dashboard.model_names, *children, "demo/dev", "Ready"]) == []
    assert page_text(dom).startswith("Logged Models - Experiment")
    assert not_genai(dom) == []
    cells = grid_cells(dom)
    assert sorted(cells["source_run_id"]) == sorted(children)
    accuracy = next(v for k, v in cells.items() if k.startswith("metrics.") and '"accuracy"' in k)
    assert sorted(accuracy) == sorted(js_number(c.data.metrics["accuracy"]) for c in dashboard.children)
    assert all(any(name.endswith(model) for name in cells["name"]) for model in dashboard.model_names)
