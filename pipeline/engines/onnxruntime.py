"""ONNX Runtime: sessions for a device (providers, threads, IO binding) and how to feed them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from pipeline.devices import DeviceConfig, GpuDevice
from pipeline.engines.base import ENGINES, EngineConfig, check_feedable, feed_for, graph_input_names
from pipeline.errors import DeviceError, ModelError
from pipeline.precisions import PrecisionConfig

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(device: DeviceConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(device.num_threads or 1)
    options.inter_op_num_threads = device.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[device.graph_optimization_level]
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if device.execution_mode == "parallel"
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    options.enable_cpu_mem_arena = device.cpu_mem_arena
    return options


class OnnxRuntimeSession:
    """An ONNX Runtime session plus what callers need to feed it: its input names."""

    def __init__(
        self, model_path: Path, device: DeviceConfig, max_batch: int = 32, max_length: int = 512
    ) -> None:
        self.input_names = graph_input_names(model_path)
        check_feedable(model_path, self.input_names)
        providers = device.onnxruntime_providers(self.input_names, max_batch, max_length)
        try:
            self.session = ort.InferenceSession(
                str(model_path), sess_options=session_options(device), providers=providers
            )
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        self.device = device
        self.cuda_device_id: int | None = None
        if isinstance(device, GpuDevice):
            active = self.session.get_providers()
            if "CUDAExecutionProvider" not in active:
                raise DeviceError(
                    f"CUDAExecutionProvider was requested for device {device.id} but the session runs on "
                    f"{active}; check the CUDA/cuDNN install and device.id"
                )
            if device.io_binding:
                self.cuda_device_id = device.id
        self.output_name = self.session.get_outputs()[0].name

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        if self.cuda_device_id is None:
            return self.session.run([self.output_name], feed)[0]
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self.output_name, "cuda", self.cuda_device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


@ENGINES.register("onnxruntime")
@dataclass
class OnnxRuntimeEngine(EngineConfig):
    """ONNX Runtime (CPU, CUDA or TensorRT execution providers, by `device`)."""

    name: str = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8", "int8_static")
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")

    def open(
        self,
        model_path: Path,
        device: DeviceConfig,
        precision: PrecisionConfig,
        *,
        max_batch: int,
        max_length: int,
    ) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(model_path, device, max_batch, max_length)

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "engine_version": ort.__version__}
