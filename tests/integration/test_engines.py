"""Engines and precisions: each engine runs the tiny model end to end; BF16 and static INT8 keep
the FP32 predictions; invalid combinations are one clear error (SKIPPED in sweeps); a cached run
stays light."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.core.cpu import cpu_flags
from pipeline.core.errors import UnsupportedCombination
from pipeline.options.config import compose_config
from tests.helpers.jobs import evaluate_in_process

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_BF16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (the openvino extra)")
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither avx512_bf16 nor amx_bf16")


def tiny_config(tiny_model: Path, cache_dir: Path, tmp_path: Path, *overrides: str):
    return compose_config(
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"cache_dir={cache_dir}",
        "mlflow.enabled=false",
        "infer.predict_data=false",
        "device.num_threads=2",
        *overrides,
    )


def evaluate(tiny_model: Path, cache_dir: Path, tmp_path: Path, *overrides: str) -> dict:
    config = tiny_config(tiny_model, cache_dir, tmp_path, *overrides)
    return evaluate_in_process(config, tmp_path / "-".join(overrides).replace("=", "_"), *overrides)


@pytest.mark.parametrize(
    "engine",
    [
        "onnxruntime",
        pytest.param("openvino", marks=needs_openvino),
        "paddle_inference",
    ],
)
def test_each_engine_runs_the_tiny_model(
    engine: str, tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    reference = evaluate(tiny_model, cache_dir, tmp_path, "engine=onnxruntime")
    metrics = evaluate(tiny_model, cache_dir, tmp_path, f"engine={engine}")
    assert metrics["engine"] == engine and metrics["engine_version"] != "not installed"
    assert metrics["n_samples"] == 2000 and metrics["latency_ms"] > 0
    # The same weights in another runtime: the same predictions, to rounding.
    assert abs(metrics["accuracy"] - reference["accuracy"]) <= 0.002


@needs_bf16
@pytest.mark.parametrize("engine", [pytest.param("openvino", marks=needs_openvino), "paddle_inference"])
def test_bf16_agrees_with_fp32(engine: str, tiny_model: Path, cache_dir: Path, tmp_path: Path) -> None:
    metrics = evaluate(tiny_model, cache_dir, tmp_path, f"engine={engine}", "precision=bf16")
    assert metrics["agreement_vs_fp32"] >= 0.99, metrics
    assert metrics["accuracy_delta_vs_fp32"] >= -0.01


@pytest.mark.parametrize("engine", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_static_int8_keeps_accuracy(engine: str, tiny_model: Path, cache_dir: Path, tmp_path: Path) -> None:
    metrics = evaluate(
        tiny_model,
        cache_dir,
        tmp_path,
        f"engine={engine}",
        "precision=int8_static",
        "precision.calibration_samples=64",
    )
    assert metrics["accuracy_delta_vs_fp32"] >= -0.02, metrics
    assert metrics["agreement_vs_fp32"] >= 0.95
    assert metrics["fused_ops"] or engine == "openvino"


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_int8_calibrates_with_histograms(
    method: str, tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    metrics = evaluate(  # 40 samples in batches of 16: the histograms see whole batches of one shape
        tiny_model,
        cache_dir,
        tmp_path,
        "precision=int8_static",
        f"precision.calibration_method={method}",
        "precision.calibration_samples=40",
        "batch_size=16",
    )
    assert metrics["accuracy_delta_vs_fp32"] >= -0.02, metrics


def test_static_int8_is_cached_by_its_calibration_data(
    tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    from pipeline.stages.prepare import model_tokenizer, prepare_model

    config = tiny_config(
        tiny_model, cache_dir, tmp_path, "precision=int8_static", "precision.calibration_samples=32"
    )
    tokenizer, _ = model_tokenizer(config.model, config.infer.tokenizer)
    first = prepare_model(config, 2, tokenizer).path
    assert prepare_model(config, 2, tokenizer).path == first
    other = replace(config, precision=replace(config.precision, calibration_samples=48))
    assert prepare_model(other, 2, tokenizer).path != first


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["engine=paddle_inference", "precision=int8_static"],
            "engine=paddle_inference does not run precision=int8_static (it runs fp32, bf16)",
        ),
        (["engine=onnxruntime", "precision=bf16"], "engine=onnxruntime does not run precision=bf16"),
        (["engine=openvino", "device=gpu"], "engine=openvino does not run on device=gpu (it runs on cpu)"),
    ],
)
def test_invalid_combinations_are_one_config_error(overrides: list[str], message: str) -> None:
    with pytest.raises(UnsupportedCombination, match=message.replace("(", r"\(").replace(")", r"\)")):
        compose_config(*overrides)


@pytest.mark.skipif(HAS_BF16, reason="this CPU computes bfloat16 natively")
def test_bf16_without_native_support_names_what_the_cpu_lacks() -> None:
    with pytest.raises(UnsupportedCombination, match="this CPU has neither avx512_bf16 nor amx_bf16"):
        compose_config("engine=paddle_inference", "precision=bf16")
