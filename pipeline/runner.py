"""mode=evaluate as a list of stages: data + model -> export -> convert -> optimize -> infer -> evaluate.

Each stage is a public function with typed inputs and results, so scripts (bench/) and tests
call exactly what a job runs.
"""

from __future__ import annotations

import json
import logging
import random
import resource
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.cache import atomic_write_text, cached_artifact, content_key
from pipeline.config import DEMO_MODEL_DIR, Config, ModelConfig
from pipeline.data import Split, read_labels, read_split, read_texts
from pipeline.demo.data import demo_dataset
from pipeline.engines import Engine
from pipeline.engines.base import feed_for, graph_input_names
from pipeline.errors import DatasetError, ModelError
from pipeline.job_files import CONFIG_FILE, CONFUSION_FILE, METRICS_FILE, PER_CLASS_FILE, PREDICTIONS_FILE
from pipeline.precisions import PRECISIONS, OptimizeInputs
from pipeline.serving.registry import check_servable, log_served_model, servable
from pipeline.stages.convert import convert, find_model_files, graph_vocab_size
from pipeline.stages.evaluate import evaluate
from pipeline.stages.export import static_graph
from pipeline.stages.infer import InferenceResult, infer, pad_batch
from pipeline.stages.optimize import optimize
from pipeline.stages.predict import (
    Chunk,
    InputPlan,
    PartPredictor,
    PredictorSpec,
    count_rows,
    finish,
    manifest,
    plan_input,
    prediction_lines,
    prepare_output,
)
from pipeline.tokenizer import Tokenizer, load_tokenizer
from pipeline.tracking.mlflow_runs import JOB_DIR_TAG, environment_tags, tracked_run
from pipeline.tracking.reports import confusion_matrix, per_class_markdown, plot_confusion_matrix
from pipeline.tracking.run_process import RunProcess

log = logging.getLogger(__name__)


def dataset_dir(config: Config) -> Path:
    if config.dataset.dir is None:
        return demo_dataset(Path(config.cache_dir))
    folder = Path(config.dataset.dir)
    expected = "expected a folder with label.txt, dev.txt/test.txt, data.txt"
    if folder.is_file():
        raise DatasetError(folder, f"dataset.dir is a file; {expected}")
    if not folder.is_dir():
        raise DatasetError(folder, f"dataset folder not found; {expected}")
    return folder


def serving_tokenizer(model: ModelConfig, kind: str) -> tuple[Tokenizer, str]:
    """The model's tokenizer and the folder or name it was loaded from.

    With random weights only the ids' range matters, so where the model's own tokenizer
    cannot be had (a PaddleNLP name offline) the demo tokenizer serves: its ids fit every vocab.
    """
    try:
        return load_tokenizer(model.name_or_path, kind), model.name_or_path
    except ModelError as exc:
        if model.weights != "random":
            raise
        log.warning("%s -- random weights: the demo tokenizer serves instead", exc)
        fallback = str(DEMO_MODEL_DIR / "tokenizer")
        return load_tokenizer(fallback, kind), fallback


@dataclass(frozen=True)
class PreparedModel:
    path: Path  # what the engine opens: an ONNX file, or a Paddle static-graph prefix
    fused_ops: dict[str, int]
    size_mb: float
    vocab_size: int | None  # rows of its word-embedding table, where the graph shows them

    def identity(self) -> list[Path]:
        """The files whose content is this model (for cache keys)."""
        if self.path.is_file():
            return [self.path]
        files = find_model_files(self.path)
        return [files.graph, files.params]


def prepare_model(config: Config, num_labels: int, tokenizer: Tokenizer) -> PreparedModel:
    """export (where needed) -> convert -> optimize, each cached by content, as the engine reads it."""
    cache_dir = Path(config.cache_dir)
    prefix = static_graph(config.model, num_labels, tokenizer.pad_id, cache_dir)
    if config.engine.reads == "paddle":
        files = find_model_files(prefix)
        return PreparedModel(Path(prefix), {}, files.params.stat().st_size / 2**20, None)
    onnx_path = convert(prefix, config.convert, cache_dir)
    inputs = (
        OptimizeInputs(calibration_feeds=calibration_feeds(config, tokenizer, onnx_path))
        if config.precision.needs_calibration
        else None
    )
    fusion = config.optimize.fusion and not config.engine.fuses_itself
    optimized = optimize(onnx_path, config.precision, fusion=fusion, cache_dir=cache_dir, inputs=inputs)
    log.info("model to run: %s (fused ops %s)", optimized.path, optimized.fused_ops)
    return PreparedModel(optimized.path, optimized.fused_ops, optimized.size_mb, graph_vocab_size(onnx_path))


def calibration_feeds(config: Config, tokenizer: Tokenizer, onnx_path: Path) -> list[dict[str, np.ndarray]]:
    """Batches of train-split texts (a fixed random sample) fed as the engine would feed them."""
    data_dir = dataset_dir(config)
    train = read_split(data_dir, "train", read_labels(data_dir))
    count = min(config.precision.calibration_samples, len(train.texts))
    texts = random.Random(0).sample(train.texts, count)
    encoded = tokenizer.encode(texts, config.max_seq_length)
    names = graph_input_names(onnx_path)
    rows = encoded.input_ids
    # Every batch has one shape (the remainder of whole batches is left out): ONNX Runtime's
    # entropy and percentile calibrators stack each tensor's values across batches.
    width = max(len(row) for row in rows)
    size = min(config.batch_size, len(rows))
    return [
        feed_for(names, pad_batch(rows[start : start + size], encoded.pad_id, width), encoded.pad_id)
        for start in range(0, len(rows) - len(rows) % size, size)
    ]


def check_vocabulary(
    config: Config, model: PreparedModel, tokenizer: Tokenizer, tokenizer_source: str
) -> None:
    """A tokenizer from another model gives ids the model has no embedding for: say so before inference."""
    if model.vocab_size is not None and tokenizer.vocab_size > model.vocab_size:
        weights = config.model.path_prefix if config.model.weights == "export" else config.model.weights
        raise ModelError(
            f"the tokenizer {tokenizer_source} has {tokenizer.vocab_size} tokens but the model ({weights}) "
            f"embeds only {model.vocab_size}: the tokenizer folder belongs to another model; set "
            "model.name_or_path to the model's own tokenizer"
        )


def open_engine(config: Config, model_path: Path) -> Engine:
    return config.engine.open(
        model_path,
        config.device,
        config.precision,
        max_batch=config.batch_size,
        max_length=config.max_seq_length,
    )


def run_texts(
    config: Config, texts: list[str], tokenizer: Tokenizer, engine: Engine, desc: str
) -> InferenceResult:
    """The infer stage with this config's batching and padding."""
    return infer(
        texts,
        tokenizer,
        engine,
        config.infer,
        batch_size=config.batch_size,
        max_seq_length=config.max_seq_length,
        desc=desc,
    )


def check_label_count(result: InferenceResult, labels: list[str], label_file: Path) -> None:
    if result.logits.shape[-1] != len(labels):
        raise ModelError(
            f"the model outputs {result.logits.shape[-1]} classes but {label_file} lists {len(labels)} labels"
        )


def fp32_predictions(config: Config, num_labels: int, texts: list[str], tokenizer: Tokenizer) -> np.ndarray:
    """The same engine's FP32 predicted labels for `texts`, cached: a precision sweep computes them once."""
    reference = replace(config, precision=PRECISIONS.create("fp32"))
    model = prepare_model(reference, num_labels, tokenizer)
    key = content_key(
        model=model.identity(),
        engine=config.engine.describe(),
        texts=texts,
        max_seq_length=config.max_seq_length,
    )

    def build(out: Path) -> None:
        result = run_texts(reference, texts, tokenizer, open_engine(reference, model.path), "fp32 reference")
        np.save(out / "predicted.npy", result.logits.argmax(axis=-1))

    folder, _ = cached_artifact(Path(config.cache_dir), "fp32-predictions", key, build)
    return np.load(folder / "predicted.npy")


def compare_with_fp32(predicted: np.ndarray, reference: np.ndarray, split: Split) -> dict[str, float]:
    gold = np.asarray(split.label_ids)
    return {
        "agreement_vs_fp32": float(np.mean(predicted == reference)),
        "accuracy_delta_vs_fp32": float(np.mean(predicted == gold)) - float(np.mean(reference == gold)),
    }


def write_predictions(path: Path, texts: list[str], result: InferenceResult, labels: list[str]) -> None:
    atomic_write_text(path, "".join(prediction_lines([{"text": t} for t in texts], result.logits, labels)))


def write_class_reports(output_dir: Path, predicted: np.ndarray, split: Split) -> list[Path]:
    matrix = confusion_matrix(predicted, np.asarray(split.label_ids), len(split.labels))
    atomic_write_text(output_dir / PER_CLASS_FILE, per_class_markdown(matrix, split.labels))
    plot_confusion_matrix(matrix, split.labels, output_dir / CONFUSION_FILE)
    return [output_dir / PER_CLASS_FILE, output_dir / CONFUSION_FILE]


def run_experiment(
    config: Config,
    output_dir: Path,
    composed_yaml: str,
    run_name: str,
    parent_run_id: str | None = None,
    register: bool = True,
    tracking_helper: RunProcess | None = None,
) -> dict:
    """Runs every stage and returns the metrics also written to `output_dir/metrics.json`.

    With mlflow.registered_model_name, the model is logged as a pyfunc model, and registered
    where `register` (a sweep registers only its winner).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / CONFIG_FILE, composed_yaml)
    engine_tags = config.engine.describe()
    tags = {
        "model": config.model.name,
        "dataset": config.dataset.name,
        "weights": config.model.weights,
        # Random weights: latency is real, accuracy is chance.
        "accuracy_meaningful": str(config.model.weights != "random").lower(),
        JOB_DIR_TAG: str(output_dir.absolute()),
        **engine_tags,
        **environment_tags(),
    }
    with tracked_run(
        config.mlflow, run_name, asdict(config), tags, parent_run_id, tracking_helper
    ) as tracking:
        data_dir = dataset_dir(config)
        labels = read_labels(data_dir)
        eval_split = read_split(data_dir, config.dataset.eval_split, labels)
        texts = read_texts(data_dir) if config.infer.predict_data else []

        tokenizer, tokenizer_source = serving_tokenizer(config.model, config.infer.tokenizer)
        if config.mlflow.registered_model_name and register:
            check_servable(config)
        if tracking is not None:
            tracking.set_tags({"tokenizer": tokenizer_source})
        model = prepare_model(config, len(labels), tokenizer)
        check_vocabulary(config, model, tokenizer, tokenizer_source)
        engine = open_engine(config, model.path)

        result = run_texts(config, eval_split.texts, tokenizer, engine, f"evaluate {eval_split.name}")
        check_label_count(result, labels, data_dir / "label.txt")
        metrics: dict = evaluate(result, eval_split.label_ids, len(labels))
        metrics["model_size_mb"] = model.size_mb
        metrics["fused_ops"] = model.fused_ops
        predicted = result.logits.argmax(axis=-1)
        reference = (
            predicted
            if config.precision.is_fp32_reference
            else fp32_predictions(config, len(labels), eval_split.texts, tokenizer)
        )
        metrics.update(compare_with_fp32(predicted, reference, eval_split))
        metrics.update(engine_tags)
        atomic_write_text(output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")

        artifacts = [output_dir / METRICS_FILE, output_dir / CONFIG_FILE]
        artifacts += write_class_reports(output_dir, predicted, eval_split)
        if config.infer.predict_data:
            predictions = run_texts(config, texts, tokenizer, engine, "predict data.txt")
            write_predictions(output_dir / PREDICTIONS_FILE, texts, predictions, labels)
            artifacts.append(output_dir / PREDICTIONS_FILE)

        if tracking is not None:
            tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
            tracking.log_metrics({f"fused_ops.{op}": n for op, n in model.fused_ops.items()})
            for path in artifacts:
                tracking.log_artifact(path)
            if config.mlflow.registered_model_name and servable(config):
                name = config.mlflow.registered_model_name if register else None
                version = log_served_model(
                    config,
                    tracking.run_id,
                    model.path,
                    tokenizer_source,
                    data_dir / "label.txt",
                    eval_split.texts,
                    name,
                )
                if version:
                    metrics["registered_version"] = version
                    print(f"registered {name} version {version}: models:/{name}/{version}")
    return metrics


def predict_labels(config: Config) -> tuple[list[str], Path]:
    """The class names for mode=predict: predict.labels, else the dataset's label.txt."""
    if config.predict.labels:
        path = Path(config.predict.labels)
        return read_labels(path.parent, path.name), path
    data_dir = dataset_dir(config)
    return read_labels(data_dir), data_dir / "label.txt"


def run_prediction(
    config: Config,
    output_dir: Path,
    composed_yaml: str,
    run_name: str,
    parent_run_id: str | None = None,
    tracking_helper: RunProcess | None = None,
) -> dict:
    """mode=predict: predict.input -> predict.output (part files, _SUCCESS); returns its metrics."""
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / CONFIG_FILE, composed_yaml)
    options = config.predict
    target = Path(options.output) if options.output else output_dir / "predictions"
    tags = {"mode": "predict", "model": config.model.name, "predict_output": str(target.absolute())}
    tags[JOB_DIR_TAG] = str(output_dir.absolute())
    tags |= config.engine.describe() | environment_tags()
    with tracked_run(
        config.mlflow, run_name, asdict(config), tags, parent_run_id, tracking_helper
    ) as tracking:
        labels, label_file = predict_labels(config)
        plan = plan_input(Path(options.input), options.chunk_lines, options.on_error)
        tokenizer, tokenizer_source = serving_tokenizer(config.model, config.infer.tokenizer)
        model = prepare_model(config, len(labels), tokenizer)
        check_vocabulary(config, model, tokenizer, tokenizer_source)
        spec = PredictorSpec(model.path, tokenizer_source, config, labels)
        done = prepare_output(target, manifest(plan, spec, options), options.overwrite)
        pending = [chunk for chunk in plan.chunks if chunk.index not in done]
        log.info(
            "predicting %s: %d lines, %d parts to do (%d done before)",
            plan.path,
            plan.n_lines,
            len(pending),
            len(done),
        )
        started = time.perf_counter()
        if options.engine == "ray":
            from pipeline.stages.predict_ray import predict_on_ray

            worker_rss = predict_on_ray(spec, plan, pending, target, label_file)
        else:
            worker_rss = predict_locally(spec, plan, pending, target, label_file)
        seconds = time.perf_counter() - started
        rows = count_rows(target)
        new_rows = sum(chunk.n_lines - len(chunk.bad_lines) for chunk in pending)
        metrics = {
            "rows": rows,
            "input_lines": plan.n_lines,
            "skipped_lines": plan.skipped_lines,
            "parts": len(plan.chunks),
            "parts_resumed": len(done),
            "wall_s": seconds,
            "lines_per_s": new_rows / seconds if seconds > 0 else 0.0,
            "peak_rss_mb": max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, *worker_rss]),
        }
        finish(target, {**metrics, "output": str(target.absolute())})
        atomic_write_text(output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
        if tracking is not None:
            tracking.log_metrics(metrics)
            tracking.log_artifact(output_dir / METRICS_FILE)
    return {**metrics, "output": str(target.absolute())}


def predict_locally(
    spec: PredictorSpec, plan: InputPlan, pending: list[Chunk], target: Path, label_file: Path
) -> list[float]:
    """Every pending part in this process, in order; returns this process's peak RSS (MB)."""
    predictor = PartPredictor(spec, label_file)
    with tqdm(total=sum(c.n_lines for c in pending), unit="line", desc="predict", smoothing=0.1) as bar:
        for chunk in pending:
            predictor.predict_chunk(plan.path, chunk, target)
            bar.update(chunk.n_lines)
    return []
