"""Scores predictions against labels and summarises model latency."""

from __future__ import annotations

import numpy as np

from pipeline.infer import InferenceResult


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


def evaluate(result: InferenceResult, gold_label_ids: list[int], n_labels: int) -> dict[str, float]:
    gold = np.asarray(gold_label_ids)
    predicted = result.logits.argmax(axis=-1)
    n = len(gold)
    return {
        "accuracy": accuracy(predicted, gold),
        "macro_f1": macro_f1(predicted, gold, n_labels),
        # The seed's latency: total model time over the split / samples.
        "latency_ms": 1000.0 * result.model_seconds / n,
        "n_samples": n,
    }
