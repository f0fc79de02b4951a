"""Device and engine options: the device says where, the engine how; moved keys name their new home;
a GPU request without the CUDA provider says how to fix the install."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from pipeline.cli import explain
from pipeline.core.errors import DeviceError
from pipeline.options.config import compose_config
from pipeline.runtimes.onnxruntime import SessionSettings, providers

ort = pytest.importorskip("onnxruntime")
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(HAS_CUDA, reason="this machine has the CUDA provider")
def test_gpu_without_cuda_provider_says_how_to_fix() -> None:
    config = compose_config("device=gpu")
    reason = config.engine.unavailable_reason(config.device)
    assert reason is not None and "CUDAExecutionProvider" in reason
    assert str(ort.get_available_providers()) in reason
    assert "pip install -e '.[gpu]'" in reason and "device=cpu" in reason
    with pytest.raises(DeviceError, match="CUDAExecutionProvider"):
        providers(SessionSettings(gpu_id=0), ["input_ids"], 32, 128)


def test_tensorrt_is_an_engine_setting_and_the_old_key_names_the_new() -> None:
    assert compose_config("device=gpu", "engine.tensorrt=true").engine.tensorrt
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("device.tensorrt=true")
    assert explain(error.value) == "device.tensorrt is now engine.tensorrt: use engine.tensorrt=... instead"


def test_predict_engine_was_renamed_executor() -> None:
    assert compose_config("predict.executor=ray").predict.executor == "ray"
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("predict.engine=ray")
    assert explain(error.value) == "predict.engine is now predict.executor: use predict.executor=... instead"


def test_the_device_holds_only_where_and_threads() -> None:
    gpu = compose_config("device=gpu", "device.id=1", "device.num_threads=3").device
    assert (gpu.name, gpu.id, gpu.threads) == ("gpu", 1, 3)
    assert set(vars(gpu)) == {"name", "id", "num_threads"}
