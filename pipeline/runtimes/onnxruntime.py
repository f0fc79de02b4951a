"""ONNX Runtime sessions: providers for the CPU or a CUDA GPU (with TensorRT ahead of CUDA where
asked), session settings, and IO binding on a GPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from pipeline.core.errors import DeviceError, ModelError
from pipeline.runtimes.base import check_feedable, feed_for, graph_input_names

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
Provider = str | tuple[str, dict]


# onnxruntime ships no type hints: what this module uses of an InferenceSession, typed here.
class _NodeArg(Protocol):
    @property
    def name(self) -> str: ...


class _IOBinding(Protocol):
    def bind_cpu_input(self, name: str, array: np.ndarray) -> None: ...

    def bind_output(self, name: str, device_type: str, device_id: int) -> None: ...

    def copy_outputs_to_cpu(self) -> list[np.ndarray]: ...


class OrtSession(Protocol):
    def get_providers(self) -> list[str]: ...

    def get_outputs(self) -> Sequence[_NodeArg]: ...

    def run(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def io_binding(self) -> _IOBinding: ...

    def run_with_iobinding(self, binding: _IOBinding) -> None: ...


@dataclass(frozen=True)
class SessionSettings:
    threads: int = 1  # intra-op threads
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"  # disable | basic | extended | all
    execution_mode: str = "sequential"  # sequential | parallel
    cpu_mem_arena: bool = True
    gpu_id: int | None = None  # None: the CPU; else the CUDA device index
    io_binding: bool = True  # GPU: outputs read from device memory
    tensorrt: bool = False  # GPU: TensorRT ahead of CUDA
    trt_fp16: bool = True
    trt_cache_dir: str | None = None


def gpu_unavailable_reason(tensorrt: bool = False) -> str | None:
    """Why this onnxruntime cannot run on a GPU (None: it can)."""
    available = ort.get_available_providers()
    if CUDA not in available:
        return (
            f"device=gpu needs ONNX Runtime's {CUDA}, but this onnxruntime {ort.__version__} offers "
            f"{available}. Install the GPU build instead of the CPU one: pip uninstall -y onnxruntime "
            "&& pip install -e '.[gpu]' (onnxruntime-gpu, with a matching CUDA and cuDNN), or run with "
            "device=cpu"
        )
    if tensorrt and TENSORRT not in available:
        return (
            f"engine.tensorrt=true needs ONNX Runtime's {TENSORRT}, but this onnxruntime offers "
            f"{available}; install TensorRT for onnxruntime-gpu or set engine.tensorrt=false"
        )
    return None


def providers(
    settings: SessionSettings, input_names: list[str], max_batch: int, max_length: int
) -> list[Provider]:
    if settings.gpu_id is None:
        return ["CPUExecutionProvider"]
    if reason := gpu_unavailable_reason(settings.tensorrt):
        raise DeviceError(reason)
    cuda = (CUDA, {"device_id": settings.gpu_id, "cudnn_conv_algo_search": "HEURISTIC"})
    if not settings.tensorrt:
        return [cuda, "CPUExecutionProvider"]

    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in input_names)

    cache_dir = settings.trt_cache_dir or "tensorrt-cache"
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tensorrt = (
        TENSORRT,
        {
            "device_id": settings.gpu_id,
            "trt_fp16_enable": settings.trt_fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache_dir,
            "trt_profile_min_shapes": shapes(1, 1),
            "trt_profile_opt_shapes": shapes(max_batch, max_length),
            "trt_profile_max_shapes": shapes(max_batch, max_length),
        },
    )
    return [tensorrt, cuda, "CPUExecutionProvider"]


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization_level]
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if settings.execution_mode == "parallel"
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    options.enable_cpu_mem_arena = settings.cpu_mem_arena
    return options


class OnnxRuntimeSession:
    """An ONNX Runtime session plus what callers need to feed it: its input names."""

    def __init__(
        self,
        model_path: Path,
        settings: SessionSettings = SessionSettings(),
        max_batch: int = 32,
        max_length: int = 512,
    ) -> None:
        self.input_names = graph_input_names(model_path)
        check_feedable(model_path, self.input_names)
        chosen = providers(settings, self.input_names, max_batch, max_length)
        try:
            self.session: OrtSession = ort.InferenceSession(
                str(model_path), sess_options=session_options(settings), providers=chosen
            )
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        self.cuda_device_id: int | None = None
        if settings.gpu_id is not None:
            active = self.session.get_providers()
            if CUDA not in active:
                raise DeviceError(
                    f"{CUDA} was requested for device {settings.gpu_id} but the session runs on "
                    f"{active}; check the CUDA/cuDNN install and device.id"
                )
            if settings.io_binding:
                self.cuda_device_id = settings.gpu_id
        self.output_name = self.session.get_outputs()[0].name

    def feed(
        self, input_ids: np.ndarray, pad_id: int, token_type_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id, token_type_ids)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        if self.cuda_device_id is None:
            return self.session.run([self.output_name], feed)[0]
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self.output_name, "cuda", self.cuda_device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
