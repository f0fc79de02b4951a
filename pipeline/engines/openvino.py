"""OpenVINO: its CPU runtime reading our ONNX graph (the unfused one: it fuses by itself).

Precision is a compile-time hint here: FP32 is pinned explicitly (OpenVINO's own default on a CPU
with AVX512_BF16 or AMX is bf16), precision=bf16 asks for bfloat16, and a static INT8 (QDQ)
graph runs on its INT8 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipeline.cache import installed_version
from pipeline.devices import DeviceConfig
from pipeline.engines.base import ENGINES, EngineConfig, check_feedable, feed_for
from pipeline.errors import ModelError, check_choice
from pipeline.precisions import PrecisionConfig


class OpenVinoSession:
    def __init__(self, model_path: Path, threads: int, precision_hint: str, performance_hint: str) -> None:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(model_path))
            self.compiled = core.compile_model(
                model,
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": threads,
                    "INFERENCE_PRECISION_HINT": precision_hint,
                    "PERFORMANCE_HINT": performance_hint,
                },
            )
        except RuntimeError as exc:
            raise ModelError(
                f"OpenVINO cannot load {model_path}: {str(exc).strip().splitlines()[0]}"
            ) from None
        self.input_names = [port.any_name for port in self.compiled.inputs]
        check_feedable(model_path, self.input_names)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def feed(self, input_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(feed)
        return self.request.get_output_tensor(0).data.copy()


@ENGINES.register("openvino")
@dataclass
class OpenVinoEngine(EngineConfig):
    extra: ClassVar[str] = "openvino"
    """OpenVINO Runtime on the CPU (pip package `openvino`, the `openvino` extra)."""

    name: str = "openvino"
    performance_hint: str = "LATENCY"  # LATENCY: one request at a time | THROUGHPUT
    fuses_itself: ClassVar[bool] = True
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "int8_static")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.performance_hint, ("LATENCY", "THROUGHPUT"), "engine.performance_hint")

    def open(
        self,
        model_path: Path,
        device: DeviceConfig,
        precision: PrecisionConfig,
        *,
        max_batch: int,
        max_length: int,
    ) -> OpenVinoSession:
        hint = "bf16" if precision.runtime_precision == "bf16" else "f32"
        return OpenVinoSession(model_path, int(device.num_threads or 1), hint, self.performance_hint)

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "engine_version": installed_version("openvino")}
