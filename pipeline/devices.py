"""Where the model runs: each device is a config class chosen by `device=<name>`.

A device knows its own settings and, for ONNX Runtime, the execution providers that run on it
and whether they are usable here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.errors import ConfigError, DeviceError, check_choice
from pipeline.registry import Registry

DEVICES: Registry[DeviceConfig] = Registry("device")

_CUDA = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")

Provider = str | tuple[str, dict]


@dataclass
class DeviceConfig:
    """What every device has: the CPU threads and ONNX Runtime session settings."""

    name: str = "cpu"
    # Intra-op threads; None means one per physical core, the seed's default (seed: --num_threads).
    num_threads: int | None = None
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"  # disable | basic | extended | all
    # sequential | parallel (parallel only helps branchy graphs)
    execution_mode: str = "sequential"
    cpu_mem_arena: bool = True

    def __post_init__(self) -> None:
        if type(self) is not DEVICES.get(self.name):
            raise ConfigError(f"device.name={self.name!r} does not match the device chosen; use device=NAME")
        check_choice(
            self.graph_optimization_level, GRAPH_OPTIMIZATION_LEVELS, "device.graph_optimization_level"
        )
        check_choice(self.execution_mode, ("sequential", "parallel"), "device.execution_mode")
        if self.inter_op_threads < 1:
            raise ConfigError(f"device.inter_op_threads={self.inter_op_threads} must be >= 1")
        if self.num_threads is None:
            self.num_threads = psutil.cpu_count(logical=False) or 1
        if self.num_threads < 1:
            raise ConfigError(f"device.num_threads={self.num_threads} must be >= 1")

    def onnxruntime_providers(
        self, input_names: list[str], max_batch: int, max_length: int
    ) -> list[Provider]:
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        """Why this device cannot run here (None when it can): sweeps skip such jobs."""
        try:
            self.onnxruntime_providers(["input_ids"], 1, 1)
        except DeviceError as exc:
            return str(exc)
        return None


@DEVICES.register("cpu")
@dataclass
class CpuDevice(DeviceConfig):
    """ONNX Runtime on the CPU (seed: --device cpu)."""

    name: str = "cpu"

    def onnxruntime_providers(
        self, input_names: list[str], max_batch: int, max_length: int
    ) -> list[Provider]:
        return ["CPUExecutionProvider"]


@DEVICES.register("gpu")
@dataclass
class GpuDevice(DeviceConfig):
    """ONNX Runtime's CUDA execution provider (seed: --device gpu --device_id); needs onnxruntime-gpu."""

    name: str = "gpu"
    id: int = 0  # CUDA device index (seed: --device_id)
    # Bind inputs/outputs to device buffers: inputs copied once per batch, outputs read from device memory.
    io_binding: bool = True
    # TensorRT ahead of CUDA (an engine per shape profile, cached in trt_cache_dir).
    tensorrt: bool = False
    trt_fp16: bool = True
    trt_cache_dir: str = "${cache_dir}/tensorrt"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.id < 0:
            raise ConfigError(f"device.id={self.id} must be >= 0")

    def onnxruntime_providers(
        self, input_names: list[str], max_batch: int, max_length: int
    ) -> list[Provider]:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if _CUDA not in available:
            raise DeviceError(
                f"device=gpu needs ONNX Runtime's {_CUDA}, but this onnxruntime {ort.__version__} "
                f"offers {available}. Install the GPU build instead of the CPU one: "
                "pip uninstall -y onnxruntime && pip install -e '.[gpu]' (onnxruntime-gpu, with a "
                "matching CUDA and cuDNN), or run with device=cpu"
            )
        cuda = (_CUDA, {"device_id": self.id, "cudnn_conv_algo_search": "HEURISTIC"})
        if not self.tensorrt:
            return [cuda, "CPUExecutionProvider"]
        if _TENSORRT not in available:
            raise DeviceError(
                f"device.tensorrt=true needs ONNX Runtime's {_TENSORRT}, but this onnxruntime offers "
                f"{available}; install TensorRT for onnxruntime-gpu or set device.tensorrt=false"
            )

        def shapes(batch: int, length: int) -> str:
            return ",".join(f"{name}:{batch}x{length}" for name in input_names)

        Path(self.trt_cache_dir).mkdir(parents=True, exist_ok=True)
        tensorrt = (
            _TENSORRT,
            {
                "device_id": self.id,
                "trt_fp16_enable": self.trt_fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": self.trt_cache_dir,
                "trt_profile_min_shapes": shapes(1, 1),
                "trt_profile_opt_shapes": shapes(max_batch, max_length),
                "trt_profile_max_shapes": shapes(max_batch, max_length),
            },
        )
        return [tensorrt, cuda, "CPUExecutionProvider"]
