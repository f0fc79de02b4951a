"""`hydra/launcher=ray` where the ray extra is not installed: run.py in a Python that cannot import Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline import PROJECT_ROOT

# A Python without the ray extra: the path finder does not find Ray (so `import ray` raises
# ModuleNotFoundError and importlib.util.find_spec says None); then run.py as `python run.py ARGS`.
WITHOUT_RAY = """
import importlib.machinery, runpy, sys

class PathFinderWithoutRay(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "ray":
            return None
        return super().find_spec(name, path, target)

sys.meta_path = [
    PathFinderWithoutRay if finder is importlib.machinery.PathFinder else finder for finder in sys.meta_path
]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without_ray(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, str(PROJECT_ROOT / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_launcher_plugin_loads_without_ray(tmp_path: Path) -> None:
    """Hydra imports every plugin module on every run: ours must not need Ray to be imported."""
    result = run_without_ray(tmp_path, "--hydra-help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ernie_ray_launcher" not in result.stderr
    assert "hydra/launcher: basic, joblib, ray" in result.stdout


def test_a_ray_sweep_without_ray_is_one_error_before_anything_starts(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    result = run_without_ray(
        tmp_path, "-m", "hydra/launcher=ray", "precision=fp32,int8", f"mlflow.tracking_uri=sqlite:///{store}"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: hydra/launcher=ray needs the ray extra: pip install -e '.[cpu,ray]'"]
    assert "Traceback" not in result.stderr
    # Neither a sweep folder nor the sweep's MLflow parent run was started.
    assert not (tmp_path / "outputs").exists() and not store.exists()
