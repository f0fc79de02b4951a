"""Every task through the stages on its committed demo (model=demo, dataset=demo follow the task):
its metrics, reports and outputs, every precision against FP32, and pairs on every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.options.config import Config, compose_config
from pipeline.options.tasks import TASKS
from tests.helpers.jobs import evaluate_in_process

ALL_TASKS = ["multi_class", "multi_label", "hierarchical", "pair"]


def task_config(task: str, cache_dir: Path, *overrides: str) -> Config:
    return compose_config(f"task={task}", "mlflow.enabled=false", f"cache_dir={cache_dir}", *overrides)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_each_task_runs_its_demo_and_writes_its_outputs(task: str, cache_dir: Path, tmp_path: Path) -> None:
    config = task_config(task, cache_dir)
    metrics = evaluate_in_process(config, tmp_path / "job")
    definition = TASKS.get(task)
    for name in definition.metric_names:
        assert 0.0 <= metrics[name] <= 1.0, name
    headline = config.task.headline_metric
    assert metrics[headline] > 0.6, f"the demo model learnt its task: {headline}={metrics[headline]}"
    assert metrics["agreement_vs_fp32"] == 1.0 and metrics[f"{headline}_delta_vs_fp32"] == 0.0
    labels = config.task.read_labels(config.dataset_folder())
    per_class = json.loads((tmp_path / "job" / "per_class.json").read_text(encoding="utf-8"))
    assert [row["label"] for row in per_class] == labels
    assert sum(row["support"] for row in per_class) >= metrics["n_samples"]
    assert (tmp_path / "job" / "confusion_matrix.svg").is_file() == definition.single_label
    rows = read_rows(tmp_path / "job" / "predictions.jsonl")
    assert len(rows) == len(config.task.read_inputs(config.dataset_folder()))
    fields = set(definition.line_format.text_fields)
    if definition.single_label:
        assert all(set(row) == fields | {"label", "confidence"} and row["label"] in labels for row in rows)
    else:
        assert all(
            set(row) == fields | {"labels", "scores"} and set(row["scores"]) == set(labels) for row in rows
        )
        assert all(set(row["labels"]) == {k for k, p in row["scores"].items() if p >= 0.5} for row in rows)


def test_hierarchical_scores_every_level(cache_dir: Path, tmp_path: Path) -> None:
    metrics = evaluate_in_process(task_config("hierarchical", cache_dir), tmp_path / "job")
    assert {"level1_micro_f1", "level1_macro_f1", "level2_micro_f1", "level2_macro_f1"} <= set(metrics)


@pytest.mark.slow
@pytest.mark.parametrize("task", ALL_TASKS)
def test_int8_keeps_the_headline_within_a_point_and_fp16_agrees(
    task: str, cache_dir: Path, tmp_path: Path
) -> None:
    """The issue's bar on each task's demo: INT8 within 1 point of FP32's headline metric, FP16 agreeing
    with FP32 on at least 99.5% of the samples' label sets."""
    headline = TASKS.create(task).headline_metric
    int8 = evaluate_in_process(task_config(task, cache_dir, "precision=int8"), tmp_path / "int8")
    assert int8[f"{headline}_delta_vs_fp32"] >= -0.01, int8
    fp16 = evaluate_in_process(task_config(task, cache_dir, "precision=fp16"), tmp_path / "fp16")
    assert fp16["agreement_vs_fp32"] >= 0.995, fp16


@pytest.mark.parametrize("engine", ["openvino", "paddle_inference"])
def test_pairs_run_on_every_engine(engine: str, cache_dir: Path, tmp_path: Path) -> None:
    """Token types reach every runtime: each engine scores the pair demo as ONNX Runtime does."""
    reference = evaluate_in_process(task_config("pair", cache_dir), tmp_path / "onnxruntime")
    other = evaluate_in_process(task_config("pair", cache_dir, f"engine={engine}"), tmp_path / engine)
    assert abs(other["accuracy"] - reference["accuracy"]) <= 0.005
    assert read_rows(tmp_path / engine / "predictions.jsonl")[0].keys() == {
        "text_a",
        "text_b",
        "label",
        "confidence",
    }
