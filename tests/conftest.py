"""Shared fixtures: the real demo corpus, a tiny ERNIE trained on it in seconds, run.py as users call it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.demo.data import demo_dataset
from pipeline.demo.model import TrainConfig, train_demo_model

TINY = TrainConfig(
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    intermediate_size=64,
    max_vocab=3000,
    epochs=2,
    max_train_samples=3000,
    batch_size=32,
    learning_rate=5e-3,
    distill_weight=0.0,
    augment_clauses=False,
    mlm_epochs=0,
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def demo_data_dir(cache_dir: Path) -> Path:
    return demo_dataset(cache_dir)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, demo_data_dir: Path) -> Path:
    """A folder with export/float32.{json,pdiparams}, tokenizer/ and checkpoint/."""
    out = tmp_path_factory.mktemp("tiny-model")
    train_demo_model(demo_data_dir, out, TINY)
    return out


RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_cli(tmp_path: Path, cache_dir: Path) -> RunCli:
    """`python run.py ARGS` from `tmp_path` (relative output paths land there), sharing the test cache."""

    def run(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
            cwd=tmp_path,
            env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def user_overrides(tiny_model: Path, tmp_path: Path) -> list[str]:
    """The tiny model as a user's own export, tracked in a SQLite store under `tmp_path`."""
    return [
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=cli-test",
    ]
