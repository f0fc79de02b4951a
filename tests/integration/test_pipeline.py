"""The real pipeline end to end on a tiny ERNIE: paddle2onnx, ONNX Runtime, metrics, MLflow."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest

from pipeline.core.data import read_labels, read_split
from pipeline.core.errors import ModelError
from pipeline.core.model_files import find_model_files
from pipeline.core.tokenizer import load_tokenizer
from pipeline.options.config import Config, ConvertConfig, DatasetConfig, MlflowConfig, compose_config
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert
from pipeline.stages.infer import plan_batches, run_inference
from tests.helpers.jobs import evaluate_in_process, run_in_process


def make_config(model_dir: Path, cache_dir: Path, tmp_path: Path, **changes) -> Config:
    config = compose_config(
        "model.name=tiny",
        f"model.path_prefix={model_dir / 'export' / 'float32'}",
        f"model.name_or_path={model_dir / 'tokenizer'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=pipeline-test",
        f"cache_dir={cache_dir}",
    )
    return replace(config, **changes)


def test_a_job_writes_its_folder_and_the_folder_becomes_its_mlflow_run(
    tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    config = make_config(tiny_model, cache_dir, tmp_path)
    out = tmp_path / "job"
    metrics = evaluate_in_process(config, out, "batch_size=32")

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in (
        "batch_latency_p50_ms",
        "batch_latency_p95_ms",
        "batch_latency_p99_ms",
        "throughput_sps",
        "tokenize_ms",
        "infer_peak_rss_mb",
        "job_peak_rss_mb",
    ):
        assert on_disk[key] > 0, key
    assert on_disk["e2e_ms"] > on_disk["latency_ms"] + on_disk["tokenize_ms"]
    assert (
        on_disk["batch_latency_p50_ms"] <= on_disk["batch_latency_p95_ms"] <= on_disk["batch_latency_p99_ms"]
    )
    assert on_disk["infer_peak_rss_mb"] <= on_disk["job_peak_rss_mb"]
    assert (on_disk["engine"], on_disk["engine_version"]) == ("onnxruntime", onnxruntime.__version__)
    assert on_disk["n_truncated"] > 0  # reviews longer than 128 tokens exist in the dev split
    assert on_disk["fused_ops"]["Attention"] == 1 and on_disk["agreement_vs_fp32"] == 1.0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert metrics["n_samples"] == 2000 and metrics["latency_ms"] > 0
    # The tiny model learned something from 3000 reviews.
    assert metrics["accuracy"] > 0.6

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    data_texts = (Path(cache_dir).glob("datasets/demo/*/data.txt")).__next__().read_text().split("\n")
    assert [r["text"] for r in rows] == [t for t in data_texts if t]
    assert all(r["label"] in ("negative", "positive") and 0.5 <= r["confidence"] <= 1.0 for r in rows)

    client = mlflow.MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("pipeline-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "batch_size=32"
    assert run.data.tags["job_dir"] == str(out) and "accuracy" in run.data.tags["mlflow.note.content"]
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    # The eval split as the run's dataset; the job as a model in the Models tab, its metrics tied to both.
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "demo/dev" and [t.value for t in dataset.tags] == ["eval"]
    (model,) = client.search_logged_models([experiment.experiment_id])
    assert model.name == "tiny · fp32 · onnxruntime · bs32" and model.source_run_id == run.info.run_id
    assert model.params["precision"] == "fp32" and model.params["threads"] == str(config.device.threads)
    linked = {m.key: m for m in model.metrics}
    assert linked["accuracy"].value == pytest.approx(metrics["accuracy"])
    assert linked["accuracy"].dataset_name == "demo/dev"
    assert run.data.params["batch_size"] == "32" and run.data.params["device.name"] == "cpu"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "predictions.jsonl", "config.yaml", "per_class.json"} <= artifacts
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [
        {"path": "per_class.json", "type": "table"}
    ]
    # Artifacts beside the SQLite database, not in ./mlruns of whatever folder the job ran from.
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert not (Path.cwd() / "mlruns").exists()


def test_conversion_is_cached_by_content(tiny_model: Path, tmp_path: Path) -> None:
    prefix = tiny_model / "export" / "float32"
    first = convert(prefix, ConvertConfig(), tmp_path)
    mtime = first.stat().st_mtime_ns
    assert convert(prefix, ConvertConfig(), tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert (
        convert(prefix, ConvertConfig(opset=14), tmp_path) != first
    )  # a different option is a different artifact
    # Nothing was written beside the user's model.
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["float32.json", "float32.pdiparams"]


def test_sorted_batches_give_the_same_logits_in_input_order(
    tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    split = read_split(demo_data_dir, "dev", read_labels(demo_data_dir))
    texts = split.texts[:200]
    encoded = load_tokenizer(str(tiny_model / "tokenizer")).encode(texts, 128)
    engine = OnnxRuntimeSession(
        convert(tiny_model / "export" / "float32", ConvertConfig(), tmp_path), SessionSettings()
    )
    plain = run_inference(engine, encoded, batch_size=1, sort_by_length=False)
    sorted_padded = run_inference(engine, encoded, batch_size=16, sort_by_length=True)
    fixed = run_inference(engine, encoded, batch_size=16, sort_by_length=False, fixed_length=128)
    np.testing.assert_allclose(sorted_padded.logits, plain.logits, atol=1e-4)
    np.testing.assert_allclose(fixed.logits, plain.logits, atol=1e-4)
    assert sum(sorted_padded.batch_sizes) == 200 and len(sorted_padded.batch_seconds) == 13


def test_plan_batches_sorts_and_covers_every_sample() -> None:
    batches = plan_batches([5, 1, 4, 2, 3], batch_size=2, sort_by_length=True)
    assert batches == [[1, 3], [4, 2], [0]]
    assert plan_batches([5, 1, 4], batch_size=2, sort_by_length=False) == [[0, 1], [2]]


def test_truncation_is_counted(tiny_model: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model / "tokenizer"))
    encoded = tokenizer.encode(["好" * 300, "好"], max_seq_length=16)
    assert encoded.n_truncated == 1
    assert [len(ids) for ids in encoded.input_ids] == [16, 3]
    assert encoded.input_ids[0][-1] == encoded.input_ids[1][-1]  # still ends with [SEP]


def test_missing_model_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"float32\.json or .*float32\.pdmodel"):
        find_model_files(tmp_path / "float32")
    (tmp_path / "float32.json").write_text("{}")
    with pytest.raises(ModelError, match=r"float32\.pdiparams: parameters file not found"):
        find_model_files(tmp_path / "float32")


def test_missing_tokenizer_folder_gives_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no-such-tokenizer: tokenizer folder not found; set model\."):
        load_tokenizer(str(tmp_path / "no-such-tokenizer"))


def test_label_count_mismatch_is_explained(tiny_model: Path, cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "label.txt").write_text("a\nb\nc\n")
    (data / "dev.txt").write_text("很好\ta\n很差\tb\n")
    (data / "data.txt").write_text("很好\n")
    config = make_config(tiny_model, cache_dir, tmp_path, dataset=DatasetConfig(name="mine", dir=str(data)))
    outcome = run_in_process(config, tmp_path / "job")
    assert outcome.status == "FAILED" and outcome.bug is None
    assert re.search(r"outputs 2 classes but .*label\.txt lists 3 labels", outcome.error)
    client = mlflow.MlflowClient(config.mlflow.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pipeline-test").experiment_id])
    assert run.info.status == "FAILED" and "label.txt lists 3 labels" in run.data.tags["error"]


def test_missing_dataset_folder(tiny_model: Path, cache_dir: Path, tmp_path: Path) -> None:
    config = make_config(
        tiny_model,
        cache_dir,
        tmp_path,
        dataset=DatasetConfig(name="mine", dir=str(tmp_path / "nowhere")),
        mlflow=MlflowConfig(enabled=False),
    )
    outcome = run_in_process(config, tmp_path / "job")
    assert outcome.status == "FAILED" and "nowhere: dataset folder not found" in outcome.error
    assert json.loads((tmp_path / "job" / "job_status.json").read_text())["status"] == "FAILED"
