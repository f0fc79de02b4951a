"""One experiment: data + model -> convert -> infer -> evaluate -> files and MLflow."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.cache import atomic_write_text, cached_artifact, content_key
from pipeline.config import PROJECT_ROOT, Config, ModelConfig, PrecisionConfig
from pipeline.convert import convert
from pipeline.data import read_labels, read_split, read_texts
from pipeline.demo_data import demo_dataset
from pipeline.engine import Engine
from pipeline.errors import DatasetError, ModelError
from pipeline.evaluate import evaluate
from pipeline.export import static_graph
from pipeline.infer import InferenceResult, run_inference, softmax
from pipeline.optimize import optimize
from pipeline.reports import confusion_matrix, per_class_markdown, plot_confusion_matrix
from pipeline.tokenizer import Tokenizer, load_tokenizer
from pipeline.tracking import environment_tags, tracked_run

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
CONFIG_FILE = "config.yaml"
PER_CLASS_FILE = "per_class.md"
CONFUSION_FILE = "confusion_matrix.png"
DEMO_TOKENIZER = PROJECT_ROOT / "assets" / "demo-model" / "tokenizer"


def dataset_dir(config: Config) -> Path:
    if config.dataset.dir is None:
        return demo_dataset(Path(config.cache_dir))
    folder = Path(config.dataset.dir)
    if not folder.is_dir():
        raise DatasetError(folder, "dataset folder not found; expected label.txt, dev.txt/test.txt, data.txt")
    return folder


def serving_tokenizer(model: ModelConfig, kind: str) -> tuple[Tokenizer, str]:
    """The model's tokenizer and where it came from.

    With random weights only the ids' range matters, so where the model's own tokenizer
    cannot be had (a PaddleNLP name offline) the demo tokenizer serves: its ids fit every vocab.
    """
    try:
        return load_tokenizer(model.name_or_path, kind), model.name_or_path
    except ModelError as exc:
        if model.weights != "random":
            raise
        log.warning("%s -- random weights: the demo tokenizer serves instead", exc)
        return load_tokenizer(str(DEMO_TOKENIZER), kind), "demo (fallback)"


def write_predictions(path: Path, texts: list[str], result: InferenceResult, labels: list[str]) -> None:
    probabilities = softmax(result.logits)
    best = probabilities.argmax(axis=-1)
    lines = [
        json.dumps(
            {"text": text, "label": labels[int(b)], "confidence": round(float(p[b]), 6)},
            ensure_ascii=False,
        )
        for text, b, p in zip(texts, best, probabilities, strict=True)
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def fp32_predictions(
    config: Config, onnx_path: Path, texts: list[str], infer: Callable[..., InferenceResult]
) -> np.ndarray:
    """The FP32 model's predicted labels for `texts`, cached: a precision sweep computes them once."""
    reference = optimize(
        onnx_path, PrecisionConfig(name="fp32"), config.optimize.fusion, Path(config.cache_dir)
    )
    key = content_key(model=reference.path, texts=texts, max_seq_length=config.max_seq_length)

    def build(out: Path) -> None:
        result = infer(
            texts,
            "fp32 reference",
            Engine(reference.path, config.device, config.batch_size, config.max_seq_length),
        )
        np.save(out / "predicted.npy", result.logits.argmax(axis=-1))

    folder, _ = cached_artifact(Path(config.cache_dir), "fp32-predictions", key, build)
    return np.load(folder / "predicted.npy")


def run_experiment(
    config: Config, output_dir: Path, composed_yaml: str, run_name: str, parent_run_id: str | None = None
) -> dict:
    """Runs every stage and returns the metrics also written to `output_dir/metrics.json`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / CONFIG_FILE, composed_yaml)
    tags = {
        "model": config.model.name,
        "dataset": config.dataset.name,
        "weights": config.model.weights,
        # Random weights: latency is real, accuracy is chance.
        "accuracy_meaningful": str(config.model.weights != "random").lower(),
        **environment_tags(),
    }
    with tracked_run(config.mlflow, run_name, asdict(config), tags, parent_run_id) as tracking:
        data_dir = dataset_dir(config)
        labels = read_labels(data_dir)
        eval_split = read_split(data_dir, config.dataset.eval_split, labels)

        tokenizer, tokenizer_source = serving_tokenizer(config.model, config.infer.tokenizer)
        if tracking is not None:
            tracking.set_tags({"tokenizer": tokenizer_source})
        onnx_path = convert(
            static_graph(config.model, len(labels), tokenizer.pad_id, Path(config.cache_dir)),
            config.convert.opset,
            config.convert.onnx_checker,
            Path(config.cache_dir),
        )
        optimized = optimize(onnx_path, config.precision, config.optimize.fusion, Path(config.cache_dir))
        log.info("model to run: %s (fused ops %s)", optimized.path, optimized.fused_ops)
        engine = Engine(optimized.path, config.device, config.batch_size, config.max_seq_length)

        def infer(texts: list[str], desc: str, engine: Engine = engine) -> InferenceResult:
            started = time.perf_counter()
            encoded = tokenizer.encode(texts, config.max_seq_length)
            tokenize_seconds = time.perf_counter() - started
            fixed = config.max_seq_length if config.infer.padding == "max_length" else None
            result = run_inference(
                engine,
                encoded,
                config.batch_size,
                sort_by_length=config.infer.sort_by_length,
                fixed_length=fixed,
                warmup_batches=config.infer.warmup_batches,
                desc=desc,
                tokenize_seconds=tokenize_seconds,
            )
            if result.logits.shape[-1] != len(labels):
                raise ModelError(
                    f"the model outputs {result.logits.shape[-1]} classes but "
                    f"{data_dir / 'label.txt'} lists {len(labels)} labels"
                )
            return result

        result = infer(eval_split.texts, f"evaluate {eval_split.name}")
        metrics = evaluate(result, eval_split.label_ids, len(labels))
        metrics["model_size_mb"] = optimized.size_mb
        metrics["fused_ops"] = optimized.fused_ops
        predicted = result.logits.argmax(axis=-1)
        if config.precision.name == "fp32":
            reference = predicted
        else:
            reference = fp32_predictions(config, onnx_path, eval_split.texts, infer)
        gold = np.asarray(eval_split.label_ids)
        metrics["agreement_vs_fp32"] = float(np.mean(predicted == reference))
        metrics["accuracy_delta_vs_fp32"] = metrics["accuracy"] - float(np.mean(reference == gold))
        atomic_write_text(output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")

        matrix = confusion_matrix(predicted, gold, len(labels))
        atomic_write_text(output_dir / PER_CLASS_FILE, per_class_markdown(matrix, labels))
        plot_confusion_matrix(matrix, labels, output_dir / CONFUSION_FILE)
        artifacts = [output_dir / n for n in (METRICS_FILE, CONFIG_FILE, PER_CLASS_FILE, CONFUSION_FILE)]
        if config.infer.predict_data:
            texts = read_texts(data_dir)
            predictions = infer(texts, "predict data.txt")
            write_predictions(output_dir / PREDICTIONS_FILE, texts, predictions, labels)
            artifacts.append(output_dir / PREDICTIONS_FILE)

        if tracking is not None:
            tracking.log_metrics({k: v for k, v in metrics.items() if np.isscalar(v)})
            tracking.log_metrics({f"fused_ops.{op}": n for op, n in optimized.fused_ops.items()})
            for path in artifacts:
                tracking.log_artifact(path)
    return metrics
