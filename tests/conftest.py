"""Shared fixtures: the real demo corpus and a tiny ERNIE trained on it in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

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
