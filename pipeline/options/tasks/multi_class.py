"""task=multi_class: one text, one of several classes (softmax, argmax): the seed's task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core import scores
from pipeline.core.data import Split
from pipeline.core.job_folder import CONFUSION_FILE
from pipeline.core.plots import new_figure, save_figure
from pipeline.options.tasks.base import TASKS, TaskConfig, rounded


@TASKS.register("multi_class")
@dataclass
class MultiClassTask(TaskConfig):
    """PaddleNLP's multi_class application: `text<TAB>label`."""

    name: str = "multi_class"
    headline_metric: str = "accuracy"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return scores.softmax(logits)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        predicted = np.zeros(probabilities.shape, dtype=bool)
        predicted[np.arange(len(probabilities)), probabilities.argmax(axis=-1)] = True
        return predicted

    def scores(self, predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
        return {"accuracy": scores.accuracy(predicted, gold), "macro_f1": scores.macro_f1(predicted, gold)}

    def write_reports(self, out_dir: Path, predicted: np.ndarray, split: Split) -> list[Path]:
        """The per-class report and the confusion matrix (gold x predicted)."""
        written = super().write_reports(out_dir, predicted, split)
        matrix = scores.confusion_matrix(predicted, split.gold)
        plot_confusion_matrix(matrix, split.labels, out_dir / CONFUSION_FILE)
        return [*written, out_dir / CONFUSION_FILE]

    def outputs(self, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
        best = probabilities.argmax(axis=-1)
        return [
            {"label": labels[int(b)], "confidence": rounded(row[b])}
            for b, row in zip(best, probabilities, strict=True)
        ]

    def served_outputs(self, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
        """{label, confidence} and every label's probability as prob_<label>."""
        return [
            {**out, **{f"prob_{label}": float(p) for label, p in zip(labels, row, strict=True)}}
            for out, row in zip(self.outputs(probabilities, labels), probabilities, strict=True)
        ]


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
