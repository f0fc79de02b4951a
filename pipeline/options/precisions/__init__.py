"""Numeric precisions: each module registers one `PrecisionConfig` subclass (`precision=<name>`)."""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.options.precisions.base import PRECISIONS, OptimizeInputs, PrecisionConfig

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PRECISIONS", "OptimizeInputs", "PrecisionConfig"]
