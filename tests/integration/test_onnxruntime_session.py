"""ONNX Runtime sessions: the engine's settings reach the session; GPU paths run where there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pipeline.options.config import ConvertConfig, compose_config
from pipeline.runtimes.onnxruntime import OnnxRuntimeSession, SessionSettings
from pipeline.stages.convert import convert

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_engine_settings_reach_the_session(tiny_model: Path, tmp_path: Path) -> None:
    config = compose_config(
        "device.num_threads=1", "engine.inter_op_threads=2", "engine.graph_optimization_level=basic"
    )
    model = convert(tiny_model / "export" / "float32", ConvertConfig(), tmp_path)
    engine = config.engine.open(model, config.device, config.precision, max_batch=8, max_length=32)
    assert set(engine.input_names) == {"input_ids", "token_type_ids"}
    options = engine.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ids = np.array([[1, 50, 60, 2]], dtype=np.int64)
    assert engine.run(engine.feed(ids, 0)).shape == (1, 2)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_gpu_session_with_io_binding_matches_cpu(tiny_model: Path, tmp_path: Path) -> None:
    model = convert(tiny_model / "export" / "float32", ConvertConfig(), tmp_path)
    ids = np.array([[1, 50, 60, 2], [1, 70, 2, 0]], dtype=np.int64)
    cpu = OnnxRuntimeSession(model, SessionSettings(threads=1))
    gpu = OnnxRuntimeSession(model, SessionSettings(threads=1, gpu_id=0, io_binding=True))
    assert "CUDAExecutionProvider" in gpu.session.get_providers()
    np.testing.assert_allclose(gpu.run(gpu.feed(ids, 0)), cpu.run(cpu.feed(ids, 0)), atol=1e-3)
