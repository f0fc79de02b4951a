"""task=pair: two texts, one of several classes (LCQMC, AFQMC, OCNLI): `[CLS] a [SEP] b [SEP]`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pipeline.core.data import Inputs, LineFormat
from pipeline.core.tokenizer import PAIR_SPECIAL_TOKENS
from pipeline.options.tasks.base import TASKS, json_type, refuse
from pipeline.options.tasks.multi_class import MultiClassTask


@TASKS.register("pair")
@dataclass
class PairTask(MultiClassTask):
    """Sentence pairs: `text_a<TAB>text_b<TAB>label`; the model tells the texts apart by token_type_ids."""

    name: str = "pair"
    line_format: ClassVar[LineFormat] = LineFormat(text_fields=("text_a", "text_b"))
    # [CLS] [SEP] [SEP]: from 5 on, each text keeps at least a token (docs/tasks.md).
    min_seq_length: ClassVar[int] = PAIR_SPECIAL_TOKENS
    demo_dataset_kind: ClassVar[str] = "same_sentiment"
    demo_model_folder: ClassVar[str] = "demo-model-pair"

    def check_graph_inputs(self, input_names: Sequence[str], model: str) -> str | None:
        if "token_type_ids" in input_names:
            return None
        return (
            f"task=pair needs a model with a token_type_ids input (it tells text_a from text_b); "
            f"{model} takes only {', '.join(input_names)}: export it with token_type_ids"
        )

    def served_inputs(self, values: list[Any]) -> Inputs:
        """Pairs `[text_a, text_b]`; either text may be empty, as a single text may (docs/serving.md)."""
        problems = [problem for i, v in enumerate(values) for problem in pair_problems(i, v)]
        refuse(problems, "a pair of texts ([text_a, text_b], two JSON strings)")
        return Inputs([v[0] for v in values], [v[1] for v in values])


def pair_problems(i: int, value: Any) -> list[str]:
    """What keeps inputs[i] from being a pair of texts, by position and JSON type (none: it is one)."""
    if not isinstance(value, list | tuple) or not value:
        return [f"inputs[{i}] is {json_type(value)}"]
    if len(value) != 2:
        return [f"inputs[{i}] is an array of {len(value)} {'item' if len(value) == 1 else 'items'}"]
    return [
        f"inputs[{i}][{j}] is {json_type(text)}" for j, text in enumerate(value) if not isinstance(text, str)
    ]
