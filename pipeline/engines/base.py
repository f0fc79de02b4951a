"""The Engine protocol: open a model for a device, feed it by graph input names, run a batch.

An engine is chosen by `engine=<name>`: its `EngineConfig` subclass opens models and describes
itself (name, version) for metrics.json and the MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.devices import DeviceConfig
from pipeline.errors import ConfigError, ModelError
from pipeline.registry import Registry

# Every input a graph may have, in the order the export stage gives them.
GRAPH_INPUTS = ("input_ids", "token_type_ids", "task_type_ids", "attention_mask")

ENGINES: Registry[EngineConfig] = Registry("engine")


def feed_for(input_names: list[str], input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """Inputs by the graph's own names; token-type-like inputs are zeros for one text."""
    feed: dict[str, np.ndarray] = {}
    for name in input_names:
        if name == "input_ids":
            feed[name] = input_ids
        elif name == "attention_mask":
            feed[name] = (input_ids != pad_id).astype(np.int64)
        else:  # token_type_ids, task_type_ids
            feed[name] = np.zeros_like(input_ids)
    return feed


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

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]: ...

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class EngineConfig:
    name: str = "onnxruntime"

    def __post_init__(self) -> None:
        if type(self) is not ENGINES.get(self.name):
            raise ConfigError(f"engine.name={self.name!r} does not match the engine chosen; use engine=NAME")

    def open(self, model_path: Path, device: DeviceConfig, *, max_batch: int, max_length: int) -> Engine:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        """The engine's name and version, recorded with every result."""
        raise NotImplementedError
