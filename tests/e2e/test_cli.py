"""run.py as users call it: overrides from the default config, one-line errors (sweeps: test_sweep.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli


def test_user_model_runs_from_the_default_config(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    result = run_cli(*user_overrides, "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "macro_f1", "latency_ms", "n_samples"}
    assert (tmp_path / "job" / "predictions.jsonl").is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("dataset.dir=/no/such/data", "error: dataset.dir=/no/such/data does not exist; expected a folder"),
        (
            "model.path_prefix=/no/such/export/float32",
            "error: no static-graph model at /no/such/export/float32.json",
        ),
        ("batch_size=0", "error: batch_size=0 must be >= 1"),
    ],
)
def test_bad_input_is_one_clear_line(
    override: str, expected: str, run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    args = [*user_overrides, override, "hydra.run.dir=job"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
