"""What every task is: a config class that reads its data format, checks its model, turns logits into
label sets, scores them and writes them out.

Predictions and gold labels are boolean matrices (a row per sample, a column per label) for every
task, so the stages around a task (inference, FP32 comparison, caching) never ask which task runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline import PROJECT_ROOT
from pipeline.core import scores
from pipeline.core.data import (
    SINGLE_TEXT,
    Inputs,
    LineFormat,
    Split,
    parse_input,
    read_labels,
    read_split,
    read_texts,
)
from pipeline.core.errors import ConfigError, InputError
from pipeline.core.files import atomic_write_text
from pipeline.core.job_folder import PER_CLASS_FILE, PER_CLASS_TABLE
from pipeline.core.tokenizer import SINGLE_SPECIAL_TOKENS
from pipeline.options.groups import OptionGroup

TASKS: OptionGroup[TaskConfig] = OptionGroup("task")

# How many refused inputs a refusal names: a client that sent 10,000 numbers needs the first few.
NAMED_REFUSALS = 10


def json_type(value: Any) -> str:
    """`value`'s type as a JSON client names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before numbers: a bool is an int to Python
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def refuse(problems: list[str], expected: str) -> None:
    """Raises one InputError naming the first few inputs that are not what the task reads."""
    if problems:
        more = f" and {len(problems) - NAMED_REFUSALS} more" if len(problems) > NAMED_REFUSALS else ""
        raise InputError(f"{', '.join(problems[:NAMED_REFUSALS])}{more}: expected {expected} for every input")


@dataclass
class TaskConfig:
    name: str = "multi_class"
    # The metric a sweep's summary leads with, its selection constrains and an Optuna search
    # optimises by default (`select.*`, `objectives`).
    headline_metric: str = "accuracy"

    # How the task's lines read (pipeline/core/data.py).
    line_format: ClassVar[LineFormat] = SINGLE_TEXT
    # One label per sample (a softmax over the labels); False: a sigmoid per label. Training the
    # demo models chooses its loss by it.
    single_label: ClassVar[bool] = True
    # The shortest max_seq_length its samples fit in: their special tokens ([CLS] [SEP] for a text).
    min_seq_length: ClassVar[int] = SINGLE_SPECIAL_TOKENS
    # Its quality metrics, headline first among them in sweep summaries.
    metric_names: ClassVar[tuple[str, ...]] = ()
    # The embedded demo: the dataset's builder in pipeline/core/demo_data.py and the model's
    # folder under assets/ (model=demo and dataset=demo pick them for the task).
    demo_dataset_kind: ClassVar[str] = "sentiment"
    demo_model_folder: ClassVar[str] = "demo-model"

    def __post_init__(self) -> None:
        if type(self) is not TASKS.get(self.name):
            raise ConfigError(f"task.name={self.name!r} does not match the task chosen; use task=NAME")
        if self.headline_metric not in self.metric_names:
            raise ConfigError(
                f"task.headline_metric={self.headline_metric!r} is not a metric of task={self.name} "
                f"({', '.join(self.metric_names)})"
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of a sample's texts in outputs: ("text",) or ("text_a", "text_b")."""
        return self.line_format.text_fields

    @property
    def delta_metric(self) -> str:
        """The headline metric's change against FP32 (a sweep's default selection constraint)."""
        return f"{self.headline_metric}_delta_vs_fp32"

    # -- data --------------------------------------------------------------------------------

    def read_labels(self, folder: Path, name: str = "label.txt") -> list[str]:
        return read_labels(folder, name)

    def read_split(self, folder: Path, split: str, labels: list[str]) -> Split:
        return read_split(folder, split, labels, self.line_format)

    def read_inputs(self, folder: Path, name: str = "data") -> Inputs:
        return read_texts(folder, name, self.line_format)

    def parse_input(self, line: str) -> list[str] | str:
        """An unlabelled line's texts (predict.input), or why the line is not one."""
        return parse_input(line, self.line_format)

    def demo_dataset(self, cache_dir: Path) -> Path:
        from pipeline.core.demo_data import demo_dataset

        return demo_dataset(cache_dir, self.demo_dataset_kind)

    @classmethod
    def demo_model_dir(cls) -> Path:
        return PROJECT_ROOT / "assets" / cls.demo_model_folder

    # -- the model -----------------------------------------------------------------------------

    def check_graph_inputs(self, input_names: Sequence[str], model: str) -> str | None:
        """Why a model with these inputs cannot run this task (None: it can)."""
        return None

    # -- the head: logits -> probabilities -> label sets ---------------------------------------

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """The predicted label sets (bool, [samples, labels])."""
        raise NotImplementedError

    # -- metrics and reports -------------------------------------------------------------------

    def scores(self, predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def compare_with_fp32(
        self, predicted: np.ndarray, reference: np.ndarray, gold: np.ndarray, labels: list[str]
    ) -> dict[str, float]:
        """How often this model's label sets equal the FP32 model's, and the headline metric's change."""
        headline = self.headline_metric
        return {
            "agreement_vs_fp32": scores.accuracy(predicted, reference),
            self.delta_metric: self.scores(predicted, gold, labels)[headline]
            - self.scores(reference, gold, labels)[headline],
        }

    def write_reports(self, out_dir: Path, predicted: np.ndarray, split: Split) -> list[Path]:
        """per_class.md (for people) and per_class.json (a table): precision, recall, F1, support."""
        rows = scores.per_label_rows(predicted, split.gold, split.labels)
        atomic_write_text(out_dir / PER_CLASS_FILE, scores.per_label_markdown(rows))
        atomic_write_text(out_dir / PER_CLASS_TABLE, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        return [out_dir / PER_CLASS_FILE, out_dir / PER_CLASS_TABLE]

    # -- outputs -------------------------------------------------------------------------------

    def outputs(self, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
        """What is predicted for each sample: {label, confidence} or {labels, scores}."""
        raise NotImplementedError

    def output_rows(
        self,
        inputs: Inputs,
        probabilities: np.ndarray,
        labels: list[str],
        prefixes: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """predictions.jsonl's rows: each sample's (line,) texts and what is predicted for it."""
        heads = prefixes or [{} for _ in range(len(inputs))]
        return [
            {**head, **texts, **out}
            for head, texts, out in zip(
                heads, inputs.fields(self.fields), self.outputs(probabilities, labels), strict=True
            )
        ]

    def served_outputs(self, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
        """What a served model answers for each input (docs/serving.md)."""
        return self.outputs(probabilities, labels)

    def served_inputs(self, values: list[Any]) -> Inputs:
        """A serving request's `inputs` as the model reads them; an InputError names each one refused."""
        refuse(
            [f"inputs[{i}] is {json_type(v)}" for i, v in enumerate(values) if not isinstance(v, str)],
            "text (a JSON string)",
        )
        return Inputs(list(values))


def rounded(value: float) -> float:
    return round(float(value), 6)
