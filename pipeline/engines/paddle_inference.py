"""Paddle Inference: the static graph as Paddle runs it (oneDNN on the CPU), the baseline
PaddleNLP users know. It reads the Paddle files themselves, so nothing is converted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.cache import installed_version
from pipeline.devices import DeviceConfig
from pipeline.engines.base import ENGINES, EngineConfig, check_feedable, feed_for
from pipeline.errors import ModelError
from pipeline.precisions import PrecisionConfig


class PaddleInferenceSession:
    def __init__(self, path_prefix: Path, threads: int, onednn: bool, bf16: bool) -> None:
        from paddle import inference

        from pipeline.stages.convert import find_model_files

        files = find_model_files(path_prefix)
        config = inference.Config(str(files.graph), str(files.params))
        config.disable_gpu()
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(threads)
        if onednn:
            config.enable_mkldnn()
            if bf16:
                config.enable_mkldnn_bfloat16()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:  # Paddle raises its own error types from C++
            raise ModelError(
                f"Paddle Inference cannot load {files.graph}: {str(exc).strip()[:300]}"
            ) from None
        self.input_names = list(self.predictor.get_input_names())
        check_feedable(files.graph, self.input_names)
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        for name, array in feed.items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        return self.output.copy_to_cpu()


@ENGINES.register("paddle_inference")
@dataclass
class PaddleInferenceEngine(EngineConfig):
    """Paddle Inference on the CPU, from the static graph (model.path_prefix or the export stage's)."""

    name: str = "paddle_inference"
    onednn: bool = True  # oneDNN kernels (Paddle's fast CPU path); false: Paddle's plain kernels
    reads: ClassVar[str] = "paddle"
    extra: ClassVar[str] = "paddle"  # the core: paddlepaddle is a dependency of every install
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def open(
        self,
        model_path: Path,
        device: DeviceConfig,
        precision: PrecisionConfig,
        *,
        max_batch: int,
        max_length: int,
    ) -> PaddleInferenceSession:
        bf16 = precision.runtime_precision == "bf16"
        return PaddleInferenceSession(model_path, int(device.num_threads or 1), self.onednn, bf16)

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "engine_version": installed_version("paddlepaddle")}
