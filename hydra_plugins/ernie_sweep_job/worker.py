"""One job of a sweep in a launcher's worker process (joblib's or Ray's), given its composed config:
what both of this project's launchers run there. Hydra's plugin scan imports this module (it
imports only what Hydra has imported already)."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


def use_sweep_state(singleton_state: dict[Any, Any]) -> None:
    """The worker takes the sweep's Hydra state (config store, resolvers), which it has none of."""
    setup_globals()
    Singleton.set_state(singleton_state)


def run_sweep_job(
    hydra_context: HydraContext, task_function: TaskFunction, sweep_config: DictConfig
) -> JobReturn:
    """Runs the job as Hydra's launchers do: its folder under hydra.sweep.dir/hydra.sweep.subdir."""
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
