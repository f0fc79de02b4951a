"""Execution providers: GPU requests fail loudly without CUDA; GPU paths run where there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hydra.errors import ConfigCompositionException

from pipeline.core.errors import DeviceError
from pipeline.options.config import ConvertConfig, compose_config
from pipeline.options.devices import CpuDevice, GpuDevice
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(HAS_CUDA, reason="this machine has the CUDA provider")
def test_gpu_without_cuda_provider_says_how_to_fix() -> None:
    with pytest.raises(DeviceError) as error:
        GpuDevice().onnxruntime_providers(["input_ids"], 32, 128)
    message = str(error.value)
    assert "CUDAExecutionProvider" in message
    assert str(ort.get_available_providers()) in message
    assert "pip install -e '.[gpu]'" in message and "device=cpu" in message


def test_tensorrt_is_a_gpu_setting() -> None:
    with pytest.raises(ConfigCompositionException, match=r"Could not override 'device\.tensorrt'"):
        compose_config("device.tensorrt=true")
    assert compose_config("device=gpu", "device.tensorrt=true").device.tensorrt


def test_session_options_are_applied(tiny_model: Path, tmp_path: Path) -> None:
    device = CpuDevice(num_threads=1, inter_op_threads=2, graph_optimization_level="basic")
    engine = OnnxRuntimeSession(convert(tiny_model / "export" / "float32", ConvertConfig(), tmp_path), device)
    assert set(engine.input_names) == {"input_ids", "token_type_ids"}
    assert engine.session.get_session_options().inter_op_num_threads == 2
    ids = np.array([[1, 50, 60, 2]], dtype=np.int64)
    assert engine.run(engine.feed(ids, 0)).shape == (1, 2)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_gpu_session_with_io_binding_matches_cpu(tiny_model: Path, tmp_path: Path) -> None:
    model = convert(tiny_model / "export" / "float32", ConvertConfig(), tmp_path)
    ids = np.array([[1, 50, 60, 2], [1, 70, 2, 0]], dtype=np.int64)
    cpu = OnnxRuntimeSession(model, SessionSettings(threads=1))
    gpu = OnnxRuntimeSession(model, GpuDevice(num_threads=1, io_binding=True))
    assert "CUDAExecutionProvider" in gpu.session.get_providers()
    np.testing.assert_allclose(gpu.run(gpu.feed(ids, 0)), cpu.run(cpu.feed(ids, 0)), atol=1e-3)
