"""The config groups compose, every seed parameter has its key, and bad values get clear errors."""

from __future__ import annotations

import re

import pytest
from hydra.errors import ConfigCompositionException

from pipeline import PROJECT_ROOT
from pipeline.core.errors import ConfigError
from pipeline.options.config import compose_config as composed


def test_default_config_is_the_embedded_demo() -> None:
    config = composed()
    assert config.device.name == "cpu"
    assert config.precision.name == "fp32"
    assert config.model.name == "demo"
    assert config.dataset.name == "demo" and config.dataset.dir is None
    assert config.batch_size == 32 and config.max_seq_length == 128
    assert config.convert.opset == 13
    assert config.model.path_prefix.endswith("assets/demo-model/export/float32")
    assert config.device.num_threads >= 1  # resolved to the physical core count
    assert config.mlflow.tracking_uri == f"sqlite:///{PROJECT_ROOT}/mlflow.db"


def test_every_seed_parameter_has_a_key() -> None:
    config = composed(
        "device=gpu",
        "device.id=1",
        "device.num_threads=3",
        "precision=fp32",
        "model.path_prefix=/m/export/float32",
        "model.name_or_path=/m/tokenizer",
        "dataset.dir=/d",
        "dataset.eval_split=test",
        "batch_size=8",
        "max_seq_length=256",
    )
    assert (config.device.name, config.device.id, config.device.num_threads) == ("gpu", 1, 3)
    assert config.model.path_prefix == "/m/export/float32"
    assert config.model.name_or_path == "/m/tokenizer"
    assert (config.dataset.dir, config.dataset.eval_split) == ("/d", "test")
    assert (config.batch_size, config.max_seq_length) == (8, 256)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_size=0", "batch_size=0 must be >= 1"),
        ("max_seq_length=513", "max_seq_length=513 must be within 2..512"),
        ("model.architecture.max_positions=64", "max_seq_length=128 must be within 2..64"),
        ("model.weights=pretrained", "model.weights='pretrained' is not one of export, checkpoint, random"),
        ("model.inputs=[token_type_ids]", "model.inputs=['token_type_ids'] must start with input_ids"),
        ("model.architecture.heads=5", "hidden=128 must be a multiple of heads=5"),
        ("dataset.eval_split=train", "dataset.eval_split='train' is not one of dev, test"),
        ("device.num_threads=0", "device.num_threads=0 must be >= 1"),
        ("convert.opset=5", "convert.opset=5 must be within 7..19"),
        ("infer.padding=none", "infer.padding='none' is not one of longest, max_length"),
    ],
)
def test_out_of_range_values_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        composed(override)


def test_wrong_type_is_refused_when_composing() -> None:
    with pytest.raises(ConfigCompositionException, match="batch_size=many"):
        composed("batch_size=many")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["precision.name=int8"],
            "precision.name='int8' does not match the precision chosen; use precision=NAME",
        ),
        (["device.name=gpu"], "device.name='gpu' does not match the device chosen; use device=NAME"),
        (["engine.name=tensorrt"], "engine='tensorrt' is not one of onnxruntime, openvino, paddle_inference"),
        (
            ["engine=onnxruntime", "engine.name=openvino"],
            "engine.name='openvino' does not match the engine chosen",
        ),
    ],
)
def test_options_are_chosen_by_group_not_by_name_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        composed(*overrides)


def test_each_option_is_its_own_class_with_its_own_settings() -> None:
    int8 = composed("precision=int8", "precision.quantization.per_channel=true").precision
    assert type(int8).__name__ == "Int8Precision" and int8.quantization.per_channel
    seed_gpu = composed("+seed_row=gpu_fp16")
    assert (type(seed_gpu.device).__name__, seed_gpu.device.id) == ("GpuDevice", 0)
    assert (type(seed_gpu.engine).__name__, seed_gpu.engine.io_binding) == ("OnnxRuntimeEngine", True)
    with pytest.raises(ConfigCompositionException, match="quantization"):
        composed("precision=fp32", "precision.quantization.per_channel=true")
