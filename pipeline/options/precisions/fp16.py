"""FP16 weights and activations with float32 inputs/outputs: the fast path on a GPU (CUDA EP).

It also runs on the CPU, slowly, which is how its accuracy is checked without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.options.precisions.base import PRECISIONS, OptimizeInputs, PrecisionConfig

if TYPE_CHECKING:
    import onnx


def align_cast_types(model: onnx.ModelProto) -> int:
    """Makes `Cast(to=float)` nodes produce what the FP16 graph declares for them.

    onnxconverter-common retypes every float value_info entry to float16 but leaves the
    `to` attribute of existing Cast nodes alone. paddle2onnx casts its in-graph padding
    mask to float, so the converted graph declares a float16 output for a node that makes
    float, and ONNX Runtime refuses to load it ("Type (tensor(float16)) of output arg
    (p2o.pd_op.cast.0.0) of node (Cast.0) does not match expected type (tensor(float))").
    """
    from onnx import TensorProto

    declared = {
        v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.output)
    }
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "Cast":
            continue
        to = next(a for a in node.attribute if a.name == "to")
        if to.i == TensorProto.FLOAT and declared.get(node.output[0]) == TensorProto.FLOAT16:
            to.i = TensorProto.FLOAT16
            fixed += 1
    return fixed


@PRECISIONS.register("fp16")
@dataclass
class Fp16Precision(PrecisionConfig):
    name: str = "fp16"
    keep_io_types: bool = True  # float32 inputs/outputs around the FP16 graph
    fp16_op_block_list: list[str] = field(default_factory=list)  # op types kept in float32, e.g. [Softmax]

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        import onnx
        from onnxconverter_common import float16

        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=self.keep_io_types,
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + list(self.fp16_op_block_list),
        )
        align_cast_types(converted)
        onnx.save(converted, str(target))
