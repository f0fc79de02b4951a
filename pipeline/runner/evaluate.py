"""mode=evaluate: data + model -> export -> convert -> optimize -> infer -> evaluate, into the job folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.core.cache import cached_artifact, content_key
from pipeline.core.data import Inputs, Split
from pipeline.core.files import atomic_write_text
from pipeline.core.job_folder import METRICS_FILE, PREDICTIONS_FILE, update_job_record
from pipeline.core.tokenizer import Tokenizer
from pipeline.options.config import Config
from pipeline.options.precisions import PRECISIONS
from pipeline.runner.record import add_tags, dataset_record
from pipeline.stages.evaluate import evaluate
from pipeline.stages.infer import check_label_count, run_texts
from pipeline.stages.predict import prediction_lines
from pipeline.stages.prepare import (
    PreparedModel,
    check_vocabulary,
    model_tokenizer,
    open_engine,
    prepare_model,
)


@dataclass(frozen=True)
class EvalData:
    folder: Path
    labels: list[str]
    split: Split
    to_predict: Inputs | None  # data.txt (None with infer.predict_data=false)


def read_eval_data(config: Config) -> EvalData:
    """The eval split and data.txt in the task's format, read (and checked) before any model work."""
    task = config.task
    folder = config.dataset_folder()
    labels = task.read_labels(folder)
    split = task.read_split(folder, config.dataset.eval_split, labels)
    to_predict = task.read_inputs(folder) if config.infer.predict_data else None
    return EvalData(folder, labels, split, to_predict)


def evaluate_job(config: Config, job_dir: Path) -> dict:
    """Runs every stage; writes metrics.json, the class reports and predictions; returns the metrics."""
    data = read_eval_data(config)
    split_file = data.folder / f"{data.split.name}.txt"
    update_job_record(
        job_dir,
        dataset=dataset_record(
            f"{config.dataset.name}/{data.split.name}", split_file, "eval", len(data.split.texts)
        ),
    )
    tokenizer, tokenizer_source = model_tokenizer(config.model, config.infer.tokenizer)
    add_tags(job_dir, tokenizer=tokenizer_source)
    model = prepare_model(config, len(data.labels), tokenizer)
    check_vocabulary(config, model, tokenizer, tokenizer_source)
    record_model(config, job_dir, model, tokenizer_source, data.folder / "label.txt")
    engine = open_engine(config, model.path)

    task = config.task
    result = run_texts(config, data.split.inputs, tokenizer, engine, f"evaluate {data.split.name}")
    check_label_count(result.logits.shape[-1], data.labels, data.folder / "label.txt")
    predicted = task.decide(task.probabilities(result.logits))
    metrics: dict = evaluate(task, result, predicted, data.split)
    metrics["model_size_mb"] = model.size_mb
    metrics["fused_ops"] = model.fused_ops
    reference = (
        predicted
        if config.precision.is_fp32_reference
        else fp32_predictions(config, len(data.labels), data.split.inputs, tokenizer)
    )
    metrics.update(task.compare_with_fp32(predicted, reference, data.split.gold, data.labels))
    metrics.update(config.engine.describe())
    atomic_write_text(job_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    task.write_reports(job_dir, predicted, data.split)
    if data.to_predict is not None:
        predictions = run_texts(config, data.to_predict, tokenizer, engine, "predict data.txt")
        rows = task.output_rows(data.to_predict, task.probabilities(predictions.logits), data.labels)
        atomic_write_text(job_dir / PREDICTIONS_FILE, "".join(prediction_lines(rows)))
    return metrics


def record_model(
    config: Config, job_dir: Path, model: PreparedModel, tokenizer: str, label_file: Path
) -> None:
    """What ran, in job.json: enough to log or serve this model from the folder alone."""
    update_job_record(
        job_dir,
        model={
            "path": str(model.path.absolute()),
            "tokenizer": tokenizer,
            "labels": str(label_file.absolute()),
            "size_mb": model.size_mb,
            # The served model runs on ONNX Runtime: only its jobs can be served.
            "servable": config.engine.name == "onnxruntime",
            "settings": {
                "task": asdict(config.task),
                "batch_size": config.batch_size,
                "max_seq_length": config.max_seq_length,
                "padding": config.infer.padding,
                "tokenizer": config.infer.tokenizer,
                "num_threads": config.device.threads,
            },
        },
    )


def fp32_predictions(config: Config, num_labels: int, inputs: Inputs, tokenizer: Tokenizer) -> np.ndarray:
    """The same engine's FP32 label sets for `inputs`, cached: a precision sweep computes them once."""
    reference = replace(config, precision=PRECISIONS.create("fp32"))
    model = prepare_model(reference, num_labels, tokenizer)
    task = config.task
    key = content_key(
        model=model.identity(),
        engine=config.engine.describe(),
        texts=inputs.texts,
        text_pairs=inputs.text_pairs,
        task=asdict(task),
        max_seq_length=config.max_seq_length,
    )

    def build(out: Path) -> None:
        result = run_texts(reference, inputs, tokenizer, open_engine(reference, model.path), "fp32 reference")
        np.save(out / "predicted.npy", task.decide(task.probabilities(result.logits)))

    folder, _ = cached_artifact(Path(config.cache_dir), "fp32-predictions", key, build)
    return np.load(folder / "predicted.npy")
