"""BF16: the FP32 graph, run by the engine in bfloat16 where the CPU computes it natively.

OpenVINO (and Paddle Inference's oneDNN) convert the FP32 graph at load time; on a CPU without
AVX512_BF16 or AMX they would fall back to FP32 silently, so this precision refuses such a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pipeline.core.cpu import cpu_flags
from pipeline.options.precisions.base import PRECISIONS, OptimizeInputs, PrecisionConfig

if TYPE_CHECKING:
    import onnx

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@PRECISIONS.register("bf16")
@dataclass
class Bf16Precision(PrecisionConfig):
    name: str = "bf16"
    keeps_graph: ClassVar[bool] = True
    runtime_precision: ClassVar[str | None] = "bf16"

    def cpu_lacks(self) -> str | None:
        if cpu_flags() & set(BF16_FLAGS):
            return None
        return f"this CPU has neither {' nor '.join(BF16_FLAGS)} (native bfloat16)"

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        import onnx

        onnx.save(model, str(target))
