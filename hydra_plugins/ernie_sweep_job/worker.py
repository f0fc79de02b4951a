"""One job of a sweep: its config composed in the sweep process (`job_config`), then run in a
launcher's worker process (`run_sweep_job`): what both of this project's launchers (joblib's and
Ray's) do. Hydra's plugin scan imports this module (it imports only what Hydra has imported
already)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict


def job_config(
    hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str], idx: int, sweep_dir: Path
) -> DictConfig:
    """Job `idx`'s config, from the sweep's config and the job's overrides (the sweeper's, where it
    composed them already: hydra_plugins.ernie_sweep_job._composed). `sweep_dir` is resolved once,
    in the sweep process: `${now:...}` and relative paths mean the same folder in every worker."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
        sweep_config.hydra.sweep.dir = str(sweep_dir)
    return sweep_config


def run_sweep_job(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    sweep_config: DictConfig,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """Runs the job as Hydra's launchers do: its folder under hydra.sweep.dir/hydra.sweep.subdir. The
    worker first takes the sweep's Hydra state (config store, resolvers), which it has none of."""
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
