"""The evaluate stage: scores predictions against labels and summarises latency and memory."""

from __future__ import annotations

import resource

import numpy as np

from pipeline.stages.infer import InferenceResult


def accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(predicted == gold)) if len(gold) else 0.0


def macro_f1(predicted: np.ndarray, gold: np.ndarray, n_labels: int) -> float:
    """Unweighted mean F1 over labels; a label absent from both counts as F1 0, as sklearn does."""
    scores = []
    for label in range(n_labels):
        tp = int(np.sum((predicted == label) & (gold == label)))
        fp = int(np.sum((predicted == label) & (gold != label)))
        fn = int(np.sum((predicted != label) & (gold == label)))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


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


def evaluate(result: InferenceResult, gold_label_ids: list[int], n_labels: int) -> dict[str, float]:
    gold = np.asarray(gold_label_ids)
    predicted = result.logits.argmax(axis=-1)
    return {
        "accuracy": accuracy(predicted, gold),
        "macro_f1": macro_f1(predicted, gold, n_labels),
        "n_samples": len(gold),
        "n_truncated": result.n_truncated,
        **latency_metrics(result),
    }
