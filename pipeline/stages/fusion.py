"""Attention fusion for paddle2onnx ERNIE graphs.

ONNX Runtime's transformer optimizer fuses LayerNorm, SkipLayerNormalization and BiasGelu
in these graphs but no attention: paddle2onnx builds the mask inside the graph
(`Equal(input_ids, pad) -> Cast -> Mul(-1e4) -> Unsqueeze`) and scales Q before the QK
product, neither of which its BERT patterns expect. This pass matches the attention of
each layer as paddle2onnx emits it and replaces it with one `com.microsoft.Attention`
node, fed a raw [batch, seq] int32 mask built once from the same `Equal` node (or from the
graph's `attention_mask` input, for models exported with one).

Matched per layer (Identity nodes removed first):

    x -> MatMul(Wq) -> Add(bq) -> Reshape -> Transpose(0,2,1,3) -> Mul(scale) [-> Add(0)] -+
    x -> MatMul(Wk) -> Add(bk) -> Reshape -> Transpose(0,2,1,3) -> Transpose(0,1,3,2) ------+-> MatMul
    MatMul -> Add(mask) -> Softmax -> MatMul(V) -> Transpose(0,2,1,3) -> Reshape -> out
    x -> MatMul(Wv) -> Add(bv) -> Reshape -> Transpose(0,2,1,3) ------------------------------^
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MASK_NAME = "fused_attention_mask_index"


@dataclass(frozen=True)
class AttentionFusionReport:
    fused: int  # attention blocks replaced
    softmax_total: int  # softmax nodes in the graph: every one is an attention candidate
    num_heads: int
    hidden_size: int


class _Graph:
    """Producer/consumer lookups and constant values over a GraphProto."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.refresh()

    def refresh(self) -> None:
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for name in node.input:
                self.consumers[name].append(node)

    def const(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def parent(self, node: onnx.NodeProto, index: int, op_type: str) -> onnx.NodeProto | None:
        if index >= len(node.input):
            return None
        found = self.producer.get(node.input[index])
        return found if found is not None and found.op_type == op_type else None

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def _perm(node: onnx.NodeProto) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


def remove_identities(model: onnx.ModelProto) -> int:
    """Rewires consumers of Identity nodes to their input; graph outputs keep their names."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            source = node.input[0]
            rename[node.output[0]] = rename.get(source, source)
        else:
            kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    removed = len(graph.node) - len(kept)
    del graph.node[:]
    graph.node.extend(kept)
    return removed


def _projection(g: _Graph, transposed: onnx.NodeProto) -> tuple[str, str, str, int, int] | None:
    """Transpose(0,2,1,3) <- Reshape <- Add(bias) <- MatMul(x, W): (x, W, bias, heads, head_size)."""
    if transposed.op_type != "Transpose" or _perm(transposed) != [0, 2, 1, 3]:
        return None
    reshape = g.parent(transposed, 0, "Reshape")
    add = g.parent(reshape, 0, "Add") if reshape is not None else None
    if reshape is None or add is None:
        return None
    matmul = g.parent(add, 0, "MatMul")
    bias_index = 1
    if matmul is None:
        matmul, bias_index = g.parent(add, 1, "MatMul"), 0
    shape = g.const(reshape.input[1])
    if matmul is None or shape is None or len(shape) != 4:
        return None
    weight = g.const(matmul.input[1])
    bias = g.const(add.input[bias_index])
    if weight is None or bias is None or weight.ndim != 2:
        return None
    return matmul.input[0], matmul.input[1], add.input[bias_index], int(shape[2]), int(shape[3])


def _scaled_query(g: _Graph, node: onnx.NodeProto) -> tuple[onnx.NodeProto, float] | None:
    """[Add(0) <-] Mul(scale) <- Transpose: paddle's `scale` op on Q. Returns (Transpose, scale)."""
    mul: onnx.NodeProto | None = node
    if node.op_type == "Add":
        zero = g.const(node.input[1])
        if zero is None or np.any(zero != 0):
            return None
        mul = g.producer.get(node.input[0])
    if mul is None or mul.op_type != "Mul":
        return None
    for data, factor in ((0, 1), (1, 0)):
        scale = g.const(mul.input[factor])
        source = g.producer.get(mul.input[data])
        if scale is not None and scale.size == 1 and source is not None and source.op_type == "Transpose":
            return source, float(scale.reshape(-1)[0])
    return None


_AFFINE_OPS = ("Unsqueeze", "Cast", "Mul", "Add", "Sub", "Reshape")
# The additive mask must leave kept positions alone and push masked ones at least this low.
_MASKED_AT_MOST = -1000.0


@dataclass(frozen=True)
class _MaskSource:
    tensor: str  # Equal(input_ids, pad)'s output, or the `attention_mask` graph input
    is_padding: bool  # True: 1 marks padding (the Equal); False: 1 marks tokens to attend


def _mask_source(g: _Graph, mask_name: str) -> _MaskSource | None:
    """Walks the additive mask back through element-wise affine ops to what it is built from:
    `Equal(input_ids, pad)` (the graph builds it, as the seed's exports do) or an
    `attention_mask` input. The chain is evaluated at 0 and 1 to check the polarity, so a
    mask with other semantics is left unfused rather than fused wrongly."""
    graph_inputs = {i.name for i in g.graph.input}
    chain: list[onnx.NodeProto] = []
    name = mask_name
    for _ in range(12):
        if name == "attention_mask" and name in graph_inputs:
            source = _MaskSource(name, is_padding=False)
            break
        node = g.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Equal":
            if not any(i in graph_inputs for i in node.input):
                return None
            source = _MaskSource(node.output[0], is_padding=True)
            break
        if node.op_type not in _AFFINE_OPS:
            return None
        data_inputs = [i for i in node.input if g.const(i) is None]
        if len(data_inputs) != 1:
            return None
        chain.append(node)
        name = data_inputs[0]
    else:
        return None

    def additive(flag: float) -> float | None:
        value = flag
        for node in reversed(chain):
            if node.op_type not in ("Mul", "Add", "Sub"):
                continue
            data_first = g.const(node.input[0]) is None
            constant = g.const(node.input[1] if data_first else node.input[0])
            if constant is None or constant.size != 1:
                return None
            c = float(constant.reshape(-1)[0])
            if node.op_type == "Mul":
                value *= c
            elif node.op_type == "Add":
                value += c
            else:
                value = value - c if data_first else c - value
        return value

    masked, kept = (additive(1.0), additive(0.0)) if source.is_padding else (additive(0.0), additive(1.0))
    if masked is None or kept is None or abs(kept) > 1e-6 or masked > _MASKED_AT_MOST:
        return None
    return source


def _mask_index(source: _MaskSource, new_nodes: list[onnx.NodeProto]) -> str:
    """1 for real tokens, 0 for padding: the raw 2-D mask the Attention kernel takes."""
    if not any(MASK_NAME in n.output for n in new_nodes):
        keep = source.tensor
        if source.is_padding:
            keep = f"{MASK_NAME}_bool"
            new_nodes.append(helper.make_node("Not", [source.tensor], [keep], name=f"{MASK_NAME}_not"))
        new_nodes.append(
            helper.make_node("Cast", [keep], [MASK_NAME], name=f"{MASK_NAME}_cast", to=TensorProto.INT32)
        )
    return MASK_NAME


def _prune(model: onnx.ModelProto) -> None:
    """Drops nodes and initializers nothing reads any more."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [t for t in graph.initializer if t.name not in needed]
    for tensor in unused:
        graph.initializer.remove(tensor)


def _topological_sort(model: onnx.ModelProto) -> None:
    graph = model.graph
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i not in available})[:5]
            raise ValueError(f"graph has a cycle or a missing input after attention fusion: {missing}")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def fuse_attention(model: onnx.ModelProto) -> AttentionFusionReport:
    """Rewrites `model` in place; returns how many attention blocks were fused."""
    remove_identities(model)
    g = _Graph(model.graph)
    new_nodes: list[onnx.NodeProto] = []
    new_initializers: list[onnx.TensorProto] = []
    replaced_outputs: set[str] = set()
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    heads = hidden = 0
    for index, softmax in enumerate(softmaxes):
        add_mask = g.parent(softmax, 0, "Add")
        if add_mask is None:
            continue
        qk = g.parent(add_mask, 0, "MatMul") or g.parent(add_mask, 1, "MatMul")
        if qk is None:
            continue
        mask_input = add_mask.input[1] if add_mask.input[0] == qk.output[0] else add_mask.input[0]
        mask_source = _mask_source(g, mask_input)
        q_scaled = g.producer.get(qk.input[0])
        k_t = g.parent(qk, 1, "Transpose")
        pv = g.only_consumer(softmax.output[0], "MatMul")
        if mask_source is None or q_scaled is None or k_t is None or pv is None or _perm(k_t) != [0, 1, 3, 2]:
            continue
        scaled = _scaled_query(g, q_scaled)
        k_transposed = g.producer.get(k_t.input[0])
        v_transposed = g.producer.get(pv.input[1])
        out_transpose = g.only_consumer(pv.output[0], "Transpose")
        if scaled is None or k_transposed is None or v_transposed is None or out_transpose is None:
            continue
        out_reshape = g.only_consumer(out_transpose.output[0], "Reshape")
        if out_reshape is None or _perm(out_transpose) != [0, 2, 1, 3]:
            continue
        q = _projection(g, scaled[0])
        k = _projection(g, k_transposed)
        v = _projection(g, v_transposed)
        if q is None or k is None or v is None or not (q[0] == k[0] == v[0]):
            continue
        if not (q[3] == k[3] == v[3] and q[4] == k[4] == v[4]):
            continue
        weights = np.concatenate([g.const(p[1]) for p in (q, k, v)], axis=1).astype(np.float32)
        biases = np.concatenate([g.const(p[2]) for p in (q, k, v)]).astype(np.float32)
        prefix = f"fused_attention_{index}"
        new_initializers += [
            numpy_helper.from_array(weights, f"{prefix}_qkv_weight"),
            numpy_helper.from_array(biases, f"{prefix}_qkv_bias"),
        ]
        mask = _mask_index(mask_source, new_nodes)
        new_nodes.append(
            helper.make_node(
                "Attention",
                [q[0], f"{prefix}_qkv_weight", f"{prefix}_qkv_bias", mask],
                [out_reshape.output[0]],
                name=prefix,
                domain="com.microsoft",
                num_heads=q[3],
                scale=scaled[1],
            )
        )
        replaced_outputs.add(out_reshape.output[0])
        heads, hidden = q[3], q[3] * q[4]

    if new_nodes:
        kept = [n for n in model.graph.node if not (set(n.output) & replaced_outputs)]
        del model.graph.node[:]
        model.graph.node.extend(kept + new_nodes)
        model.graph.initializer.extend(new_initializers)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        _topological_sort(model)
        _prune(model)
    fused = sum(1 for n in new_nodes if n.op_type == "Attention")
    return AttentionFusionReport(
        fused=fused, softmax_total=len(softmaxes), num_heads=heads, hidden_size=hidden
    )
