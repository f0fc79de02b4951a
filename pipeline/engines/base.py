"""The Engine protocol: open a model for a device, feed it by graph input names, run a batch.

An engine is chosen by `engine=<name>`: its `EngineConfig` subclass opens models and describes
itself (name, version) for metrics.json and the MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from pipeline.devices import DeviceConfig
from pipeline.errors import ConfigError, ModelError
from pipeline.registry import Registry

if TYPE_CHECKING:
    from pipeline.precisions import PrecisionConfig

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

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]: ...

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class EngineConfig:
    name: str = "onnxruntime"
    # What it opens: "onnx", the converted (and optimized) graph; "paddle", the static graph.
    reads: ClassVar[str] = "onnx"
    # It fuses the graph itself: the optimize stage leaves out ONNX Runtime's fusions (whose
    # com.microsoft operators other runtimes do not know).
    fuses_itself: ClassVar[bool] = False
    precisions: ClassVar[tuple[str, ...]] = ()
    devices: ClassVar[tuple[str, ...]] = ()
    # The pyproject extra that installs its runtime.
    extra: ClassVar[str] = "cpu"

    def __post_init__(self) -> None:
        if type(self) is not ENGINES.get(self.name):
            raise ConfigError(f"engine.name={self.name!r} does not match the engine chosen; use engine=NAME")

    def unsupported(self, precision: PrecisionConfig, device: DeviceConfig) -> str | None:
        """Why this engine cannot run `precision` on `device` (None: it can)."""
        if precision.name not in self.precisions:
            runs = ", ".join(self.precisions)
            return f"engine={self.name} does not run precision={precision.name} (it runs {runs})"
        if device.name not in self.devices:
            runs = ", ".join(self.devices)
            return f"engine={self.name} does not run on device={device.name} (it runs on {runs})"
        return None

    def open(
        self,
        model_path: Path,
        device: DeviceConfig,
        precision: PrecisionConfig,
        *,
        max_batch: int,
        max_length: int,
    ) -> Engine:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        """The engine's name and version, recorded with every result."""
        raise NotImplementedError
