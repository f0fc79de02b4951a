"""OpenVINO: its CPU runtime reading our ONNX graph (the unfused one: it fuses by itself).

Precision is a compile-time hint here: FP32 is pinned explicitly (OpenVINO's own default on a CPU
with AVX512_BF16 or AMX is bf16), precision=bf16 asks for bfloat16, and a static INT8 (QDQ)
graph runs on its INT8 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.core.errors import check_choice
from pipeline.options.devices import DeviceConfig
from pipeline.options.engines.base import ENGINES, EngineConfig
from pipeline.options.precisions import PrecisionConfig

if TYPE_CHECKING:
    from pipeline.runtimes.openvino import OpenVinoSession


@ENGINES.register("openvino")
@dataclass
class OpenVinoEngine(EngineConfig):
    """OpenVINO Runtime on the CPU (pip package `openvino`, the `openvino` extra)."""

    name: str = "openvino"
    performance_hint: str = "LATENCY"  # LATENCY: one request at a time | THROUGHPUT
    fuses_itself: ClassVar[bool] = True
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "int8_static")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    extra: ClassVar[str] = "openvino"
    distribution: ClassVar[str] = "openvino"

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
        from pipeline.runtimes.openvino import OpenVinoSession

        hint = "bf16" if precision.runtime_precision == "bf16" else "f32"
        return OpenVinoSession(model_path, device.threads, hint, self.performance_hint)
