"""What `JoblibLauncher.setup` and `launch` do (see joblib_launcher.py); only sweeps on it import
this and joblib."""

from __future__ import annotations

import atexit
import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.types import TaskFunction
from joblib import Parallel, delayed, effective_n_jobs

from hydra_plugins.ernie_sweep_job.worker import job_config, run_sweep_job

if TYPE_CHECKING:
    from hydra_plugins.ernie_joblib_launcher.joblib_launcher import JoblibLauncher

log = logging.getLogger(__name__)


def parallel_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """joblib.Parallel's settings: the loky backend, and the counts that YAML may give as text."""
    parallel = {**settings, "backend": "loky"}
    for key in ("pre_dispatch", "batch_size", "max_nbytes"):
        value = parallel.get(key)
        if isinstance(value, str) and value.isdigit():
            parallel[key] = int(value)
    return parallel


def _get_ready(task_function: TaskFunction) -> None:
    """A worker's first task: unpickling `task_function` imported the job's modules.

    loky takes a worker's memory after its first task as the worker's size, and replaces a worker
    that has grown 300 MB beyond it as leaking. Measured after this task, a job's model and data
    would pass for a leak, and the worker would be replaced by a cold one after its first job: this
    worker only collects garbage between tasks instead (what loky does where psutil is missing).
    At the worker's exit, the interpreter skips its last garbage collections (the sweep waits).
    """
    from joblib.externals.loky import process_executor

    process_executor._USE_PSUTIL = False
    atexit.register(gc.freeze)


def start_workers(settings: dict[str, Any], task_function: TaskFunction) -> None:
    """Starts the pool `launch` will use (the same settings) and readies each worker."""
    parallel = parallel_settings(settings)
    try:
        workers = effective_n_jobs(parallel["n_jobs"])
        Parallel(**parallel)(delayed(_get_ready)(task_function) for _ in range(workers))
    except Exception as exc:  # launch() starts the workers itself and reports what fails
        log.warning("joblib's workers could not be started ahead of the jobs: %s", exc)


def launch(
    launcher: JoblibLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    setup_globals()
    config, hydra_context, task_function = launcher.config, launcher.hydra_context, launcher.task_function
    assert config is not None and hydra_context is not None and task_function is not None
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    parallel = parallel_settings(launcher.settings)
    log.info("joblib.Parallel(%s): %d jobs, sweep folder %s", parallel, len(job_overrides), sweep_dir)
    for offset, overrides in enumerate(job_overrides):
        log.info("\t#%d : %s", initial_job_idx + offset, " ".join(filter_overrides(overrides)))
    singleton_state = Singleton.get_state()
    # joblib takes the jobs from this generator as workers free up (`pre_dispatch` ahead), so each
    # job's config is composed here while the jobs before it run.
    runs = Parallel(**parallel)(
        delayed(run_sweep_job)(
            hydra_context,
            task_function,
            job_config(hydra_context, config, overrides, initial_job_idx + offset, sweep_dir),
            singleton_state,
        )
        for offset, overrides in enumerate(job_overrides)
    )
    return list(runs)
