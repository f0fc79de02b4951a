"""The evaluate stage: scores predictions against labels, compares them with FP32's, summarises
latency and memory, and writes the per-class report and confusion matrix."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import numpy as np

from pipeline.core.data import Split
from pipeline.core.files import atomic_write_text
from pipeline.core.job_folder import CONFUSION_FILE, PER_CLASS_FILE, PER_CLASS_TABLE
from pipeline.core.plots import new_figure, save_figure
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


def compare_with_fp32(predicted: np.ndarray, reference: np.ndarray, split: Split) -> dict[str, float]:
    """How often this model agrees with the FP32 model, and the accuracy it gains or loses."""
    gold = np.asarray(split.label_ids)
    return {
        "agreement_vs_fp32": float(np.mean(predicted == reference)),
        "accuracy_delta_vs_fp32": float(np.mean(predicted == gold)) - float(np.mean(reference == gold)),
    }


def confusion_matrix(predicted: np.ndarray, gold: np.ndarray, n_labels: int) -> np.ndarray:
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (gold, predicted), 1)
    return matrix


def per_class_rows(matrix: np.ndarray, labels: list[str]) -> list[dict[str, object]]:
    """Precision, recall, F1 and support per label, from a gold x predicted confusion matrix."""
    rows: list[dict[str, object]] = []
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i, :].sum() if matrix[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support = int(matrix[i, :].sum())
        rows.append(
            {
                "label": label,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": support,
            }
        )
    return rows


def per_class_markdown(matrix: np.ndarray, labels: list[str]) -> str:
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for row in per_class_rows(matrix, labels):
        scores = " | ".join(f"{row[key]:.4f}" for key in ("precision", "recall", "f1"))
        lines.append(f"| {row['label']} | {scores} | {row['support']} |")
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    figure, axes = new_figure(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", color="black")
    save_figure(figure, path)


def write_class_reports(output_dir: Path, predicted: np.ndarray, split: Split) -> list[Path]:
    """per_class.md (for people), per_class.json (for tables) and confusion_matrix.png in `output_dir`."""
    matrix = confusion_matrix(predicted, np.asarray(split.label_ids), len(split.labels))
    atomic_write_text(output_dir / PER_CLASS_FILE, per_class_markdown(matrix, split.labels))
    rows = per_class_rows(matrix, split.labels)
    atomic_write_text(output_dir / PER_CLASS_TABLE, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    plot_confusion_matrix(matrix, split.labels, output_dir / CONFUSION_FILE)
    return [output_dir / PER_CLASS_FILE, output_dir / PER_CLASS_TABLE, output_dir / CONFUSION_FILE]
