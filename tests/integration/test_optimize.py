"""Fusion, FP16 and INT8 on real paddle2onnx ERNIE graphs, checked against FP32 on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxconverter_common import float16

from pipeline import DEMO_MODEL_DIR
from pipeline.core.data import read_labels, read_split
from pipeline.core.tokenizer import load_tokenizer
from pipeline.options.config import ConvertConfig
from pipeline.options.precisions.fp16 import Fp16Precision, align_cast_types
from pipeline.options.precisions.fp32 import Fp32Precision
from pipeline.options.precisions.int8 import Int8Precision, QuantizationConfig
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert
from pipeline.stages.fusion import fuse_attention
from pipeline.stages.infer import run_inference
from pipeline.stages.optimize import optimize


@pytest.fixture(scope="module")
def demo_onnx(cache_dir: Path) -> Path:
    return convert(DEMO_MODEL_DIR / "export" / "float32", ConvertConfig(), cache_dir)


@pytest.fixture(scope="module")
def dev_encoded(demo_data_dir: Path):
    split = read_split(demo_data_dir, "dev", read_labels(demo_data_dir))
    return split, load_tokenizer(str(DEMO_MODEL_DIR / "tokenizer")).encode(split.texts, 128)


def predict(model_path: Path, encoded, batch_size: int = 64) -> np.ndarray:
    engine = OnnxRuntimeSession(model_path, SessionSettings(threads=2))
    return run_inference(engine, encoded, batch_size).logits


def random_feed(vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(4, 24)).astype(np.int64)
    ids[1, 12:] = 0
    ids[3, 3:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}


def test_attention_fusion_covers_every_layer_and_keeps_logits(demo_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(demo_onnx))
    layers = sum(1 for n in model.graph.node if n.op_type == "Softmax")
    report = fuse_attention(model)
    assert layers >= 2 and report.fused == layers == report.softmax_total
    assert sum(1 for n in model.graph.node if n.op_type == "Attention") == layers
    assert not any(n.op_type == "Softmax" for n in model.graph.node)
    fused_path = tmp_path / "fused.onnx"
    onnx.save(model, str(fused_path))
    feed = random_feed(vocab=1000)
    plain = ort.InferenceSession(str(demo_onnx)).run(None, feed)[0]
    fused = ort.InferenceSession(str(fused_path)).run(None, feed)[0]
    np.testing.assert_allclose(fused, plain, atol=1e-3)


def test_fused_model_reports_fused_ops_and_is_cached(demo_onnx: Path, tmp_path: Path) -> None:
    fp32 = Fp32Precision()
    first = optimize(demo_onnx, fp32, fusion=True, cache_dir=tmp_path)
    layers = first.attention_layers
    assert first.fused_ops["Attention"] == layers
    assert first.fused_ops["SkipLayerNormalization"] == 2 * layers
    assert first.fused_ops["BiasGelu"] == layers
    mtime = first.path.stat().st_mtime_ns
    again = optimize(demo_onnx, fp32, fusion=True, cache_dir=tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime  # not re-optimized
    unfused = optimize(demo_onnx, fp32, fusion=False, cache_dir=tmp_path)
    assert unfused.path == demo_onnx and "Attention" not in unfused.fused_ops


def test_seed_fp16_recipe_fails_for_the_cast_reason_and_the_fix_loads(demo_onnx: Path) -> None:
    converted = float16.convert_float_to_float16(onnx.load(str(demo_onnx)), keep_io_types=True)
    with pytest.raises(Exception, match=r"Type \(tensor\(float16\)\) of output arg .* does not match"):
        ort.InferenceSession(converted.SerializeToString())
    assert align_cast_types(converted) >= 1
    session = ort.InferenceSession(converted.SerializeToString())
    feed = random_feed(vocab=1000)
    reference = ort.InferenceSession(str(demo_onnx)).run(None, feed)[0]
    np.testing.assert_allclose(session.run(None, feed)[0], reference, atol=2e-2)


@pytest.mark.parametrize("fusion", [True, False])
def test_fp16_agrees_with_fp32_on_the_dev_split(
    demo_onnx: Path, dev_encoded, cache_dir: Path, fusion: bool
) -> None:
    split, encoded = dev_encoded
    fp32 = predict(optimize(demo_onnx, Fp32Precision(), fusion=fusion, cache_dir=cache_dir).path, encoded)
    fp16_model = optimize(demo_onnx, Fp16Precision(), fusion=fusion, cache_dir=cache_dir)
    fp16 = predict(fp16_model.path, encoded)
    gold = np.asarray(split.label_ids)
    agreement = np.mean(fp16.argmax(-1) == fp32.argmax(-1))
    delta = abs(np.mean(fp16.argmax(-1) == gold) - np.mean(fp32.argmax(-1) == gold))
    assert agreement >= 0.995 and delta <= 0.002
    inputs = ort.InferenceSession(str(fp16_model.path)).get_inputs()
    assert all(i.type == "tensor(int64)" for i in inputs)  # float32 IO kept: the same feeds work


def test_int8_keeps_accuracy_within_one_point(demo_onnx: Path, dev_encoded, cache_dir: Path) -> None:
    split, encoded = dev_encoded
    fp32 = predict(optimize(demo_onnx, Fp32Precision(), fusion=True, cache_dir=cache_dir).path, encoded)
    int8_model = optimize(demo_onnx, Int8Precision(), fusion=True, cache_dir=cache_dir)
    assert int8_model.fused_ops.get("QAttention", 0) == int8_model.attention_layers
    assert int8_model.fused_ops["MatMulInteger"] >= 2 * int8_model.attention_layers
    int8 = predict(int8_model.path, encoded)
    gold = np.asarray(split.label_ids)
    drop = np.mean(fp32.argmax(-1) == gold) - np.mean(int8.argmax(-1) == gold)
    assert drop <= 0.01


def test_int8_options_change_the_artifact(demo_onnx: Path, tmp_path: Path) -> None:
    default = optimize(demo_onnx, Int8Precision(), fusion=True, cache_dir=tmp_path)
    excluded = Int8Precision(quantization=QuantizationConfig(weight_type="QUInt8", op_types=["MatMul"]))
    other = optimize(demo_onnx, excluded, fusion=True, cache_dir=tmp_path)
    assert other.path != default.path
    assert "QAttention" not in other.fused_ops and other.fused_ops["Attention"] == other.attention_layers
