"""run.py as users call it: overrides from the default config, one-line errors (sweeps: test_sweep.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT


def run_cli(*args: str, tmp_path: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def user_overrides(model: Path, tmp_path: Path) -> list[str]:
    return [
        f"model.path_prefix={model / 'export' / 'float32'}",
        f"model.name_or_path={model / 'tokenizer'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=cli-test",
    ]


def test_user_model_runs_from_the_default_config(tiny_model: Path, cache_dir: Path, tmp_path: Path) -> None:
    result = run_cli(
        *user_overrides(tiny_model, tmp_path), "hydra.run.dir=job", tmp_path=tmp_path, cache_dir=cache_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "macro_f1", "latency_ms", "n_samples"}
    assert (tmp_path / "job" / "predictions.jsonl").is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("dataset.dir=/no/such/data", "error: /no/such/data: dataset folder not found"),
        (
            "model.path_prefix=/no/such/export/float32",
            "error: no static-graph model at /no/such/export/float32.json",
        ),
        ("batch_size=0", "error: batch_size=0 must be >= 1"),
    ],
)
def test_bad_input_is_one_clear_line(
    override: str, expected: str, tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    args = [*user_overrides(tiny_model, tmp_path), override, "hydra.run.dir=job"]
    result = run_cli(*args, tmp_path=tmp_path, cache_dir=cache_dir)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
