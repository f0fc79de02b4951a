"""What `ClusterRayLauncher.launch` does (see ray_launcher.py); only sweeps on it import this and Ray."""

from __future__ import annotations

import atexit
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals

from hydra_plugins.ernie_sweep_job.worker import job_config, run_sweep_job
from pipeline.core import interrupts
from pipeline.core.job_folder import job_status, record_lost_job, write_job_status
from pipeline.core.ray_cluster import start_ray, stop_ray
from pipeline.core.sweep_state import mark_stopped

if TYPE_CHECKING:
    from hydra_plugins.ernie_ray_launcher.ray_launcher import ClusterRayLauncher

log = logging.getLogger(__name__)
# After an interrupt, jobs get this long to record themselves KILLED before their workers are killed.
_STOP_SECONDS = 10
# Ray's own exit handler sleeps this long for its workers' last log lines (a job's result line),
# however long ago the last job ended. `_disconnect_at_exit` waits only for what is left of it.
_LOG_LINES_SECONDS = 0.5
_jobs_ended_at = 0.0  # time.monotonic() when the last launch's jobs had all ended


def _disconnect_at_exit() -> None:
    """Disconnects from Ray once its workers' lines have had _LOG_LINES_SECONDS since the last job
    ended: at a sweep's end they usually have had them already (the summary and the parent run came
    after the jobs), where Ray's handler would sleep 0.5 s more. Registered after Ray's, it runs
    first, and Ray's then finds nothing to do."""
    time.sleep(max(0.0, _jobs_ended_at + _LOG_LINES_SECONDS - time.monotonic()))
    stop_ray()


def launch(
    launcher: ClusterRayLauncher,
    init_options: dict[str, Any],
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> Sequence[JobReturn]:
    global _jobs_ended_at
    setup_globals()
    config, hydra_context = launcher.config, launcher.hydra_context
    assert config is not None and hydra_context is not None and launcher.task_function is not None
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    # Resolved here, once: `${now:...}` and relative paths mean the same folder on every worker.
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():  # a sweeper that launches in batches (Optuna) reuses the cluster
        from hydra_plugins.ernie_ray_launcher.ray_launcher import cluster_described

        log.info(
            "Ray: %s; ray.init(%s)", cluster_described(launcher.init_options, init_options), init_options
        )
        start_ray(init_options)
        # ray.init sets a SIGTERM handler that exits at once (and Ray's core one that aborts): the
        # sweep's own handler is put back, so that SIGTERM stops the jobs and records them KILLED.
        interrupts.install()
        atexit.register(_disconnect_at_exit)
    log.info(
        "Ray launcher: %d jobs on %s, sweep folder %s", len(job_overrides), ray.cluster_resources(), sweep_dir
    )
    # `ray.remote()` without options is an error; `ray.remote(f)` takes Ray's defaults.
    remote = (
        ray.remote(**launcher.remote_options)(run_sweep_job)
        if launcher.remote_options
        else ray.remote(run_sweep_job)
    )
    singleton_state = Singleton.get_state()

    runs = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = job_config(hydra_context, config, overrides, idx, sweep_dir)
        job_dir = sweep_dir / str(sweep_config.hydra.sweep.subdir)
        task = remote.remote(hydra_context, launcher.task_function, sweep_config, singleton_state)
        runs.append((task, job_dir, list(overrides)))
    tasks = [task for task, _, _ in runs]
    try:
        wait_for(tasks)
        _jobs_ended_at = time.monotonic()
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        with interrupts.deferred(raise_last=False):
            stop_tasks(tasks)
            # Now, not at exit: Ray's log streaming would print its last worker lines after the
            # interrupt's one line.
            stop_ray()
            # A cancelled task gets a KeyboardInterrupt (its folder names the sweep's own signal),
            # and one killed with its worker, wherever it ran, cannot say it was stopped.
            reason = f"interrupted by {interrupts.NAMES[interrupts.signal_of(exc)]}"
            for _, job_dir, _ in runs:
                if job_status(job_dir)["status"] == "KILLED":
                    write_job_status(job_dir, "KILLED", reason)
            mark_stopped([job_dir for _, job_dir, _ in runs], reason)
        raise
    return [job_result(task, job_dir, overrides) for task, job_dir, overrides in runs]


def wait_for(tasks: list[ray.ObjectRef]) -> None:
    """Returns once every task has ended. An interrupt is raised here, between waits: raised inside
    Ray's get it would surface as a SystemError from Ray's C code."""
    with interrupts.deferred() as arrived:
        pending = list(tasks)
        while pending and not arrived:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)


def stop_tasks(tasks: list[ray.ObjectRef]) -> None:
    """The sweep was interrupted: its jobs stop with it. A running job gets a KeyboardInterrupt
    (its folder and run become KILLED, pipeline/job.py); one that has not ended within
    _STOP_SECONDS is killed with its worker, and a queued one never starts."""
    for task in tasks:
        ray.cancel(task, force=False)
    deadline = time.monotonic() + _STOP_SECONDS
    pending = list(tasks)
    while pending and time.monotonic() < deadline:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
    for task in pending:
        ray.cancel(task, force=True)
    if pending:
        ray.wait(pending, num_returns=len(pending), timeout=5)


def job_result(task: ray.ObjectRef, job_dir: Path, overrides: list[str]) -> JobReturn:
    """The job's own result, or, where its task was lost, a record of that in the job folder.

    A lost task comes back COMPLETED with no value, as a job that failed does (pipeline.job):
    Hydra's sweepers stop the whole sweep at the first FAILED result.
    """
    try:
        return ray.get(task)
    except ray.exceptions.RayError as exc:
        if job_status(job_dir)["status"] == "KILLED":  # a signal to the worker stopped it
            return _no_value(job_dir, overrides)
        reason = (
            cannot_import(exc)
            or f"Ray task lost: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
        )
        log.error("job %s: %s", job_dir.name, reason)
        record_lost_job(job_dir, overrides, reason)
        return _no_value(job_dir, overrides)


def _no_value(job_dir: Path, overrides: list[str]) -> JobReturn:
    result = JobReturn(overrides=overrides, working_dir=str(job_dir))
    result.status = JobStatus.COMPLETED
    result.return_value = None
    return result


def cannot_import(exc: Exception) -> str | None:
    """Where a worker could not import this project (or a module of it): that, and what to do."""
    text = str(exc)
    if "failed to import on the worker" not in text and "No module named" not in text:
        return None
    errors = [
        line.strip()
        for line in text.splitlines()
        if line.strip().startswith(("ModuleNotFoundError", "ImportError"))
    ]
    worker = re.search(r"ip=([0-9a-fA-F.:]+)\)", text)
    where = f" on {worker.group(1)}" if worker else ""
    return (
        f"the Ray worker{where} cannot import this project ({errors[-1] if errors else 'import failed'}): "
        "install it at the same path on every node (docs/scaling.md)"
    )
