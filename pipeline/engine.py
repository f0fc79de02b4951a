"""ONNX Runtime sessions for a device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.config import DeviceConfig
from pipeline.errors import DeviceError, ModelError

_CUDA = "CUDAExecutionProvider"


def providers_for(device: DeviceConfig) -> list[str | tuple[str, dict]]:
    if device.name == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if _CUDA not in available:
        raise DeviceError(
            f"device=gpu needs ONNX Runtime's {_CUDA}, but this onnxruntime "
            f"{ort.__version__} offers {available}. Install the GPU build: "
            "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu' "
            "(or `pip install -e .[gpu]`), with a matching CUDA/cuDNN; or run with device=cpu"
        )
    return [(_CUDA, {"device_id": device.id}), "CPUExecutionProvider"]


class Engine:
    """An ONNX Runtime session plus what callers need to feed it: its input names."""

    def __init__(self, model_path: Path, device: DeviceConfig) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(device.num_threads or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = providers_for(device)
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        if device.name == "gpu" and _CUDA not in self.session.get_providers():
            raise DeviceError(
                f"{_CUDA} was requested for device {device.id} but the session runs on "
                f"{self.session.get_providers()}; check the CUDA/cuDNN install and device.id"
            )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        """Inputs by the graph's own names; token-type-like inputs are zeros for one text."""
        feed: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if name == "input_ids":
                feed[name] = input_ids
            elif name == "attention_mask":
                feed[name] = (input_ids != pad_id).astype(np.int64)
            elif name in ("token_type_ids", "task_type_ids"):
                feed[name] = np.zeros_like(input_ids)
            else:
                raise ModelError(
                    f"the model has an input {name!r} this pipeline cannot fill "
                    f"(known: input_ids, token_type_ids, task_type_ids, attention_mask)"
                )
        return feed

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feed)[0]
