"""`make demo-model [TASK=...]`: the training command that produced assets/demo-model*, on short runs;
the committed models score as recorded; a user's own export of each task runs through the pipeline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from pipeline import DEMO_MODEL_DIR
from pipeline.core.data import read_labels, read_split
from pipeline.core.files import file_digest
from pipeline.core.tokenizer import load_tokenizer
from pipeline.demo.model import TASK_RECIPE, TrainConfig, build_vocab, main, pretrain_mlm, recipe
from pipeline.options.config import ConvertConfig, compose_config
from pipeline.options.tasks import TASKS, TaskConfig
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert
from pipeline.stages.infer import run_inference
from tests.conftest import TinyTaskModel
from tests.helpers.jobs import evaluate_in_process

# The tasks whose demo model starts from the multi-class demo's encoder (assets/demo-model-<task>).
OTHER_TASKS = ("hierarchical", "multi_label", "pair")


@pytest.mark.slow
def test_training_command_writes_a_complete_model(
    cache_dir: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo-model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older model")
    (out / "README.md").write_text("the recipe")
    # One masked-LM epoch, not the recipe's 8 (70 s of this test's 100): what is checked is the files.
    quick = ["--epochs", "1", "--max-train-samples", "256", "--mlm-epochs", "1"]
    main(["--out", str(out), "--cache-dir", str(cache_dir), *quick])

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
    assert metrics["config"]["mlm_epochs"] == 1 and metrics["config"]["epochs"] == 1
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


# -- every task's demo model ----------------------------------------------------------------------


def onnx_dev_scores(model_dir: Path, task: TaskConfig, cache_dir: Path) -> dict[str, float]:
    """The task's metrics on its demo dev split of `model_dir`'s export, converted and run by ONNX Runtime."""
    folder = task.demo_dataset(cache_dir)
    labels = task.read_labels(folder)
    split = task.read_split(folder, "dev", labels)
    encoded = load_tokenizer(str(model_dir / "tokenizer")).encode(split.texts, 128, split.inputs.text_pairs)
    engine = OnnxRuntimeSession(
        convert(model_dir / "export" / "float32", ConvertConfig(), cache_dir), SessionSettings(threads=2)
    )
    logits = run_inference(engine, encoded, batch_size=64, progress=False).logits
    assert logits.shape == (len(split.texts), len(labels)), "one output per line of label.txt"
    return task.scores(task.decide(task.probabilities(logits)), split.gold, labels)


@pytest.mark.parametrize("task_name", ["multi_class", *OTHER_TASKS])
def test_each_task_trains_with_its_loss_and_encoding(
    task_name: str, tiny_task_model: TinyTaskModel, cache_dir: Path
) -> None:
    """A tiny model per task: what training measured on dev is what the pipeline's ONNX path measures
    (the same head and decisions, the same pair encoding). Trained in seconds from scratch, the
    pair and hierarchical ones barely learn: the committed models check the same on real models."""
    task = TASKS.create(task_name)
    model = tiny_task_model(task_name)
    recorded = json.loads((model / "train_metrics.json").read_text(encoding="utf-8"))
    assert recorded["task"] == task_name and "init_from" not in recorded
    scores = onnx_dev_scores(model, task, cache_dir)
    assert set(task.metric_names) <= set(scores)
    for name, value in scores.items():
        assert value == pytest.approx(recorded[f"dev_{name}"], abs=0.002), name


@pytest.mark.parametrize("task_name", OTHER_TASKS)
def test_committed_task_model_was_trained_with_its_recipe(task_name: str) -> None:
    """`make demo-model TASK=...` rebuilds it: TASK_RECIPE from the committed multi-class demo's
    encoder (the very checkpoint, by digest) and a copy of its tokenizer."""
    task = TASKS.get(task_name)
    folder = task.demo_model_dir()
    recorded = json.loads((folder / "train_metrics.json").read_text(encoding="utf-8"))
    config, init_from = recipe(task_name)
    assert init_from == DEMO_MODEL_DIR and config == TASK_RECIPE
    assert recorded["task"] == task_name
    assert recorded["config"] == asdict(TASK_RECIPE)
    assert recorded["init_from"] == {
        "checkpoint": "assets/demo-model/checkpoint",
        "sha256": file_digest(DEMO_MODEL_DIR / "checkpoint" / "model_state.pdparams"),
    }
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (folder / "tokenizer" / name).read_bytes() == (
            DEMO_MODEL_DIR / "tokenizer" / name
        ).read_bytes()
    assert (folder / "README.md").is_file()


@pytest.mark.parametrize("task_name", OTHER_TASKS)
def test_committed_task_model_scores_as_recorded_through_onnx(task_name: str, cache_dir: Path) -> None:
    task = TASKS.create(task_name)
    folder = task.demo_model_dir()
    recorded = json.loads((folder / "train_metrics.json").read_text(encoding="utf-8"))
    scores = onnx_dev_scores(folder, task, cache_dir)
    for name, value in scores.items():
        assert value == pytest.approx(recorded[f"dev_{name}"], abs=0.002), name


@pytest.mark.slow
def test_training_command_writes_a_task_model(cache_dir: Path, tmp_path: Path) -> None:
    """`--task pair`: the demo encoder with a new head, pairs encoded with token types."""
    out = tmp_path / "demo-model-pair"
    main(
        [
            "--task",
            "pair",
            "--out",
            str(out),
            "--cache-dir",
            str(cache_dir),
            "--epochs",
            "1",
            "--max-train-samples",
            "64",
        ]
    )

    metrics = json.loads((out / "train_metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "pair" and metrics["train_samples"] == 64
    assert metrics["config"] == asdict(TASK_RECIPE) | {"epochs": 1, "max_train_samples": 64}
    assert metrics["init_from"]["checkpoint"] == "assets/demo-model/checkpoint"
    assert (out / "tokenizer" / "vocab.txt").read_bytes() == (
        DEMO_MODEL_DIR / "tokenizer" / "vocab.txt"
    ).read_bytes()
    assert 0.0 <= metrics["dev_accuracy"] <= 1.0
    scores = onnx_dev_scores(out, TASKS.create("pair"), cache_dir)
    assert scores["accuracy"] == pytest.approx(metrics["dev_accuracy"], abs=0.002)


# -- a user's own export and checkpoint, for each task ---------------------------------------------


def export_as_a_user_does(checkpoint: Path, n_labels: int, inputs: list[str], prefix: Path) -> None:
    """PaddleNLP's AutoModelForSequenceClassification with as many classes as label.txt has lines,
    saved with `paddle.jit.to_static` + `paddle.jit.save`, as PaddleNLP's export_model.py does."""
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint), num_classes=n_labels)
    model.eval()
    spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=name) for name in inputs]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec), str(prefix))


def recorded_headline(task: TaskConfig) -> float:
    recorded = json.loads((task.demo_model_dir() / "train_metrics.json").read_text(encoding="utf-8"))
    return recorded[f"dev_{task.headline_metric}"]


@pytest.mark.parametrize("task_name", ["multi_class", *OTHER_TASKS])
def test_a_users_own_export_runs_through_the_pipeline(
    task_name: str, cache_dir: Path, tmp_path: Path
) -> None:
    """The task's demo checkpoint exported as a user exports it: input_ids only for one text (the
    pipeline feeds a graph by its own inputs), with token_type_ids for pairs."""
    task = TASKS.create(task_name)
    labels = task.read_labels(task.demo_dataset(cache_dir))
    inputs = ["input_ids", "token_type_ids"] if len(task.fields) == 2 else ["input_ids"]
    prefix = tmp_path / "export" / "float32"
    export_as_a_user_does(task.demo_model_dir() / "checkpoint", len(labels), inputs, prefix)
    config = compose_config(
        f"task={task_name}",
        f"model.path_prefix={prefix}",
        f"model.name_or_path={task.demo_model_dir() / 'tokenizer'}",
        "mlflow.enabled=false",
        f"cache_dir={cache_dir}",
    )
    metrics = evaluate_in_process(config, tmp_path / "job")
    assert metrics[task.headline_metric] == pytest.approx(recorded_headline(task), abs=0.002)
    assert (tmp_path / "job" / "predictions.jsonl").is_file()


@pytest.mark.parametrize("task_name", ["multi_class", *OTHER_TASKS])
def test_each_committed_checkpoint_runs_as_model_weights_checkpoint(
    task_name: str, cache_dir: Path, tmp_path: Path
) -> None:
    task = TASKS.create(task_name)
    config = compose_config(
        f"task={task_name}", "model.weights=checkpoint", "mlflow.enabled=false", f"cache_dir={cache_dir}"
    )
    assert config.model.checkpoint == str(task.demo_model_dir() / "checkpoint")
    metrics = evaluate_in_process(config, tmp_path / "job")
    assert metrics[task.headline_metric] == pytest.approx(recorded_headline(task), abs=0.002)


def test_mlm_epochs_are_refused_for_a_task_that_starts_from_the_pretrained_encoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--task", "pair", "--out", str(tmp_path / "m"), "--mlm-epochs", "2"])
    assert exited.value.code == 2
    assert "pretrained encoder: no --mlm-epochs" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
