"""Scores of predicted label sets against gold ones, as sklearn computes them.

Every task's predictions and gold labels are boolean matrices, one row per sample and one column
per label: a multi-class sample has exactly one True, a multi-label sample any number.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class LabelScores(TypedDict):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 per element; 0 where a label was neither predicted nor gold (sklearn's zero_division)."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)


def _counts(predicted: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.sum(predicted & gold, axis=0)
    fp = np.sum(predicted & ~gold, axis=0)
    fn = np.sum(~predicted & gold, axis=0)
    return tp, fp, fn


def macro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Unweighted mean F1 over labels; a label absent from both counts as F1 0, as sklearn does."""
    if predicted.shape[1] == 0:
        return 0.0
    return float(np.mean(_f1(*_counts(predicted, gold))))


def micro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    """F1 of all (sample, label) decisions pooled."""
    tp, fp, fn = (np.sum(count) for count in _counts(predicted, gold))
    return float(_f1(np.array(tp), np.array(fp), np.array(fn)))


def accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    """The share of samples whose predicted label set is exactly the gold one (subset accuracy)."""
    return float(np.mean(np.all(predicted == gold, axis=1))) if len(gold) else 0.0


def hamming_loss(predicted: np.ndarray, gold: np.ndarray) -> float:
    """The share of (sample, label) decisions that are wrong."""
    return float(np.mean(predicted != gold)) if gold.size else 0.0


def per_label_rows(predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> list[LabelScores]:
    """Precision, recall, F1 and support (gold samples) per label."""
    tp, fp, fn = _counts(predicted, gold)
    precision = np.divide(tp, tp + fp, out=np.zeros(tp.shape, dtype=float), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(tp.shape, dtype=float), where=tp + fn > 0)
    f1 = _f1(tp, fp, fn)
    return [
        {
            "label": label,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(tp[i] + fn[i]),
        }
        for i, label in enumerate(labels)
    ]


def per_label_markdown(rows: list[LabelScores]) -> str:
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for row in rows:
        scores = " | ".join(f"{value:.4f}" for value in (row["precision"], row["recall"], row["f1"]))
        lines.append(f"| {row['label']} | {scores} | {row['support']} |")
    return "\n".join(lines) + "\n"


def confusion_matrix(predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Gold class x predicted class counts, for single-label predictions."""
    n_labels = gold.shape[1]
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (gold.argmax(axis=1), predicted.argmax(axis=1)), 1)
    return matrix


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    # The tanh form cannot overflow, whatever the logit.
    return 0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))
