"""FP32: the converted (and fused) model as is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.options.precisions.base import PRECISIONS, OptimizeInputs, PrecisionConfig

if TYPE_CHECKING:
    import onnx


@PRECISIONS.register("fp32")
@dataclass
class Fp32Precision(PrecisionConfig):
    name: str = "fp32"
    is_fp32_reference: ClassVar[bool] = True
    keeps_graph: ClassVar[bool] = True

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        import onnx

        onnx.save(model, str(target))
