"""`hydra/launcher=ray`: every job of a sweep as a Ray task, on a running Ray cluster or one of its own.

A Hydra launcher on Hydra's public Launcher API and Ray's public API (it replaces
hydra-ray-launcher, whose last release pins cloudpickle < 3), with Hydra's launcher's settings:
`hydra.launcher.ray.init` goes to `ray.init` and `hydra.launcher.ray.remote` to `ray.remote`
(`num_cpus`, `max_retries`, ...). `init.address: null` does what Hydra's launcher does (Ray's
own rule): join the cluster in RAY_ADDRESS, else the one `ray start` runs on this machine, else
start one for this sweep. Beyond running the jobs it makes a sweep across machines work: one
absolute sweep folder for every job (workers have other working directories and clocks), a
setting that cannot apply to the joined cluster refused in one line, a lost task (its worker or
node died) recorded FAILED in the sweep instead of aborting it, and a worker that cannot import
this project said so.

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

from pipeline.core.errors import ConfigError
from pipeline.core.ray_cluster import ray_init_options, running_cluster

MISSING_RAY = "error: hydra/launcher=ray needs the ray extra: pip install -e '.[cpu,ray]'"


def require_ray() -> None:
    """Ends the process with one line (status 2) where Ray is not installed.

    Looks Ray up without importing it: Ray reads its authentication mode when imported, and
    `ray_init_options` sets that only in `launch`.
    """
    if importlib.util.find_spec("ray") is None:
        print(MISSING_RAY, file=sys.stderr)
        sys.exit(2)


def init_options(init: dict[str, Any]) -> dict[str, Any]:
    """`ray.init`'s options for this sweep, or one line (status 2) where a setting cannot apply."""
    try:
        return ray_init_options(init)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def cluster_described(init: dict[str, Any], options: dict[str, Any]) -> str:
    """Which cluster the sweep runs on, for its log."""
    if options["address"] == "local":
        return "a Ray cluster of this sweep's own"
    found = running_cluster() if init.get("address") is None else None
    return f"the Ray cluster at {options['address']}" + (f" ({found[1]})" if found else "")


class RequireRay(Callback):
    """conf/hydra/launcher/ray.yaml's callback: Hydra starts the sweep's callbacks (the MLflow
    parent run) before it creates the launcher, and this one runs first, so a missing Ray, or a
    setting that cannot apply to the cluster it would join, ends the sweep before anything of it
    exists."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_ray()
        init = OmegaConf.select(config, "hydra.launcher.ray.init", default=None)
        if init is not None:
            init_options(cast(dict[str, Any], OmegaConf.to_container(init, resolve=True)))


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
        options = init_options(self.init_options)
        from hydra_plugins.ernie_ray_launcher import _core  # imports Ray: after ray_init_options

        return _core.launch(self, options, job_overrides, initial_job_idx)
