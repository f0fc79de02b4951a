"""engine=onnxruntime: ONNX Runtime on the CPU or a CUDA GPU (TensorRT ahead of CUDA where asked)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.core.environment import onnxruntime_version
from pipeline.core.errors import ConfigError, check_choice
from pipeline.options.devices import DeviceConfig, GpuDevice
from pipeline.options.engines.base import ENGINES, EngineConfig
from pipeline.options.precisions import PrecisionConfig

if TYPE_CHECKING:
    from pipeline.runtimes.onnxruntime import OnnxRuntimeSession

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@ENGINES.register("onnxruntime")
@dataclass
class OnnxRuntimeEngine(EngineConfig):
    """ONNX Runtime's session settings (seed: a plain session with intra_op_num_threads)."""

    name: str = "onnxruntime"
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"  # disable | basic | extended | all
    execution_mode: str = "sequential"  # sequential | parallel (parallel only helps branchy graphs)
    cpu_mem_arena: bool = True
    # device=gpu: bind inputs/outputs to device buffers (outputs read from device memory).
    io_binding: bool = True
    # device=gpu: TensorRT ahead of CUDA (an engine per shape profile, cached in trt_cache_dir).
    tensorrt: bool = False
    trt_fp16: bool = True
    trt_cache_dir: str = "${cache_dir}/tensorrt"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "int8_static")
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(
            self.graph_optimization_level, GRAPH_OPTIMIZATION_LEVELS, "engine.graph_optimization_level"
        )
        check_choice(self.execution_mode, ("sequential", "parallel"), "engine.execution_mode")
        if self.inter_op_threads < 1:
            raise ConfigError(f"engine.inter_op_threads={self.inter_op_threads} must be >= 1")

    def unavailable_reason(self, device: DeviceConfig) -> str | None:
        if not isinstance(device, GpuDevice):
            return None
        from pipeline.runtimes.onnxruntime import gpu_unavailable_reason

        return gpu_unavailable_reason(self.tensorrt)

    def open(
        self,
        model_path: Path,
        device: DeviceConfig,
        precision: PrecisionConfig,
        *,
        max_batch: int,
        max_length: int,
    ) -> OnnxRuntimeSession:
        from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings

        settings = SessionSettings(
            threads=device.threads,
            inter_op_threads=self.inter_op_threads,
            graph_optimization_level=self.graph_optimization_level,
            execution_mode=self.execution_mode,
            cpu_mem_arena=self.cpu_mem_arena,
            gpu_id=device.id if isinstance(device, GpuDevice) else None,
            io_binding=self.io_binding,
            tensorrt=self.tensorrt,
            trt_fp16=self.trt_fp16,
            trt_cache_dir=self.trt_cache_dir,
        )
        return OnnxRuntimeSession(model_path, settings, max_batch, max_length)

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "engine_version": onnxruntime_version()}
