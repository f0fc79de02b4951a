"""Where the model runs: `device=cpu|gpu`, the GPU's index and the CPU threads.

How an engine uses the device (ONNX Runtime's CUDA or TensorRT providers, session settings)
is the engine's own business: `engine.*`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from pipeline.core.errors import ConfigError
from pipeline.options.groups import OptionGroup

DEVICES: OptionGroup[DeviceConfig] = OptionGroup("device")

# Keys that moved to the engine (engine=onnxruntime) when the device became "where" only.
MOVED_TO_ENGINE = (
    "inter_op_threads",
    "graph_optimization_level",
    "execution_mode",
    "cpu_mem_arena",
    "io_binding",
    "tensorrt",
    "trt_fp16",
    "trt_cache_dir",
)


@dataclass
class DeviceConfig:
    name: str = "cpu"
    # Intra-op threads; None means one per physical core, the seed's default (seed: --num_threads).
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if type(self) is not DEVICES.get(self.name):
            raise ConfigError(f"device.name={self.name!r} does not match the device chosen; use device=NAME")
        if self.num_threads is None:
            self.num_threads = psutil.cpu_count(logical=False) or 1
        if self.num_threads < 1:
            raise ConfigError(f"device.num_threads={self.num_threads} must be >= 1")

    @property
    def threads(self) -> int:
        return int(self.num_threads or 1)


@DEVICES.register("cpu")
@dataclass
class CpuDevice(DeviceConfig):
    """The CPU (seed: --device cpu)."""

    name: str = "cpu"


@DEVICES.register("gpu")
@dataclass
class GpuDevice(DeviceConfig):
    """A CUDA GPU (seed: --device gpu --device_id); with engine=onnxruntime it needs onnxruntime-gpu."""

    name: str = "gpu"
    id: int = 0  # CUDA device index (seed: --device_id)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.id < 0:
            raise ConfigError(f"device.id={self.id} must be >= 0")
