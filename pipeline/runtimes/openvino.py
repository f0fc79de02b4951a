"""OpenVINO Runtime on the CPU, reading an ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from pipeline.core.errors import ModelError
from pipeline.runtimes.base import check_feedable, feed_for


class OpenVinoSession:
    def __init__(self, model_path: Path, threads: int, precision_hint: str, performance_hint: str) -> None:
        core = ov.Core()
        try:
            model = core.read_model(str(model_path))
            self.compiled = core.compile_model(
                model,
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": threads,
                    "INFERENCE_PRECISION_HINT": precision_hint,
                    "PERFORMANCE_HINT": performance_hint,
                },
            )
        except RuntimeError as exc:
            raise ModelError(
                f"OpenVINO cannot load {model_path}: {str(exc).strip().splitlines()[0]}"
            ) from None
        self.input_names = [port.any_name for port in self.compiled.inputs]
        check_feedable(model_path, self.input_names)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def feed(
        self, input_ids: np.ndarray, pad_id: int, token_type_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        return feed_for(self.input_names, input_ids, pad_id, token_type_ids)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(feed)
        return self.request.get_output_tensor(0).data.copy()
