"""hydra/launcher=joblib (hydra_plugins/ernie_joblib_launcher): the launcher Hydra composes, and
workers that are ready before the first job, in real worker processes."""

from __future__ import annotations

from typing import Any, cast

from hydra import compose, initialize_config_dir
from joblib import Parallel, delayed

from hydra_plugins.ernie_joblib_launcher._core import parallel_settings
from hydra_plugins.ernie_joblib_launcher.joblib_launcher import JoblibLauncher
from pipeline import PROJECT_ROOT
from pipeline.job import run_job
from tests.helpers.workers import grow, loaded


def test_hydra_launcher_joblib_is_this_projects_launcher_with_hydras_keys() -> None:
    """Also fails where hydra-joblib-launcher is still installed beside it (both name `joblib`):
    `pip uninstall hydra-joblib-launcher`."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        launcher = compose(
            "config", overrides=["hydra/launcher=joblib"], return_hydra_config=True
        ).hydra.launcher
    assert launcher._target_ == "hydra_plugins.ernie_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert {"n_jobs", "prefer", "pre_dispatch", "batch_size", "max_nbytes", "mmap_mode"} <= set(launcher)
    assert parallel_settings({"n_jobs": 2, "pre_dispatch": "4", "batch_size": "auto"}) == {
        "n_jobs": 2,
        "pre_dispatch": 4,
        "batch_size": "auto",
        "backend": "loky",
    }


def test_setup_readies_the_workers_that_the_jobs_then_get() -> None:
    launcher = JoblibLauncher(n_jobs=2, prefer="processes", pre_dispatch="2*n_jobs", batch_size="auto")
    # The worker's first task carries the task function: unpickling it imports pipeline.job.
    launcher.setup(hydra_context=cast(Any, None), task_function=run_job, config=cast(Any, None))
    assert launcher._starting is not None
    launcher._starting.join(timeout=120)
    assert not launcher._starting.is_alive()
    workers = Parallel(**parallel_settings(launcher.settings))(
        delayed(loaded)("pipeline.job") for _ in range(4)
    )
    assert all(ready for _, ready in workers), workers
    ready = {pid for pid, _ in workers}
    assert len(ready) == 2
    # A job leaves its worker 400 MB bigger than when it was readied: loky would take that worker
    # for a leaking one and replace it with a cold one.
    parallel = Parallel(**parallel_settings(launcher.settings))
    grown = parallel(delayed(grow)(400, seconds=1.2) for _ in range(2))
    after = parallel(delayed(loaded)("pipeline.job") for _ in range(4))
    assert set(grown) | {pid for pid, _ in after} == ready, (ready, grown, after)
