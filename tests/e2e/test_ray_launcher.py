"""`hydra/launcher=ray` where the ray extra is not installed: run.py in a Python that cannot import Ray."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.without import run_without


def test_the_launcher_plugin_loads_without_ray(tmp_path: Path) -> None:
    """Hydra imports every plugin module on every run: ours must not need Ray to be imported."""
    result = run_without("ray", tmp_path, "--hydra-help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ernie_ray_launcher" not in result.stderr
    assert "hydra/launcher: basic, joblib, ray" in result.stdout


def test_a_ray_sweep_without_ray_is_one_error_before_anything_starts(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    result = run_without(
        "ray",
        tmp_path,
        "-m",
        "hydra/launcher=ray",
        "precision=fp32,int8",
        f"mlflow.tracking_uri=sqlite:///{store}",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: hydra/launcher=ray needs the ray extra: pip install -e '.[cpu,ray]'"]
    assert "Traceback" not in result.stderr
    # Neither a sweep folder nor the sweep's MLflow parent run was started.
    assert not (tmp_path / "outputs").exists() and not store.exists()
