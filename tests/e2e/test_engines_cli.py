"""Engines and precisions from the command line: an invalid combination is SKIPPED in a sweep; a
cached run stays light."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline import PROJECT_ROOT
from tests.conftest import RunCli


@pytest.mark.slow
def test_invalid_combination_is_skipped_in_a_sweep(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    result = run_cli(
        "-m",
        *user_overrides,
        "engine=onnxruntime,paddle_inference",
        "precision=int8_static",
        "precision.calibration_samples=32",
        "infer.predict_data=false",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "skipped engine=paddle_inference: engine=paddle_inference does not run precision=int8_static"
        in result.stdout
    )
    statuses = {
        r["overrides"].split(",")[0]: r["status"]
        for r in csv.DictReader((tmp_path / "sweep" / "summary.csv").open())
    }
    assert statuses == {"engine=onnxruntime": "FINISHED", "engine=paddle_inference": "SKIPPED"}


def test_a_cached_run_imports_no_paddle_and_is_logged(
    user_overrides: list[str], cache_dir: Path, tmp_path: Path
) -> None:
    """Nothing is converted in a cached run, so neither paddle, paddle2onnx nor snownlp is imported
    (nor matplotlib: the figures are SVG markup); its folder is then logged as a FINISHED run."""
    heavy = ("paddle", "paddle2onnx", "paddlenlp", "snownlp", "matplotlib")
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['run.py', *sys.argv[1:]]\n"
        f"runpy.run_path({str(PROJECT_ROOT / 'run.py')!r}, run_name='__main__')\n"
        f"print('IMPORTED', sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}
    for job in ("first", "cached"):  # the first run may convert; the second is the cached one
        result = subprocess.run(
            [sys.executable, "-c", probe, *user_overrides, f"hydra.run.dir={job}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPORTED []" in result.stdout, result.stdout[-500:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("cli-test").experiment_id])
    logged = {run.data.tags["job_dir"]: run for run in runs}
    cached = logged[str(tmp_path / "cached")]
    assert cached.info.status == "FINISHED"
    metrics = json.loads((tmp_path / "cached" / "metrics.json").read_text())
    assert cached.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert cached.data.params["batch_size"] == "32"
    artifacts = {a.path for a in client.list_artifacts(cached.info.run_id)}
    assert artifacts >= {"metrics.json", "confusion_matrix.svg"}


def test_composing_a_config_imports_no_runtime() -> None:
    """Engine options are light: a config (any engine) is composed without ONNX Runtime, OpenVINO,
    Paddle or MLflow; each is imported only where a job opens a model or logs a run."""
    probe = (
        "import sys\n"
        "from pipeline.options.config import compose_config\n"
        "for engine in ('onnxruntime', 'openvino', 'paddle_inference'):\n"
        "    compose_config(f'engine={engine}', 'precision=fp32')\n"
        "heavy = ('onnxruntime', 'openvino', 'paddle', 'paddlenlp', 'mlflow', 'ray', 'optuna')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
