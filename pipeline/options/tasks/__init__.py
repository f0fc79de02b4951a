"""Tasks: each module registers one `TaskConfig` subclass (`task=<name>`), which holds the task's
data format, how its samples are encoded, its head (probabilities -> label sets) and its metrics."""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.options.tasks.base import TASKS, TaskConfig

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "TaskConfig"]
