"""`make demo-model`: the training command that produced assets/demo-model, on a short run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from pipeline import DEMO_MODEL_DIR
from pipeline.core.data import read_labels, read_split
from pipeline.core.tokenizer import load_tokenizer
from pipeline.demo.model import TrainConfig, build_vocab, main, pretrain_mlm
from pipeline.options.config import ConvertConfig
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert
from pipeline.stages.infer import run_inference


@pytest.mark.slow
def test_training_command_writes_a_complete_model(
    cache_dir: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo-model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older model")
    (out / "README.md").write_text("the recipe")
    main(["--out", str(out), "--cache-dir", str(cache_dir), "--epochs", "1", "--max-train-samples", "256"])

    assert not (out / "stale.txt").exists(), "the old model is replaced as a whole"
    assert (out / "README.md").read_text() == "the recipe", "its README stays"
    for name in (
        "export/float32.json",
        "export/float32.pdiparams",
        "tokenizer/vocab.txt",
        "checkpoint/model_state.pdparams",
        "checkpoint/config.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert 0.0 <= metrics["dev_accuracy"] <= 1.0
    assert metrics["train_samples"] > 256, "256 reviews plus the clauses the teacher labelled"
    assert [p.name for p in tmp_path.iterdir()] == ["demo-model"], "no temporary folder is left"


def test_masked_lm_pretraining_learns_to_fill_in_characters(demo_data_dir: Path) -> None:
    import random

    from paddlenlp.transformers import ErnieConfig, ErnieModel

    texts = read_split(demo_data_dir, "train", read_labels(demo_data_dir)).texts[:1500]
    vocab = {token: i for i, token in enumerate(build_vocab(texts, 2000, 2))}
    unk = vocab["[UNK]"]
    ids = [[vocab["[CLS]"], *(vocab.get(c, unk) for c in text[:62]), vocab["[SEP]"]] for text in texts]
    cfg = TrainConfig(hidden_size=32, num_heads=2, intermediate_size=64, mlm_epochs=3, learning_rate=5e-3)
    config = ErnieConfig(
        vocab_size=len(vocab),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=1,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        pad_token_id=vocab["[PAD]"],
    )
    encoder, epoch_losses = pretrain_mlm(config, ids, cfg, random.Random(0))

    assert len(epoch_losses) == 3
    assert epoch_losses[-1] < epoch_losses[0] - 0.3, epoch_losses
    assert ErnieModel(config).set_state_dict(encoder) == ([], []), "the weights fit the classifier's encoder"


def test_committed_demo_model_scores_as_recorded_through_onnx(cache_dir: Path, demo_data_dir: Path) -> None:
    """The committed export, converted and run by ONNX Runtime, scores what training recorded."""
    demo = DEMO_MODEL_DIR
    recorded = json.loads((demo / "train_metrics.json").read_text())["dev_accuracy"]
    split = read_split(demo_data_dir, "dev", read_labels(demo_data_dir))
    encoded = load_tokenizer(str(demo / "tokenizer")).encode(split.texts, 128)
    engine = OnnxRuntimeSession(
        convert(demo / "export" / "float32", ConvertConfig(), cache_dir), SessionSettings(threads=2)
    )
    logits = run_inference(engine, encoded, batch_size=64).logits
    accuracy = float(np.mean(logits.argmax(-1) == np.asarray(split.label_ids)))
    assert accuracy == pytest.approx(recorded, abs=0.002)
    assert accuracy >= 0.83, "the issue's bar for the demo model"


def test_committed_demo_model_was_trained_with_the_default_recipe() -> None:
    """`make demo-model` rebuilds the committed model: its recorded settings are TrainConfig's defaults."""
    recorded = json.loads((DEMO_MODEL_DIR / "train_metrics.json").read_text())
    assert recorded["config"] == asdict(TrainConfig())
