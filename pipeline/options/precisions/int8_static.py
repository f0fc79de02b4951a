"""INT8 static quantization (QDQ): weights and activations quantized with scales calibrated on
samples of the dataset's train split (`onnxruntime.quantization.quantize_static`), per-channel
weights. Runs on ONNX Runtime and OpenVINO (which turns the QDQ pairs into its INT8 kernels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.core.errors import ConfigError, check_choice
from pipeline.options.precisions.base import (
    PRECISIONS,
    OptimizeInputs,
    PrecisionConfig,
    SearchChoice,
    quantizer_input,
)

if TYPE_CHECKING:
    import onnx

CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@PRECISIONS.register("int8_static")
@dataclass
class Int8StaticPrecision(PrecisionConfig):
    name: str = "int8_static"
    needs_calibration: ClassVar[bool] = True
    calibration_samples: int = 256  # train-split texts the activation ranges are measured on
    calibration_method: str = "minmax"  # minmax | entropy | percentile
    per_channel: bool = True  # one weight scale per output channel
    op_types: list[str] = field(default_factory=lambda: ["MatMul"])
    search_options: ClassVar[dict[str, tuple[SearchChoice, ...]]] = {
        "calibration_method": ("minmax", "percentile", "entropy"),
        "per_channel": (True, False),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.calibration_method, tuple(CALIBRATION_METHODS), "precision.calibration_method")
        if self.calibration_samples < 1:
            raise ConfigError(f"precision.calibration_samples={self.calibration_samples} must be >= 1")

    def cache_parts(self, inputs: OptimizeInputs) -> dict[str, Any]:
        return {**asdict(self), "calibration": inputs.calibration_digest()}

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        if not inputs.calibration_feeds:
            raise ConfigError("precision=int8_static needs calibration batches (from the train split)")

        class Batches(CalibrationDataReader):
            def __init__(self) -> None:
                self._feeds = iter(inputs.calibration_feeds)

            def get_next(self) -> dict | None:
                return next(self._feeds, None)

        with quantizer_input(model) as source:
            quantize_static(
                source,
                target,
                Batches(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(self.op_types),
                per_channel=self.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod[CALIBRATION_METHODS[self.calibration_method]],
                extra_options={"ActivationSymmetric": True},
            )
