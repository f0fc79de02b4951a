"""task=multi_label: one text, any number of labels (a sigmoid per label and a threshold)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core import scores
from pipeline.core.data import LABEL_SEPARATOR, LineFormat, read_label_lines
from pipeline.core.errors import ConfigError, DatasetError
from pipeline.options.tasks.base import TASKS, TaskConfig, rounded


@TASKS.register("multi_label")
@dataclass
class MultiLabelTask(TaskConfig):
    """PaddleNLP's multi_label application: `text<TAB>label,label,...`, scored as its predictor
    scores (sklearn's micro and macro F1 over every label's decisions)."""

    name: str = "multi_label"
    headline_metric: str = "micro_f1"
    # A label is predicted where its probability is at least this (PaddleNLP's predictor: 0.5).
    threshold: float = 0.5
    line_format: ClassVar[LineFormat] = LineFormat(label_list=True)
    single_label: ClassVar[bool] = False
    metric_names: ClassVar[tuple[str, ...]] = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")
    demo_dataset_kind: ClassVar[str] = "aspects"
    demo_model_folder: ClassVar[str] = "demo-model-multi_label"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"task.threshold={self.threshold} must be within (0, 1)")

    def read_labels(self, folder: Path, name: str = "label.txt") -> list[str]:
        lines = read_label_lines(folder, name)
        refuse_separators(lines, Path(folder) / name, self.name)
        return list(lines)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return scores.sigmoid(logits)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= self.threshold

    def scores(self, predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
        return {
            "micro_f1": scores.micro_f1(predicted, gold),
            "macro_f1": scores.macro_f1(predicted, gold),
            "subset_accuracy": scores.accuracy(predicted, gold),
            "hamming_loss": scores.hamming_loss(predicted, gold),
        }

    def outputs(self, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
        decided = self.decide(probabilities)
        return [
            {
                "labels": [label for label, chosen in zip(labels, row_decided, strict=True) if chosen],
                "scores": {label: rounded(p) for label, p in zip(labels, row, strict=True)},
            }
            for row, row_decided in zip(probabilities, decided, strict=True)
        ]


def refuse_separators(lines: dict[str, int], path: Path, task: str) -> None:
    """A label with a comma could never be named on a line, where commas separate the labels."""
    for label, number in lines.items():
        if LABEL_SEPARATOR in label:
            raise DatasetError(
                path,
                f"label {label!r} holds a comma, which separates the labels of a task={task} line; rename it",
                line=number,
            )
