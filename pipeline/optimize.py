"""Graph fusion, FP16 conversion and INT8 dynamic quantization of a converted ONNX model.

Order: fuse first (attention, then ONNX Runtime's transformer fusions), then change
precision, so FP16 and INT8 work on the fused operators. Each result is cached by the
content of its input model and every option.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from pipeline.cache import cached_artifact, content_key
from pipeline.config import PrecisionConfig
from pipeline.errors import ModelError
from pipeline.fusion import fuse_attention

MODEL_FILE = "model.onnx"
REPORT_FILE = "optimize_report.json"
# Fused and quantized operators worth reporting; everything in the com.microsoft domain counts too.
_REPORTED_STANDARD_OPS = ("LayerNormalization", "MatMulInteger", "DynamicQuantizeLinear")


@dataclass(frozen=True)
class OptimizedModel:
    path: Path
    fused_ops: dict[str, int]
    size_mb: float
    attention_layers: int  # softmax nodes found: the number of attention blocks fusion should cover


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's fusion and quantization tools log every step at INFO on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def count_softmax(model: onnx.ModelProto) -> int:
    """Softmax nodes: one per attention block that fusion has not yet replaced."""
    return sum(1 for n in model.graph.node if n.op_type == "Softmax")


def fused_op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts = Counter(
        node.op_type
        for node in model.graph.node
        if node.domain == "com.microsoft" or node.op_type in _REPORTED_STANDARD_OPS
    )
    return dict(sorted(counts.items()))


def fuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Attention fusion, then ONNX Runtime's BERT fusions (Python passes only: no torch needed)."""
    from onnxruntime.transformers.optimizer import optimize_model

    report = fuse_attention(model)
    if report.fused == 0:
        return model, report.softmax_total
    with _quiet_root_logger():
        optimized = optimize_model(
            model,
            model_type="bert",
            num_heads=report.num_heads,
            hidden_size=report.hidden_size,
            opt_level=0,
        )
    return optimized.model, report.softmax_total


def align_cast_types(model: onnx.ModelProto) -> int:
    """Makes `Cast(to=float)` nodes produce what the FP16 graph declares for them.

    onnxconverter-common retypes every float value_info entry to float16 but leaves the
    `to` attribute of existing Cast nodes alone. paddle2onnx casts its in-graph padding
    mask to float, so the converted graph declares a float16 output for a node that makes
    float, and ONNX Runtime refuses to load it ("Type (tensor(float16)) of output arg
    (p2o.pd_op.cast.0.0) of node (Cast.0) does not match expected type (tensor(float))").
    """
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


def to_fp16(model: onnx.ModelProto, precision: PrecisionConfig) -> onnx.ModelProto:
    from onnxconverter_common import float16

    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=precision.keep_io_types,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + list(precision.fp16_op_block_list),
    )
    align_cast_types(converted)
    return converted


def quantize_int8(model: onnx.ModelProto, precision: PrecisionConfig, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    options = precision.quantization
    with _quiet_root_logger(), tempfile.TemporaryDirectory(prefix="int8-") as work:
        source = Path(work) / "fp32.onnx"
        onnx.save(model, str(source))
        quantize_dynamic(
            source,
            out_path,
            op_types_to_quantize=list(options.op_types),
            per_channel=options.per_channel,
            reduce_range=options.reduce_range,
            weight_type=QuantType[options.weight_type],
            nodes_to_exclude=list(options.nodes_to_exclude),
        )


def _build(source: Path, precision: PrecisionConfig, fusion: bool, out_dir: Path) -> None:
    model = onnx.load(str(source))
    attention_layers = count_softmax(model)
    if fusion:
        model, attention_layers = fuse(model)
    target = out_dir / MODEL_FILE
    try:
        if precision.name == "int8":
            quantize_int8(model, precision, target)
        else:
            if precision.name == "fp16":
                model = to_fp16(model, precision)
            onnx.save(model, str(target))
    except Exception as exc:
        raise ModelError(f"cannot make the {precision.name} model from {source}: {exc}") from None
    final = onnx.load(str(target), load_external_data=False)
    report = {"fused_ops": fused_op_counts(final), "attention_layers": attention_layers}
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def optimize(source: Path, precision: PrecisionConfig, fusion: bool, cache_dir: Path) -> OptimizedModel:
    """Returns the model to run: `source` itself for plain FP32, else a cached optimized copy."""
    import onnxconverter_common
    import onnxruntime

    if precision.name == "fp32" and not fusion:
        model = onnx.load(str(source), load_external_data=False)
        attention_layers = count_softmax(model)
        return OptimizedModel(source, fused_op_counts(model), source.stat().st_size / 2**20, attention_layers)
    key = content_key(
        model=source,
        precision=asdict(precision),
        fusion=fusion,
        onnxruntime=onnxruntime.__version__,
        onnxconverter_common=onnxconverter_common.__version__,
        onnx=onnx.__version__,
        # This stage's own code: a changed pass rebuilds instead of serving a stale model.
        code=[Path(__file__), Path(fuse_attention.__code__.co_filename)],
    )
    folder, _ = cached_artifact(
        cache_dir, f"optimized/{precision.name}", key, lambda out: _build(source, precision, fusion, out)
    )
    report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    path = folder / MODEL_FILE
    return OptimizedModel(path, report["fused_ops"], path.stat().st_size / 2**20, report["attention_layers"])
