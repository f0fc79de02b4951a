"""The benchmark scripts against the package's current API (they run for minutes, so only here
their imports and the cheap parts; mypy in `make lint` checks every call they make)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.parametrize("name", ["optimize_bench", "seed_vs_pipeline", "predict_bench", "tasks_bench"])
def test_a_benchmark_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_class_accuracy_is_the_share_of_top_logits_on_the_gold_class() -> None:
    from bench.common import class_accuracy

    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert class_accuracy(logits, [1, 1, 1]) == pytest.approx(2 / 3)
    assert class_accuracy(logits[:0], []) == 0.0


def test_the_predict_benchmark_corpus_repeats_the_demo_training_reviews(tmp_path: Path) -> None:
    from bench.predict_bench import write_corpus

    write_corpus(tmp_path / "corpus.txt", 5)
    lines = (tmp_path / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(line and "\t" not in line for line in lines)
