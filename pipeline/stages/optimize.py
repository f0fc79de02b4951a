"""The optimize stage: graph fusion, then the chosen precision's transform, of a converted ONNX model.

Order: fuse first (attention, then ONNX Runtime's transformer fusions), then change
precision (pipeline/options/precisions/), so FP16 and INT8 work on the fused operators. Each result
is cached by the content of its input model and every option.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx

from pipeline.core.cache import cached_artifact, content_key
from pipeline.core.errors import ModelError, PipelineError
from pipeline.options.precisions import OptimizeInputs, PrecisionConfig
from pipeline.options.precisions.base import quiet_root_logger
from pipeline.stages.fusion import fuse_attention

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
    with quiet_root_logger():
        optimized = optimize_model(
            model,
            model_type="bert",
            num_heads=report.num_heads,
            hidden_size=report.hidden_size,
            opt_level=0,
        )
    return optimized.model, report.softmax_total


def _build(
    source: Path, precision: PrecisionConfig, fusion: bool, inputs: OptimizeInputs, out_dir: Path
) -> None:
    model = onnx.load(str(source))
    attention_layers = count_softmax(model)
    if fusion:
        model, attention_layers = fuse(model)
    target = out_dir / MODEL_FILE
    try:
        precision.apply(model, target, inputs)
    except PipelineError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot make the {precision.name} model from {source}: {exc}") from None
    final = onnx.load(str(target), load_external_data=False)
    report = {"fused_ops": fused_op_counts(final), "attention_layers": attention_layers}
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def optimize(
    source: Path,
    precision: PrecisionConfig,
    *,
    fusion: bool,
    cache_dir: Path,
    inputs: OptimizeInputs | None = None,
) -> OptimizedModel:
    """Returns the model to run: `source` itself for plain FP32, else a cached optimized copy.

    `inputs` carries what a precision may need besides the graph (calibration texts).
    """
    import onnxconverter_common
    import onnxruntime

    inputs = inputs or OptimizeInputs()
    if precision.keeps_graph and not fusion:
        model = onnx.load(str(source), load_external_data=False)
        attention_layers = count_softmax(model)
        return OptimizedModel(source, fused_op_counts(model), source.stat().st_size / 2**20, attention_layers)
    key = content_key(
        model=source,
        precision=precision.cache_parts(inputs),
        fusion=fusion,
        onnxruntime=onnxruntime.__version__,
        onnxconverter_common=onnxconverter_common.__version__,
        onnx=onnx.__version__,
        # This stage's own code and the precision's: a changed pass rebuilds instead of serving a stale model.
        code=[
            Path(__file__),
            Path(fuse_attention.__code__.co_filename),
            Path(inspect.getfile(type(precision))),
        ],
    )
    folder, _ = cached_artifact(
        cache_dir,
        f"optimized/{precision.name}",
        key,
        lambda out: _build(source, precision, fusion, inputs, out),
    )
    report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    path = folder / MODEL_FILE
    return OptimizedModel(path, report["fused_ops"], path.stat().st_size / 2**20, report["attention_layers"])
