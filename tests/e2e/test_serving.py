"""From a run to a served model: MLflow's registry, pyfunc loading, `mlflow models serve` (what it
answers and what it refuses), and a sweep that picks and registers its champion."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.types.schema import AnyType

from pipeline import PROJECT_ROOT
from pipeline.core.errors import InputError
from pipeline.options.tasks import TASKS
from tests.conftest import RunCli, free_port, running_server, runs_by_kind, venv_command
from tests.e2e.task_models import random_model

NOT_TEXT = "expected text (a JSON string) for every input"


def job_predictions(job: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (job / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def registered(
    tiny_model: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A job run with mlflow.registered_model_name: (tracking URI, job folder). Once per module, as
    run_cli and user_overrides would run it, so that one server answers every request test."""
    folder = tmp_path_factory.mktemp("registered")
    uri = f"sqlite:///{folder}/mlflow.db"
    overrides = [
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri={uri}",
        "mlflow.experiment_name=cli-test",
        "mlflow.registered_model_name=tiny-classifier",
        "hydra.run.dir=job",
    ]
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *overrides],
        cwd=folder,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered tiny-classifier version 1: models:/tiny-classifier/1" in result.stdout
    return uri, folder / "job"


@pytest.fixture(scope="module")
def served(registered: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow models serve` of the registered model, as `make serve` starts it; yields its base URL."""
    uri, _ = registered
    port = free_port()
    command = [venv_command("mlflow"), "models", "serve", "-m", "models:/tiny-classifier/1", "--env-manager"]
    command += ["local", "--host", "127.0.0.1", "--port", str(port)]
    # It starts uvicorn by name: the environment's bin folder must be on PATH (make serve does this).
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server(command, f"http://127.0.0.1:{port}/ping", log, env, seconds=180):
        yield f"http://127.0.0.1:{port}"


def frame(rows: list[list[Any]]) -> dict[str, Any]:
    """A one-column `dataframe_split` body."""
    return {"dataframe_split": {"columns": ["text"], "data": rows}}


def invoke(url: str, body: Any) -> requests.Response:
    """POST /invocations with `body` as UTF-8 JSON (a megabyte of Chinese stays a megabyte)."""
    data = json.dumps(body, ensure_ascii=False).encode()
    return requests.post(
        f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}, timeout=120
    )


def test_served_inputs_name_each_refused_input_by_position_and_type() -> None:
    task = TASKS.create("multi_class")
    assert task.served_inputs(["a", ""]).texts == ["a", ""]
    with pytest.raises(InputError) as refused:
        task.served_inputs([b"a", True, [1], {"k": 1}, None, *range(10)])
    assert str(refused.value) == (
        "inputs[0] is bytes, inputs[1] is a boolean, inputs[2] is an array, inputs[3] is an object, "
        "inputs[4] is null, "
        + ", ".join(f"inputs[{i}] is a number" for i in range(5, 10))
        + f" and 5 more: {NOT_TEXT}"
    )


@pytest.mark.slow
def test_registered_model_loads_and_predicts_like_the_job(
    registered: tuple[str, Path], tmp_path: Path
) -> None:
    uri, job = registered
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-classifier/1")
    texts, labels = job_predictions(job)
    predicted = model.predict(texts)
    assert [p["label"] for p in predicted] == labels
    assert set(predicted[0]) == {"label", "confidence", "prob_negative", "prob_positive"}
    assert model.predict([]) == []
    with pytest.raises(MlflowException, match=re.escape(f"inputs[1] is null: {NOT_TEXT}")):
        model.predict([texts[0], None])
    # A list by its type hints: MLflow passes inputs through as sent, nothing is coerced to text.
    assert [type(spec.type) for spec in model.metadata.get_input_schema().inputs] == [AnyType]
    requirements = Path(
        mlflow.artifacts.download_artifacts(
            "models:/tiny-classifier/1/requirements.txt", dst_path=str(tmp_path / "r")
        )
    )
    pinned = requirements.read_text()
    assert "onnxruntime==" in pinned and "tokenizers==" in pinned and "paddle" not in pinned


@pytest.mark.slow
def test_mlflow_models_serve_answers_over_http(registered: tuple[str, Path], served: str) -> None:
    texts, labels = job_predictions(registered[1])
    response = invoke(served, {"inputs": texts})
    assert response.status_code == 200, response.text[:500]
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == labels
    assert set(predictions[0]) == {"label", "confidence", "prob_negative", "prob_positive"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ({"inputs": [123, None]}, "inputs[0] is a number, inputs[1] is null"),
        (
            {"inputs": ["好", 1.5, True, ["好"], {"text": "好"}]},
            "inputs[1] is a number, inputs[2] is a boolean, inputs[3] is an array, inputs[4] is an object",
        ),
    ],
)
def test_inputs_that_are_not_text_are_refused_by_position_and_type(
    served: str, body: dict, refusal: str
) -> None:
    response = invoke(served, body)
    assert response.status_code == 400, response.text[:500]
    error = response.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert refusal in error["message"] and NOT_TEXT in error["message"]


@pytest.mark.slow
def test_no_texts_answer_no_predictions(served: str) -> None:
    response = invoke(served, {"inputs": []})
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"predictions": []}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("not json", "application/json", 400),
        ('["a list", "of texts"]', "application/json", 400),
        ("{}", "application/json", 400),
        ('{"texts": ["好"]}', "application/json", 400),
        ('{"inputs": "one text, not a list"}', "application/json", 400),
        ('{"dataframe_records": [{"text": "好"}]}', "application/json", 400),
        ('{"inputs": ["好"]}', "text/plain", 415),
    ],
)
def test_malformed_bodies_are_refused(served: str, data: str, content_type: str, status: int) -> None:
    response = requests.post(
        f"{served}/invocations", data=data.encode(), headers={"Content-Type": content_type}, timeout=60
    )
    assert response.status_code == status, response.text[:500]


@pytest.mark.slow
def test_a_huge_text_is_truncated_like_any_text(served: str) -> None:
    huge = "这个产品很好用，物流也很快。" * 30_000  # 1.2 MB of UTF-8
    head = huge[:2000]  # more tokens than any max_seq_length keeps
    response = invoke(served, {"inputs": [huge, head]})
    assert response.status_code == 200, response.text[:500]
    whole, truncated = response.json()["predictions"]
    assert whole["label"] == truncated["label"]
    assert whole["confidence"] == pytest.approx(truncated["confidence"], rel=1e-5)


@pytest.mark.slow
def test_concurrent_clients_get_the_sequential_answers(registered: tuple[str, Path], served: str) -> None:
    texts, _ = job_predictions(registered[1])
    batches = [[texts[(i + k) % len(texts)] for k in range(1 + i % 5)] for i in range(64)]

    def answers(batch: list[str]) -> list[dict[str, Any]]:
        response = invoke(served, {"inputs": batch})
        assert response.status_code == 200, response.text[:500]
        return response.json()["predictions"]

    sequential = [answers(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=16) as clients:
        concurrent = list(clients.map(answers, batches))
    assert [[p["label"] for p in a] for a in concurrent] == [[p["label"] for p in a] for a in sequential]
    for together, alone in zip(concurrent, sequential, strict=True):
        assert [p["confidence"] for p in together] == pytest.approx(
            [p["confidence"] for p in alone], rel=1e-6
        )


@pytest.mark.slow
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


# -- each task served: a pair model and a multi-label model ------------------------------------------

TASK_MODELS = ("pair", "multi_label")
PAIR_REFUSAL = "expected a pair of texts ([text_a, text_b], two JSON strings) for every input"
HUGE = "这个产品很好用物流也很快" * 87_000  # 1 MB of UTF-8, one token a character


def task_dataset(folder: Path, task: str, texts: list[str]) -> Path:
    """A small dev split and data.txt of the demo's texts in `task`'s format (labels by position)."""
    folder.mkdir()
    if task == "pair":
        (folder / "label.txt").write_text("different\nsame\n")
        rows = [f"{a}\t{b}\t{('different', 'same')[i % 2]}" for i, (a, b) in enumerate(pairwise(texts))]
        data = [f"{a}\t{b}" for a, b in pairwise(texts)][::2]
    else:
        (folder / "label.txt").write_text("物流\n价格\n质量\n")
        rows = [f"{text}\t{('物流', '价格', '物流,质量')[i % 3]}" for i, text in enumerate(texts)]
        data = texts
    (folder / "dev.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "data.txt").write_text("\n".join(data) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def task_texts(demo_data_dir: Path) -> list[str]:
    lines = (demo_data_dir / "dev.txt").read_text(encoding="utf-8").splitlines()[:200]
    return [line.split("\t")[0] for line in lines]


@pytest.fixture(scope="module")
def task_servers(
    task_texts: list[str], cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A pair model and a multi-label model (random weights: only shapes and agreement matter here),
    each run with mlflow.registered_model_name and served by `mlflow models serve`: {task: URL}."""
    folder = tmp_path_factory.mktemp("task-models")
    uri = f"sqlite:///{folder}/mlflow.db"
    for task in TASK_MODELS:
        data = task_dataset(folder / f"data-{task}", task, task_texts)
        result = subprocess.run(
            [
                sys.executable,
                str(PROJECT_ROOT / "run.py"),
                *random_model(task),
                f"dataset.dir={data}",
                f"mlflow.tracking_uri={uri}",
                f"mlflow.registered_model_name=tiny-{task}",
                f"hydra.run.dir={task}",
            ],
            cwd=folder,
            env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    urls = {}
    with contextlib.ExitStack() as servers:
        for task in TASK_MODELS:
            port = free_port()
            command = [venv_command("mlflow"), "models", "serve", "-m", f"models:/tiny-{task}/1"]
            command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
            log = folder / f"serve-{task}.log"
            servers.enter_context(running_server(command, f"http://127.0.0.1:{port}/ping", log, env, 180))
            urls[task] = f"http://127.0.0.1:{port}"
        yield urls


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "inputs", "refusal"),
    [
        ("pair", ["a lone text"], f"inputs[0] is a string: {PAIR_REFUSAL}"),
        ("pair", [[]], f"inputs[0] is an empty array: {PAIR_REFUSAL}"),
        ("pair", [["a"]], f"inputs[0] is an array of 1 item: {PAIR_REFUSAL}"),
        ("pair", [["a", "b", "c"]], f"inputs[0] is an array of 3 items: {PAIR_REFUSAL}"),
        (
            "pair",
            [["a", "b"], ["a", None], [1, "b"]],
            f"inputs[1][1] is null, inputs[2][0] is a number: {PAIR_REFUSAL}",
        ),
        ("pair", [[["a"], ["b"]]], f"inputs[0][0] is an array, inputs[0][1] is an array: {PAIR_REFUSAL}"),
        ("pair", [{"text_a": "a", "text_b": "b"}], f"inputs[0] is an object: {PAIR_REFUSAL}"),
        ("multi_label", [["a", "b"]], f"inputs[0] is an array: {NOT_TEXT}"),
        ("multi_label", ["a", ["b"], [[]]], f"inputs[1] is an array, inputs[2] is an array: {NOT_TEXT}"),
        ("multi_label", [[]], f"inputs[0] is an empty array: {NOT_TEXT}"),
        ("multi_label", [None], f"inputs[0] is null: {NOT_TEXT}"),
    ],
)
def test_a_payload_of_the_wrong_shape_for_the_task_is_refused(
    task: str, inputs: list[Any], refusal: str, task_servers: dict[str, str]
) -> None:
    response = invoke(task_servers[task], {"inputs": inputs})
    assert response.status_code == 400, response.text[:500]
    # The task's one line, as it is: MLflow's prefix (the whole request, repeated) is not added.
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert response.json()["message"] == refusal


@pytest.mark.slow
def test_a_refused_megabyte_is_not_sent_back(task_servers: dict[str, str]) -> None:
    response = invoke(task_servers["pair"], {"inputs": [HUGE]})
    assert response.status_code == 400
    assert (
        len(response.content) < 1000
        and response.json()["message"] == f"inputs[0] is a string: {PAIR_REFUSAL}"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "inputs"),
    [
        ("pair", []),
        ("pair", [["好吃", ""]]),  # an empty text in a pair is a text, as "" is to a single-text model
        ("pair", [["", ""], ["", "味道不错"]]),
        ("multi_label", []),
        ("multi_label", ["", "  "]),
    ],
)
def test_empty_lists_and_empty_texts_are_answered(
    task: str, inputs: list[Any], task_servers: dict[str, str]
) -> None:
    response = invoke(task_servers[task], {"inputs": inputs})
    assert response.status_code == 200, response.text[:500]
    predictions = response.json()["predictions"]
    assert len(predictions) == len(inputs)
    keys = {"label", "confidence", "prob_different", "prob_same"} if task == "pair" else {"labels", "scores"}
    assert all(set(p) == keys for p in predictions)


@pytest.mark.slow
def test_a_megabyte_pair_is_cut_like_any_pair(task_servers: dict[str, str]) -> None:
    """At the job's max_seq_length (128), [1 MB, 短] keeps 124 characters of text_a: the same answer."""
    pairs = [
        [HUGE, "短"],
        [HUGE[:124], "短"],
        ["短", HUGE],
        ["短", HUGE[:124]],
        [HUGE, HUGE],
        [HUGE[:63], HUGE[:62]],
    ]
    response = invoke(task_servers["pair"], {"inputs": pairs})
    assert response.status_code == 200, response.text[:500]
    answers = [p["prob_same"] for p in response.json()["predictions"]]
    for cut, kept in zip(answers[::2], answers[1::2], strict=True):
        assert cut == pytest.approx(kept, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_MODELS)
def test_concurrent_clients_get_each_task_its_sequential_answers(
    task: str, task_texts: list[str], task_servers: dict[str, str]
) -> None:
    items: list[Any] = [list(p) for p in pairwise(task_texts)] if task == "pair" else task_texts
    batches = [[items[(i + k) % len(items)] for k in range(1 + i % 5)] for i in range(64)]

    def answers(batch: list[Any]) -> list[dict[str, Any]]:
        response = invoke(task_servers[task], {"inputs": batch})
        assert response.status_code == 200, response.text[:500]
        return response.json()["predictions"]

    sequential = [answers(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=16) as clients:
        concurrent = list(clients.map(answers, batches))
    score = "prob_same" if task == "pair" else "scores"
    for together, alone in zip(concurrent, sequential, strict=True):
        assert [p.get("label", p.get("labels")) for p in together] == [
            p.get("label", p.get("labels")) for p in alone
        ]
        if task == "pair":
            assert [p[score] for p in together] == pytest.approx([p[score] for p in alone], abs=1e-6)
        else:
            for a, b in zip(together, alone, strict=True):
                assert a[score] == pytest.approx(b[score], abs=1e-6)
