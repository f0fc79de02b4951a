"""Paddle Inference on the CPU (oneDNN), reading the Paddle static graph itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import interrupts
from pipeline.core.errors import ModelError
from pipeline.core.files import environment_kept
from pipeline.core.model_files import find_model_files
from pipeline.runtimes.base import check_feedable, feed_for

# Importing paddle puts its own SIGTERM handler in Python's place (pipeline.core.interrupts).
with environment_kept(), interrupts.shielded():
    from paddle import inference


class PaddleInferenceSession:
    def __init__(self, path_prefix: Path, threads: int, onednn: bool, bf16: bool) -> None:
        files = find_model_files(path_prefix)
        config = inference.Config(str(files.graph), str(files.params))
        config.disable_gpu()
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(threads)
        if onednn:
            config.enable_mkldnn()
            if bf16:
                config.enable_mkldnn_bfloat16()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:  # Paddle raises its own error types from C++
            raise ModelError(
                f"Paddle Inference cannot load {files.graph}: {str(exc).strip()[:300]}"
            ) from None
        finally:
            interrupts.reclaim_signals()
        self.input_names = list(self.predictor.get_input_names())
        check_feedable(files.graph, self.input_names)
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def feed(
        self, input_ids: np.ndarray, pad_id: int, token_type_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id, token_type_ids)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        for name, array in feed.items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        return self.output.copy_to_cpu()
