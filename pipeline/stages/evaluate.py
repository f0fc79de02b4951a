"""The evaluate stage: scores a task's predictions against the gold labels and summarises latency
and memory; the task (pipeline/options/tasks/) decides the label sets, the metrics and the reports."""

from __future__ import annotations

import resource

import numpy as np

from pipeline.core.data import Split
from pipeline.options.tasks import TaskConfig
from pipeline.stages.infer import InferenceResult


def latency_metrics(result: InferenceResult) -> dict[str, float]:
    """The seed's latency plus what it leaves out: percentiles, tokenization, end to end."""
    n = len(result.logits)
    batch_ms = 1000.0 * np.asarray(result.batch_seconds)
    return {
        # The seed's latency: total model time over the split / samples.
        "latency_ms": float(batch_ms.sum() / n),
        # Per batch (ms per call, not per sample): the tail a service sees.
        "batch_latency_p50_ms": float(np.percentile(batch_ms, 50)),
        "batch_latency_p95_ms": float(np.percentile(batch_ms, 95)),
        "batch_latency_p99_ms": float(np.percentile(batch_ms, 99)),
        "throughput_sps": n / result.model_seconds if result.model_seconds > 0 else 0.0,
        "tokenize_ms": 1000.0 * result.tokenize_seconds / n,
        "e2e_ms": 1000.0 * (result.tokenize_seconds + result.model_seconds + result.overhead_seconds) / n,
        # The process's resident memory while the model ran (model, session, batches)...
        "infer_peak_rss_mb": result.infer_peak_rss_bytes / 2**20,
        # ...and the whole job's peak so far (conversion and optimization included).
        "job_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def evaluate(
    task: TaskConfig, result: InferenceResult, predicted: np.ndarray, split: Split
) -> dict[str, float]:
    """The task's metrics of `predicted` (label sets) against the split's gold ones, and latency."""
    return {
        **task.scores(predicted, split.gold, split.labels),
        "n_samples": len(split.inputs),
        "n_truncated": result.n_truncated,
        **latency_metrics(result),
    }
