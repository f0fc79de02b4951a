"""INT8 dynamic quantization (`onnxruntime.quantization.quantize_dynamic`) for the CPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.core.errors import check_choice
from pipeline.options.precisions.base import (
    PRECISIONS,
    OptimizeInputs,
    PrecisionConfig,
    SearchChoice,
    quantizer_input,
)

if TYPE_CHECKING:
    import onnx

QUANTIZABLE_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization", "Transpose", "Conv", "LSTM")


@dataclass
class QuantizationConfig:
    """`quantize_dynamic` options; defaults measured in docs/BENCHMARKS.md."""

    weight_type: str = "QInt8"  # QInt8 or QUInt8
    per_channel: bool = False
    reduce_range: bool = False  # 7-bit weights, for CPUs without VNNI that saturate
    op_types: list[str] = field(default_factory=lambda: ["MatMul", "Attention"])
    nodes_to_exclude: list[str] = field(default_factory=list)  # node names left in float32

    def __post_init__(self) -> None:
        check_choice(self.weight_type, ("QInt8", "QUInt8"), "precision.quantization.weight_type")
        for op_type in self.op_types:
            check_choice(op_type, QUANTIZABLE_OPS, "precision.quantization.op_types[]")


@PRECISIONS.register("int8")
@dataclass
class Int8Precision(PrecisionConfig):
    name: str = "int8"
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    search_options: ClassVar[dict[str, tuple[SearchChoice, ...]]] = {
        "quantization.per_channel": (False, True),
        "quantization.reduce_range": (False, True),
    }

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        options = self.quantization
        with quantizer_input(model) as source:
            quantize_dynamic(
                source,
                target,
                op_types_to_quantize=list(options.op_types),
                per_channel=options.per_channel,
                reduce_range=options.reduce_range,
                weight_type=QuantType[options.weight_type],
                nodes_to_exclude=list(options.nodes_to_exclude),
            )
