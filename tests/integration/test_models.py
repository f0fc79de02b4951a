"""Every model the seed names: configs, the export stage, random-weight architectures end to end."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline import DEMO_MODEL_DIR, PROJECT_ROOT
from pipeline.core.data import read_labels, read_split
from pipeline.core.errors import ConfigError, ModelError
from pipeline.core.tokenizer import load_tokenizer
from pipeline.options.config import ConvertConfig, compose_config
from pipeline.options.precisions.fp32 import Fp32Precision
from pipeline.runtimes.base import graph_input_names
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert
from pipeline.stages.export import build_random, export_checkpoint, export_random, load_checkpoint
from pipeline.stages.infer import pad_batch, run_inference
from pipeline.stages.optimize import optimize
from tests.helpers.jobs import evaluate_in_process

SEED_MODELS = [
    "ernie-1.0-large-zh-cw",
    "ernie-3.0-xbase-zh",
    "ernie-3.0-base-zh",
    "ernie-3.0-medium-zh",
    "ernie-3.0-mini-zh",
    "ernie-3.0-micro-zh",
    "ernie-3.0-nano-zh",
    "ernie-2.0-base-en",
    "ernie-2.0-large-en",
    "ernie-m-base",
    "ernie-m-large",
]
# ERNIE-M at a size that converts in seconds.
SMALL_ERNIE_M = (
    "model.architecture.layers=2",
    "model.architecture.hidden=64",
    "model.architecture.heads=4",
    "model.architecture.ffn=128",
    "model.architecture.vocab=10000",
)


def test_the_model_group_holds_exactly_the_seed_models_and_the_demo() -> None:
    names = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "model").glob("*.yaml"))
    assert names == sorted([*SEED_MODELS, "demo"])


@pytest.mark.parametrize("name", SEED_MODELS)
def test_architecture_facts_match_what_paddlenlp_builds_for_the_name(name: str) -> None:
    import paddlenlp.transformers as transformers

    model = compose_config(f"model={name}", "model.weights=random").model
    arch = model.architecture
    family = transformers.ErnieMConfig if arch.model_class.startswith("ErnieM") else transformers.ErnieConfig
    expected = family(**family.pretrained_init_configuration[name])
    assert (arch.layers, arch.hidden, arch.heads, arch.ffn) == (
        expected.num_hidden_layers,
        expected.hidden_size,
        expected.num_attention_heads,
        expected.intermediate_size,
    )
    assert (arch.vocab, arch.max_positions, arch.hidden_act) == (
        expected.vocab_size,
        expected.max_position_embeddings,
        expected.hidden_act,
    )
    if family is transformers.ErnieConfig:
        assert (arch.type_vocab, arch.use_task_id, arch.task_type_vocab) == (
            expected.type_vocab_size,
            expected.use_task_id,
            expected.task_type_vocab_size,
        )
        assert model.inputs == ["input_ids", "token_type_ids"]
    else:
        assert model.inputs == ["input_ids"]  # ERNIE-M has no token types
    assert model.name == name and model.name_or_path == name


def test_demo_model_config_matches_its_checkpoint() -> None:
    arch = compose_config().model.architecture
    saved = json.loads((DEMO_MODEL_DIR / "checkpoint" / "config.json").read_text())
    assert (arch.layers, arch.hidden, arch.heads, arch.ffn, arch.vocab, arch.max_positions) == (
        saved["num_hidden_layers"],
        saved["hidden_size"],
        saved["num_attention_heads"],
        saved["intermediate_size"],
        saved["vocab_size"],
        saved["max_position_embeddings"],
    )


def test_a_named_model_without_weights_says_where_they_can_come_from() -> None:
    with pytest.raises(ConfigError, match=r"ernie-3\.0-medium-zh needs model\.path_prefix=.*weights=random"):
        compose_config("model=ernie-3.0-medium-zh")
    config = compose_config("model=ernie-3.0-medium-zh", "model.path_prefix=/m/export/float32")
    assert config.model.weights == "export" and config.model.checkpoint == "ernie-3.0-medium-zh"


def test_an_unreachable_name_fails_fast_with_the_local_folder_fix() -> None:
    model = compose_config("model=ernie-3.0-nano-zh", "model.weights=checkpoint").model
    started = time.perf_counter()
    with pytest.raises(ModelError, match=re.escape("model.checkpoint=/path/to/folder")):
        load_checkpoint(model.checkpoint, model.architecture, num_labels=2)
    with pytest.raises(ModelError, match=r"is not a local folder.*model\.name_or_path=DIR"):
        load_tokenizer("ernie-3.0-nano-zh")
    with pytest.raises(ModelError, match="SentencePiece"):
        load_tokenizer("ernie-m-base")
    assert time.perf_counter() - started < 60  # no retry loop


def test_a_folder_that_is_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    model = compose_config("model=ernie-3.0-nano-zh", "model.weights=random").model
    expected = f"{tmp_path}: not a checkpoint folder, model_state.pdparams missing"
    with pytest.raises(ModelError, match=re.escape(expected)):
        load_checkpoint(str(tmp_path), model.architecture, num_labels=2)
    with pytest.raises(ModelError, match=re.escape("/no/such/ckpt: checkpoint folder not found")):
        load_checkpoint("/no/such/ckpt", model.architecture, num_labels=2)


def dynamic_logits(model, ids: np.ndarray, **extra: np.ndarray) -> np.ndarray:
    import paddle

    with paddle.no_grad():
        tensors = {name: paddle.to_tensor(value) for name, value in extra.items()}
        return model(paddle.to_tensor(ids), **tensors).numpy()


def test_exported_checkpoint_predicts_as_the_dynamic_model(
    tiny_model: Path, demo_data_dir: Path, cache_dir: Path
) -> None:
    model = compose_config(f"model.checkpoint={tiny_model / 'checkpoint'}", "model.weights=checkpoint").model
    prefix = export_checkpoint(model, num_labels=2, cache_dir=cache_dir)
    assert export_checkpoint(model, num_labels=2, cache_dir=cache_dir) == prefix  # cached by content
    texts = read_split(demo_data_dir, "dev", read_labels(demo_data_dir)).texts[:64]
    tokenizer = load_tokenizer(str(tiny_model / "tokenizer"))
    encoded = tokenizer.encode(texts, 128)
    engine = OnnxRuntimeSession(convert(prefix, ConvertConfig(), cache_dir), SessionSettings())
    onnx = run_inference(engine, encoded, batch_size=16).logits

    dynamic = load_checkpoint(str(tiny_model / "checkpoint"), model.architecture, num_labels=2)
    batches = [pad_batch(encoded.input_ids[i : i + 16], tokenizer.pad_id) for i in range(0, 64, 16)]
    reference = np.concatenate([dynamic_logits(dynamic, ids) for ids in batches])
    np.testing.assert_allclose(onnx, reference, atol=1e-4)
    assert (onnx.argmax(-1) == reference.argmax(-1)).all()


def test_task_type_and_attention_mask_inputs_are_fed(cache_dir: Path) -> None:
    inputs = "model.inputs=[input_ids,token_type_ids,task_type_ids,attention_mask]"
    model = compose_config("model=ernie-3.0-nano-zh", "model.weights=random", inputs, *SMALL_ERNIE_M).model
    prefix = export_random(model, num_labels=3, pad_id=0, cache_dir=cache_dir)
    onnx_path = convert(prefix, ConvertConfig(), cache_dir)
    engine = OnnxRuntimeSession(onnx_path, SessionSettings())
    assert engine.input_names == ["input_ids", "token_type_ids", "task_type_ids", "attention_mask"]
    ids = pad_batch([[1, 50, 60, 70, 2], [1, 80, 2]], 0)
    onnx = engine.run(engine.feed(ids, pad_id=0))
    dynamic = build_random(model.architecture, num_labels=3, pad_id=0)
    mask = (ids != 0).astype("int64")
    reference = dynamic_logits(dynamic, ids, attention_mask=mask)
    np.testing.assert_allclose(onnx, reference, atol=1e-4)
    # The graph reads the mask input: attending to the padding changes the short row only.
    unmasked = engine.run({**engine.feed(ids, pad_id=0), "attention_mask": np.ones_like(ids)})
    np.testing.assert_allclose(unmasked[0], onnx[0], atol=1e-5)
    assert not np.allclose(unmasked[1], onnx[1], atol=1e-4)
    # Fusion builds the Attention kernels' mask from that input and keeps both behaviours.
    fused = optimize(onnx_path, Fp32Precision(), fusion=True, cache_dir=cache_dir)
    assert fused.fused_ops["Attention"] == model.architecture.layers
    fused_engine = OnnxRuntimeSession(fused.path, SessionSettings())
    np.testing.assert_allclose(fused_engine.run(fused_engine.feed(ids, pad_id=0)), onnx, atol=1e-4)
    all_ones = {**fused_engine.feed(ids, pad_id=0), "attention_mask": np.ones_like(ids)}
    fused_unmasked = fused_engine.run(all_ones)
    np.testing.assert_allclose(fused_unmasked, unmasked, atol=1e-4)


@pytest.fixture(scope="module")
def small_dataset(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 dev reviews and 8 texts to predict: enough to run an architecture end to end."""
    folder = tmp_path_factory.mktemp("small-data")
    labels = (demo_data_dir / "label.txt").read_text(encoding="utf-8")
    (folder / "label.txt").write_text(labels, encoding="utf-8")
    dev = (demo_data_dir / "dev.txt").read_text(encoding="utf-8").splitlines()[:64]
    (folder / "dev.txt").write_text("\n".join(dev) + "\n", encoding="utf-8")
    data = (demo_data_dir / "data.txt").read_text(encoding="utf-8").splitlines()[:8]
    (folder / "data.txt").write_text("\n".join(data) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("ernie-3.0-nano-zh", ()),
        ("ernie-3.0-micro-zh", ()),
        ("ernie-3.0-mini-zh", ()),
        ("ernie-m-base", SMALL_ERNIE_M),
    ],
)
def test_architecture_with_random_weights_runs_end_to_end(
    name: str, overrides: tuple[str, ...], small_dataset: Path, cache_dir: Path, tmp_path: Path
) -> None:
    config = compose_config(
        f"model={name}",
        "model.weights=random",
        *overrides,
        f"dataset.dir={small_dataset}",
        "dataset.name=small",
        f"cache_dir={cache_dir}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=architectures",
    )
    metrics = evaluate_in_process(config, tmp_path / "job")
    assert metrics["n_samples"] == 64 and metrics["latency_ms"] > 0
    assert len((tmp_path / "job" / "predictions.jsonl").read_text().splitlines()) == 8
    onnx = convert(export_random(config.model, 2, pad_id=0, cache_dir=cache_dir), ConvertConfig(), cache_dir)
    expected_inputs = ["input_ids"] if name.startswith("ernie-m") else ["input_ids", "token_type_ids"]
    assert graph_input_names(onnx) == expected_inputs
    client = mlflow.MlflowClient(config.mlflow.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("architectures").experiment_id])
    assert run.data.tags["weights"] == "random" and run.data.tags["accuracy_meaningful"] == "false"
    # Offline, the model's own tokenizer cannot be fetched: the demo tokenizer serves.
    assert run.data.tags["tokenizer"] in (
        str(DEMO_MODEL_DIR / "tokenizer"),
        name,
    )  # offline: the demo tokenizer
    assert run.data.params["model.architecture.layers"] == str(config.model.architecture.layers)
