"""ONNX Runtime sessions for a device: providers, threads, IO binding, and how to feed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from pipeline.config import DeviceConfig
from pipeline.errors import DeviceError, ModelError

_CUDA = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_FEEDABLE = ("input_ids", "token_type_ids", "task_type_ids", "attention_mask")


def graph_input_names(model_path: Path) -> list[str]:
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


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


def providers_for(
    device: DeviceConfig, input_names: list[str], max_batch: int, max_length: int
) -> list[str | tuple[str, dict]]:
    if device.name == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if _CUDA not in available:
        raise DeviceError(
            f"device=gpu needs ONNX Runtime's {_CUDA}, but this onnxruntime {ort.__version__} "
            f"offers {available}. Install the GPU build instead of the CPU one: "
            "pip uninstall -y onnxruntime && pip install -e '.[gpu]' (onnxruntime-gpu, with a "
            "matching CUDA and cuDNN), or run with device=cpu"
        )
    cuda = (_CUDA, {"device_id": device.id, "cudnn_conv_algo_search": "HEURISTIC"})
    if not device.tensorrt:
        return [cuda, "CPUExecutionProvider"]
    if _TENSORRT not in available:
        raise DeviceError(
            f"device.tensorrt=true needs ONNX Runtime's {_TENSORRT}, but this onnxruntime offers "
            f"{available}; install TensorRT for onnxruntime-gpu or set device.tensorrt=false"
        )

    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in input_names)

    Path(device.trt_cache_dir).mkdir(parents=True, exist_ok=True)
    tensorrt = (
        _TENSORRT,
        {
            "device_id": device.id,
            "trt_fp16_enable": device.trt_fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": device.trt_cache_dir,
            "trt_profile_min_shapes": shapes(1, 1),
            "trt_profile_opt_shapes": shapes(max_batch, max_length),
            "trt_profile_max_shapes": shapes(max_batch, max_length),
        },
    )
    return [tensorrt, cuda, "CPUExecutionProvider"]


class Engine:
    """An ONNX Runtime session plus what callers need to feed it: its input names."""

    def __init__(
        self, model_path: Path, device: DeviceConfig, max_batch: int = 32, max_length: int = 512
    ) -> None:
        self.input_names = graph_input_names(model_path)
        unknown = [name for name in self.input_names if name not in _FEEDABLE]
        if unknown:
            raise ModelError(
                f"{model_path}: the model has inputs {unknown} this pipeline cannot fill "
                f"(it fills {', '.join(_FEEDABLE)})"
            )
        providers = providers_for(device, self.input_names, max_batch, max_length)
        try:
            self.session = ort.InferenceSession(
                str(model_path), sess_options=session_options(device), providers=providers
            )
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        active = self.session.get_providers()
        if device.name == "gpu" and _CUDA not in active:
            raise DeviceError(
                f"{_CUDA} was requested for device {device.id} but the session runs on {active}; "
                "check the CUDA/cuDNN install and device.id"
            )
        self.device = device
        self.io_binding = device.name == "gpu" and device.io_binding
        self.output_name = self.session.get_outputs()[0].name

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        """Inputs by the graph's own names; token-type-like inputs are zeros for one text."""
        feed: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if name == "input_ids":
                feed[name] = input_ids
            elif name == "attention_mask":
                feed[name] = (input_ids != pad_id).astype(np.int64)
            else:  # token_type_ids, task_type_ids
                feed[name] = np.zeros_like(input_ids)
        return feed

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        if not self.io_binding:
            return self.session.run([self.output_name], feed)[0]
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self.output_name, "cuda", self.device.id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
