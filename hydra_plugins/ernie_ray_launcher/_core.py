"""What `ClusterRayLauncher.launch` does; see ray_launcher.py for why."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
from omegaconf import OmegaConf, open_dict

from pipeline.job_files import record_lost_job
from pipeline.ray_cluster import ray_init_options

if TYPE_CHECKING:
    import ray

log = logging.getLogger(__name__)


def launch(
    launcher: RayLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None
    assert launcher.task_function is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    # Resolved here, once: `${now:...}` and relative paths mean the same folder on every worker.
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    options = ray_init_options(OmegaConf.to_container(launcher.ray_cfg.init, resolve=True))
    import ray
    from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray

    if not ray.is_initialized():
        log.info("ray.init(%s)", options)
        ray.init(**options)
    log.info(
        "Ray launcher: %d jobs on %s, sweep folder %s", len(job_overrides), ray.cluster_resources(), sweep_dir
    )

    runs = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(
            launcher.config, list(overrides)
        )
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"job_id_for_{idx}"
            sweep_config.hydra.job.num = idx
            sweep_config.hydra.sweep.dir = str(sweep_dir)
            job_dir = sweep_dir / str(sweep_config.hydra.sweep.subdir)
            task = launch_job_on_ray(
                launcher.hydra_context,
                launcher.ray_cfg.remote,
                sweep_config,
                launcher.task_function,
                Singleton.get_state(),
            )
        runs.append((task, job_dir, list(overrides)))
    return [job_result(task, job_dir, overrides) for task, job_dir, overrides in runs]


def job_result(task: ray.ObjectRef, job_dir: Path, overrides: list[str]) -> JobReturn:
    """The job's own result, or, where its task was lost, a record of that in the job folder.

    A lost task comes back COMPLETED with no value, as a job that failed does (pipeline.job):
    Hydra's sweepers stop the whole sweep at the first FAILED result.
    """
    import ray

    try:
        return ray.get(task)
    except ray.exceptions.RayError as exc:
        reason = f"Ray task lost: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
        log.error("job %s: %s", job_dir.name, reason)
        record_lost_job(job_dir, overrides, reason)
        result = JobReturn(overrides=overrides, working_dir=str(job_dir))
        result.status = JobStatus.COMPLETED
        result.return_value = None
        return result
