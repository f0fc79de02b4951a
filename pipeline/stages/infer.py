"""The infer stage: tokenize, sort by length, pad per batch, time the model calls, keep input order."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from tqdm import tqdm

from pipeline.core.data import Inputs
from pipeline.core.errors import ModelError
from pipeline.core.measuring import MEASUREMENT
from pipeline.core.tokenizer import Encoded, Tokenizer
from pipeline.options.config import Config, InferConfig
from pipeline.runtimes.base import Engine


@dataclass(frozen=True)
class InferenceResult:
    logits: np.ndarray  # [n_samples, n_labels], in input order
    batch_seconds: list[float]  # model time of each timed batch
    batch_sizes: list[int]
    n_truncated: int = 0
    tokenize_seconds: float = 0.0
    # Padding, feed building and restoring input order: the work around the model calls.
    overhead_seconds: float = 0.0
    # Resident memory of the process, sampled after every model call: what inference itself holds.
    infer_peak_rss_bytes: int = 0

    @property
    def model_seconds(self) -> float:
        return float(sum(self.batch_seconds))


def plan_batches(lengths: list[int], batch_size: int, sort_by_length: bool) -> list[list[int]]:
    """Sample indices per batch; sorted by length so short texts are not padded to long ones."""
    order = (
        sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort_by_length else list(range(len(lengths)))
    )
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(rows: list[list[int]], pad_id: int, width: int | None = None) -> np.ndarray:
    width = width or max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def run_inference(
    engine: Engine,
    encoded: Encoded,
    batch_size: int,
    *,
    sort_by_length: bool = True,
    fixed_length: int | None = None,
    warmup_batches: int = 0,
    desc: str = "infer",
    progress: bool = True,
    tokenize_seconds: float = 0.0,
) -> InferenceResult:
    """Runs every sample once (timed), after `warmup_batches` untimed calls."""
    started = time.perf_counter()
    rows, segments = encoded.input_ids, encoded.token_type_ids
    batches = plan_batches([len(r) for r in rows], batch_size, sort_by_length)
    feeds = [
        engine.feed(
            pad_batch([rows[i] for i in batch], encoded.pad_id, fixed_length),
            encoded.pad_id,
            None if segments is None else pad_batch([segments[i] for i in batch], 0, fixed_length),
        )
        for batch in batches
    ]
    overhead = time.perf_counter() - started
    # Warm up on the largest batches, which allocate the most, so timed calls do not.
    for feed in sorted(feeds, key=lambda f: -f["input_ids"].size)[:warmup_batches]:
        engine.run(feed)
    logits: np.ndarray | None = None
    seconds: list[float] = []
    process = psutil.Process()
    peak_rss = process.memory_info().rss
    loop_started = time.perf_counter()
    # Closed on the way out of an interrupt too, which clears its line: a bar left to the garbage
    # collector stays on the terminal, as a process that exits without collecting never clears it.
    with tqdm(feeds, desc=desc, unit="batch", leave=False, disable=not progress) as bar:
        for batch, feed in zip(batches, bar, strict=True):
            start = time.perf_counter()
            out = engine.run(feed)
            seconds.append(time.perf_counter() - start)
            peak_rss = max(peak_rss, process.memory_info().rss)
            if logits is None:
                logits = np.empty((len(rows), out.shape[-1]), dtype=np.float32)
            logits[batch] = out
    assert logits is not None
    overhead += time.perf_counter() - loop_started - sum(seconds)
    return InferenceResult(
        logits=logits,
        batch_seconds=seconds,
        batch_sizes=[len(b) for b in batches],
        n_truncated=encoded.n_truncated,
        tokenize_seconds=tokenize_seconds,
        overhead_seconds=overhead,
        infer_peak_rss_bytes=peak_rss,
    )


def infer(
    inputs: Inputs,
    tokenizer: Tokenizer,
    engine: Engine,
    options: InferConfig,
    *,
    batch_size: int,
    max_seq_length: int,
    desc: str,
    progress: bool = True,
) -> InferenceResult:
    """Tokenizes `inputs` (texts, or pairs of them) and runs them through `engine` as `options` say;
    logits in input order."""
    started = time.perf_counter()
    encoded = tokenizer.encode(inputs.texts, max_seq_length, inputs.text_pairs)
    tokenize_seconds = time.perf_counter() - started
    return run_inference(
        engine,
        encoded,
        batch_size,
        sort_by_length=options.sort_by_length,
        fixed_length=max_seq_length if options.padding == "max_length" else None,
        warmup_batches=options.warmup_batches,
        desc=desc,
        progress=progress,
        tokenize_seconds=tokenize_seconds,
    )


def run_texts(
    config: Config, inputs: Inputs, tokenizer: Tokenizer, engine: Engine, desc: str
) -> InferenceResult:
    """`infer` with this config's batching and padding, as a job measures it: timed alone in this
    process (pipeline.core.measuring)."""
    with MEASUREMENT:
        return infer(
            inputs,
            tokenizer,
            engine,
            config.infer,
            batch_size=config.batch_size,
            max_seq_length=config.max_seq_length,
            desc=desc,
        )


def check_label_count(n_outputs: int, labels: list[str], label_file: Path) -> None:
    """A model trained for another label set says so before its predictions are written."""
    if n_outputs != len(labels):
        raise ModelError(f"the model outputs {n_outputs} classes but {label_file} lists {len(labels)} labels")
