"""What every engine option is: a light config class that opens models in its runtime.

An engine is chosen by `engine=<name>`. Its class says what it runs (precisions, devices), the
extra that installs its runtime, and opens a model through `pipeline.runtimes`, imported only
then: composing a config imports no runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.core.errors import ConfigError
from pipeline.options.devices import DeviceConfig
from pipeline.options.groups import OptionGroup

if TYPE_CHECKING:
    from pipeline.options.precisions import PrecisionConfig
    from pipeline.runtimes.base import Engine

ENGINES: OptionGroup[EngineConfig] = OptionGroup("engine")


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
    # The pyproject extra that installs its runtime ("core": every install has it).
    extra: ClassVar[str] = "cpu"
    # The distribution whose version is recorded with every result.
    distribution: ClassVar[str] = ""

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

    def unavailable_reason(self, device: DeviceConfig) -> str | None:
        """Why `device` cannot run this engine on this machine (None: it can): sweeps skip such jobs."""
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
        from pipeline.core.cache import installed_version

        return {"engine": self.name, "engine_version": installed_version(self.distribution)}
