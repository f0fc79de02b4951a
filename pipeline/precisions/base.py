"""What every precision is: a config class that turns a (fused) FP32 graph into the model to run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.registry import Registry

if TYPE_CHECKING:
    import onnx

PRECISIONS: Registry[PrecisionConfig] = Registry("precision")


@dataclass(frozen=True)
class OptimizeInputs:
    """What a precision may need besides the graph (e.g. calibration texts for static INT8).

    Callers fill what they have; a precision that needs something missing says so.
    """

    calibration_texts: list[str] = field(default_factory=list)


@dataclass
class PrecisionConfig:
    name: str = "fp32"

    def __post_init__(self) -> None:
        if type(self) is not PRECISIONS.get(self.name):
            raise ConfigError(
                f"precision.name={self.name!r} does not match the precision chosen; use precision=NAME"
            )

    @property
    def keeps_fp32_graph(self) -> bool:
        """True where the model runs in FP32 as converted: it needs no copy when nothing is fused,
        and it is its own FP32 reference."""
        return False

    def cache_parts(self, inputs: OptimizeInputs) -> dict[str, Any]:
        """Everything that decides the built model, for the content-addressed cache key."""
        return asdict(self)

    def apply(self, model: onnx.ModelProto, target: Path, inputs: OptimizeInputs) -> None:
        """Writes the model to run at `target`."""
        raise NotImplementedError


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
