"""task=multi_class: one text, one of several classes (softmax, argmax): the seed's task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core import scores
from pipeline.core.data import Split
from pipeline.core.job_folder import CONFUSION_FILE
from pipeline.core.plots import heatmap
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
        heatmap(out_dir / CONFUSION_FILE, matrix.tolist(), split.labels, x_label="predicted", y_label="gold")
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
