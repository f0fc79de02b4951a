"""The model a job runs, prepared as its engine reads it: tokenizer, export -> convert -> optimize
(each cached by content), checked against the tokenizer, and opened in the engine."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import DEMO_MODEL_DIR
from pipeline.core import interrupts
from pipeline.core.errors import ModelError
from pipeline.core.model_files import find_model_files
from pipeline.core.tokenizer import Tokenizer, load_tokenizer
from pipeline.options.config import Config, ModelConfig
from pipeline.options.precisions import OptimizeInputs
from pipeline.runtimes.base import Engine, feed_for, graph_input_names
from pipeline.stages.convert import convert, graph_vocab_size
from pipeline.stages.export import static_graph
from pipeline.stages.infer import pad_batch
from pipeline.stages.optimize import optimize

log = logging.getLogger(__name__)


def model_tokenizer(model: ModelConfig, kind: str) -> tuple[Tokenizer, str]:
    """The model's tokenizer and the folder or name it was loaded from.

    With random weights only the ids' range matters, so where the model's own tokenizer
    cannot be had (a PaddleNLP name offline) the demo tokenizer serves: its ids fit every vocab.
    """
    try:
        return _load_tokenizer(model.name_or_path, kind), model.name_or_path
    except ModelError as exc:
        if model.weights != "random":
            raise
        log.warning("%s -- random weights: the demo tokenizer serves instead", exc)
        fallback = str(DEMO_MODEL_DIR / "tokenizer")
        return _load_tokenizer(fallback, kind), fallback


def _load_tokenizer(name_or_path: str, kind: str) -> Tokenizer:
    try:
        return load_tokenizer(name_or_path, kind)
    finally:
        # PaddleNLP's tokenizer imports paddlenlp, which resets SIGTERM (pipeline.core.interrupts).
        interrupts.reclaim_signals()


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
    data_dir = config.dataset_folder()
    task = config.task
    train = task.read_split(data_dir, "train", task.read_labels(data_dir))
    count = min(config.precision.calibration_samples, len(train.inputs))
    sample = train.inputs.subset(random.Random(0).sample(range(len(train.inputs)), count))
    encoded = tokenizer.encode(sample.texts, config.max_seq_length, sample.text_pairs)
    names = graph_input_names(onnx_path)
    rows, segments = encoded.input_ids, encoded.token_type_ids
    # Every batch has one shape (the remainder of whole batches is left out): ONNX Runtime's
    # entropy and percentile calibrators stack each tensor's values across batches.
    width = max(len(row) for row in rows)
    size = min(config.batch_size, len(rows))
    return [
        feed_for(
            names,
            pad_batch(rows[start : start + size], encoded.pad_id, width),
            encoded.pad_id,
            None if segments is None else pad_batch(segments[start : start + size], 0, width),
        )
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
    """The model opened in the job's engine; a model the task cannot feed is refused here."""
    engine = config.engine.open(
        model_path,
        config.device,
        config.precision,
        max_batch=config.batch_size,
        max_length=config.max_seq_length,
    )
    weights = config.model.path_prefix if config.model.weights == "export" else str(model_path)
    if problem := config.task.check_graph_inputs(engine.input_names, f"the model {weights}"):
        raise ModelError(problem)
    return engine
