"""The Engine protocol: a loaded model, fed by its graph's own input names, running a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.core.errors import ModelError

# Every input a graph may have, in the order the export stage gives them.
GRAPH_INPUTS = ("input_ids", "token_type_ids", "task_type_ids", "attention_mask")


def feed_for(
    input_names: list[str], input_ids: np.ndarray, pad_id: int, token_type_ids: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Inputs by the graph's own names. Token types are the pair's segments (zeros for one text);
    task types are zeros."""
    feed: dict[str, np.ndarray] = {}
    for name in input_names:
        if name == "input_ids":
            feed[name] = input_ids
        elif name == "attention_mask":
            feed[name] = (input_ids != pad_id).astype(np.int64)
        elif name == "token_type_ids" and token_type_ids is not None:
            feed[name] = token_type_ids
        else:  # task_type_ids, and token types of single texts
            feed[name] = np.zeros_like(input_ids)
    return feed


def graph_input_names(model_path: Path) -> list[str]:
    """The inputs an ONNX graph must be fed (initializers that double as inputs excluded)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def check_feedable(model_path: Path, input_names: list[str]) -> None:
    unknown = [name for name in input_names if name not in GRAPH_INPUTS]
    if unknown:
        raise ModelError(
            f"{model_path}: the model has inputs {unknown} this pipeline cannot fill "
            f"(it fills {', '.join(GRAPH_INPUTS)})"
        )


class Engine(Protocol):
    """A loaded model, ready to run batches of token ids."""

    input_names: list[str]

    def feed(
        self, input_ids: np.ndarray, pad_id: int, token_type_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]: ...

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...
