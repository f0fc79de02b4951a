"""`hydra/launcher=ray`: every job of a sweep as a Ray task, on a Ray cluster of its own or a running one.

A Hydra launcher on Hydra's public Launcher API and Ray's public API (it replaces
hydra-ray-launcher, whose last release pins cloudpickle < 3). Beyond running the jobs it makes a
sweep across machines work: one absolute sweep folder for every job (workers have other working
directories and clocks), joining a running cluster without settings Ray refuses there, and a lost
task (its worker or node died) recorded FAILED in the sweep instead of aborting it.

Hydra imports this module on every run to find plugins, so it does not import Ray: `_core.py`
does, and only a sweep on this launcher imports it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, cast

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from pipeline.core.ray_cluster import ray_init_options

MISSING_RAY = "error: hydra/launcher=ray needs the ray extra: pip install -e '.[cpu,ray]'"


def require_ray() -> None:
    """Ends the process with one line (status 2) where Ray is not installed.

    Looks Ray up without importing it: Ray reads its authentication mode when imported, and
    `ray_init_options` sets that only in `launch`.
    """
    if importlib.util.find_spec("ray") is None:
        print(MISSING_RAY, file=sys.stderr)
        sys.exit(2)


class RequireRay(Callback):
    """conf/hydra/launcher/ray.yaml's callback: Hydra starts the sweep's callbacks (the MLflow
    parent run) before it creates the launcher, and this one runs first, so a missing Ray ends
    the sweep before anything of it exists."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_ray()


class ClusterRayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        options = cast(dict[str, Any], OmegaConf.to_container(ray, resolve=True))
        self.init_options: dict[str, Any] = options.get("init") or {}  # ray.init(...)
        self.remote_options: dict[str, Any] = options.get("remote") or {}  # ray.remote(...) for every job
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        require_ray()  # also where the launcher is configured without ray.yaml's callback
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        init_options = ray_init_options(self.init_options)
        from hydra_plugins.ernie_ray_launcher import _core  # imports Ray: after ray_init_options

        return _core.launch(self, init_options, job_overrides, initial_job_idx)
