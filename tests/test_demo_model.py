"""`make demo-model`: the training command that produced assets/demo-model, on a short run."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import PROJECT_ROOT
from pipeline.demo_model import main


def test_training_command_writes_a_complete_model(
    cache_dir: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo-model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older model")
    main(["--out", str(out), "--cache-dir", str(cache_dir), "--epochs", "1", "--max-train-samples", "256"])

    assert not (out / "stale.txt").exists(), "the old model is replaced as a whole"
    for name in (
        "export/float32.json",
        "export/float32.pdiparams",
        "tokenizer/vocab.txt",
        "checkpoint/model_state.pdparams",
        "checkpoint/config.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert 0.0 <= metrics["dev_accuracy"] <= 1.0 and metrics["train_samples"] == 256
    assert [p.name for p in tmp_path.iterdir()] == ["demo-model"], "no temporary folder is left"


def test_committed_demo_model_meets_its_accuracy_bar() -> None:
    metrics = json.loads((PROJECT_ROOT / "assets" / "demo-model" / "train_metrics.json").read_text())
    assert metrics["dev_accuracy"] >= 0.83
    assert (PROJECT_ROOT / "assets" / "demo-model" / "export" / "float32.json").is_file()
