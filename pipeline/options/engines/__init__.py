"""Inference engines: each module registers one `EngineConfig` subclass (`engine=<name>`)."""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.options.engines.base import ENGINES, EngineConfig

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ENGINES", "EngineConfig"]
