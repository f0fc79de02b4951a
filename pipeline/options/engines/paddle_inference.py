"""Paddle Inference: the static graph as Paddle runs it (oneDNN on the CPU), the baseline
PaddleNLP users know. It reads the Paddle files themselves, so nothing is converted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.options.devices import DeviceConfig
from pipeline.options.engines.base import ENGINES, EngineConfig
from pipeline.options.precisions import PrecisionConfig

if TYPE_CHECKING:
    from pipeline.runtimes.paddle_inference import PaddleInferenceSession


@ENGINES.register("paddle_inference")
@dataclass
class PaddleInferenceEngine(EngineConfig):
    """Paddle Inference on the CPU, from the static graph (model.path_prefix or the export stage's)."""

    name: str = "paddle_inference"
    onednn: bool = True  # oneDNN kernels (Paddle's fast CPU path); false: Paddle's plain kernels
    reads: ClassVar[str] = "paddle"
    extra: ClassVar[str] = "core"  # paddlepaddle is a dependency of every install
    distribution: ClassVar[str] = "paddlepaddle"
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
        from pipeline.runtimes.paddle_inference import PaddleInferenceSession

        bf16 = precision.runtime_precision == "bf16"
        return PaddleInferenceSession(model_path, device.threads, self.onednn, bf16)
