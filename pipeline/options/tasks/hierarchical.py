"""task=hierarchical: one text, a path of labels per level (`正面`, `正面##物流`), a sigmoid per node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.core import scores
from pipeline.core.data import Split, read_label_lines, read_split
from pipeline.core.errors import DatasetError
from pipeline.options.tasks.base import TASKS
from pipeline.options.tasks.multi_label import MultiLabelTask, refuse_separators

PATH_SEPARATOR = "##"


def parent(label: str) -> str | None:
    return label.rsplit(PATH_SEPARATOR, 1)[0] if PATH_SEPARATOR in label else None


def level(label: str) -> int:
    """1 for a root (`正面`), 2 for its children (`正面##物流`), ..."""
    return label.count(PATH_SEPARATOR) + 1


def missing_parent(labels: list[str]) -> str | None:
    """Why a line's labels are not whole paths (a node listed without its parent), or None."""
    present = set(labels)
    for label in labels:
        up = parent(label)
        if up is not None and up not in present:
            return f"label {label!r} is listed without its parent {up!r} (a line lists one path per level)"
    return None


@TASKS.register("hierarchical")
@dataclass
class HierarchicalTask(MultiLabelTask):
    """PaddleNLP's hierarchical application: label.txt lists every node as its path; each node has
    its own sigmoid, so a child can be predicted without its parent (docs/tasks.md): it is kept as
    predicted, as PaddleNLP's predictor keeps it, and the parent's level counts it as missed."""

    name: str = "hierarchical"
    metric_names: ClassVar[tuple[str, ...]] = MultiLabelTask.metric_names
    demo_dataset_kind: ClassVar[str] = "aspect_tree"
    demo_model_folder: ClassVar[str] = "demo-model-hierarchical"

    def read_labels(self, folder: Path, name: str = "label.txt") -> list[str]:
        lines = read_label_lines(folder, name)
        refuse_separators(lines, Path(folder) / name, self.name)
        for label, number in lines.items():
            if "" in label.split(PATH_SEPARATOR):
                raise DatasetError(
                    Path(folder) / name,
                    f"label {label!r} has an empty node (a node is its path, names joined by ##: 负面##价格)",
                    line=number,
                )
            up = parent(label)
            if up is not None and up not in lines:
                raise DatasetError(
                    Path(folder) / name,
                    f"label {label!r} has no parent {up!r} in this file (every node is listed as its path)",
                    line=number,
                )
        return list(lines)

    def read_split(self, folder: Path, split: str, labels: list[str]) -> Split:
        return read_split(folder, split, labels, self.line_format, missing_parent)

    def scores(self, predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
        """The multi-label scores over every node, then micro and macro F1 of each level's nodes."""
        result = super().scores(predicted, gold, labels)
        levels = np.array([level(label) for label in labels])
        for depth in sorted(set(levels.tolist())):
            columns = levels == depth
            result[f"level{depth}_micro_f1"] = scores.micro_f1(predicted[:, columns], gold[:, columns])
            result[f"level{depth}_macro_f1"] = scores.macro_f1(predicted[:, columns], gold[:, columns])
        return result
