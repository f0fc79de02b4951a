"""The tasks as users run them: `python run.py task=...` on each embedded demo, a multi-label sweep
ranked by its headline metric, and pairs streamed to part files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import pytest

from tests.conftest import RunCli, runs_by_kind

TRACKING = ["mlflow.experiment_name=tasks-test"]


def tracking(tmp_path: Path) -> list[str]:
    return [f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", *TRACKING]


@pytest.mark.parametrize(
    ("task", "headline"), [("multi_label", "micro_f1"), ("hierarchical", "micro_f1"), ("pair", "accuracy")]
)
def test_each_task_runs_out_of_the_box(run_cli: RunCli, tmp_path: Path, task: str, headline: str) -> None:
    result = run_cli(f"task={task}", *tracking(tmp_path), "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()
    assert any(row.startswith(f"task={task}: {headline} 0.") for row in line), result.stdout
    parents, _ = runs_by_kind(f"sqlite:///{tmp_path}/mlflow.db", "tasks-test")
    run = parents[0]
    assert run.data.params["task.name"] == task and run.data.metrics[headline] > 0.6
    models = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_logged_models(
        [run.info.experiment_id]
    )
    assert [m.name.split(" · ")[0] for m in models] == ["demo"]
    assert {metric.key for metric in models[0].metrics} >= {headline, "macro_f1", "latency_ms"}


@pytest.mark.slow
def test_a_multi_label_sweep_ranks_by_micro_f1(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        "task=multi_label",
        *tracking(tmp_path),
        "precision=fp32,int8",
        "infer.predict_data=false",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    rows = list(csv.DictReader((sweep / "summary.csv").open(encoding="utf-8")))
    assert list(rows[0])[:7] == [
        "job",
        "overrides",
        "status",
        "micro_f1",
        "macro_f1",
        "subset_accuracy",
        "hamming_loss",
    ]
    assert "micro_f1_delta_vs_fp32" in rows[0] and "accuracy" not in rows[0]
    assert all(row["status"] == "FINISHED" for row in rows)
    selection = (sweep / "selection.md").read_text(encoding="utf-8")
    assert "micro_f1_delta_vs_fp32 >= -0.005" in selection
    assert (sweep / "micro_f1_vs_latency.svg").is_file() and "micro_f1" in (sweep / "pareto.md").read_text()
    parents, children = runs_by_kind(f"sqlite:///{tmp_path}/mlflow.db", "tasks-test")
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.metrics["best_micro_f1"] == max(c.data.metrics["micro_f1"] for c in children)


def test_pairs_stream_to_part_files(run_cli: RunCli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "".join(f"第{i}个房间很干净\t服务也好\n" for i in range(30)) + "\n太吵了\t再也不来\n", "utf-8"
    )
    result = run_cli(
        "task=pair",
        "mode=predict",
        f"predict.input={pairs}",
        "predict.output=out",
        "predict.chunk_lines=8",
        "mlflow.enabled=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        json.loads(line)
        for part in sorted((tmp_path / "out").glob("part-*.jsonl"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]
    assert [row["line"] for row in rows] == [*range(1, 31), 32]
    assert set(rows[0]) == {"line", "text_a", "text_b", "label", "confidence"}
    assert rows[-1]["text_a"] == "太吵了" and rows[-1]["label"] in {"相同", "不同"}
