"""What every precision is: a config class that turns a (fused) FP32 graph into the model to run."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.options.groups import OptionGroup

if TYPE_CHECKING:
    import onnx

PRECISIONS: OptionGroup[PrecisionConfig] = OptionGroup("precision")

# A value an Optuna search may choose (what optuna.distributions.CategoricalChoiceType allows).
SearchChoice = bool | int | float | str | None


@dataclass(frozen=True)
class OptimizeInputs:
    """What a precision may need besides the graph (e.g. calibration batches for static INT8).

    Callers fill what the precision asks for (`needs_calibration`); one that is missing is an error.
    """

    # Feeds by graph input name, as the engine would get them: samples of the train split.
    calibration_feeds: list[dict[str, np.ndarray]] = field(default_factory=list)

    def calibration_digest(self) -> str:
        digest = hashlib.sha256()
        for feed in self.calibration_feeds:
            for name in sorted(feed):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(feed[name]).tobytes())
        return digest.hexdigest()


@dataclass
class PrecisionConfig:
    name: str = "fp32"

    def __post_init__(self) -> None:
        if type(self) is not PRECISIONS.get(self.name):
            raise ConfigError(
                f"precision.name={self.name!r} does not match the precision chosen; use precision=NAME"
            )

    # The FP32 model itself: its predictions are the reference others are compared with.
    is_fp32_reference: ClassVar[bool] = False
    # The graph is used as converted (and fused): no copy is written where nothing is fused.
    keeps_graph: ClassVar[bool] = False
    # It needs calibration batches (OptimizeInputs.calibration_feeds) to be built.
    needs_calibration: ClassVar[bool] = False
    # The engine runs the graph in this precision (e.g. bf16 on OpenVINO); None: as the graph says.
    runtime_precision: ClassVar[str | None] = None
    # Options (keys under `precision.`) an Optuna search also tries in the trials of this precision.
    search_options: ClassVar[dict[str, tuple[SearchChoice, ...]]] = {}

    def cpu_lacks(self) -> str | None:
        """What this CPU lacks for this precision, where it needs a feature (None: nothing)."""
        return None

    def cache_parts(self, inputs: OptimizeInputs) -> dict[str, Any]:
        """Everything that decides the built model, for the content-addressed cache key."""
        return asdict(self)

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        """Writes the model to run at `target`."""
        raise NotImplementedError


@contextmanager
def quantizer_input(model: onnx.ModelProto) -> Iterator[Path]:
    """ONNX Runtime's quantizers read a file: the model saved to a temporary one, their logging quiet."""
    import onnx

    with quiet_root_logger(), tempfile.TemporaryDirectory(prefix="quantize-") as work:
        source = Path(work) / "fp32.onnx"
        onnx.save(model, str(source))
        yield source


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's fusion and quantization tools log every step at INFO on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)
