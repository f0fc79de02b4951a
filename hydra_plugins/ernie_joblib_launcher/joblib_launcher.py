"""`hydra/launcher=joblib`: every job of a sweep in a pool of joblib worker processes on this
machine, with the keys and defaults of Hydra's joblib launcher (hydra-joblib-launcher), whose
place it takes: `n_jobs` (-1: every CPU), `prefer`, `require`, `verbose`, `pre_dispatch`,
`batch_size`, `temp_folder`, `max_nbytes`, `mmap_mode`; the backend is always loky (processes).

What it does beyond Hydra's launcher: the workers are ready before the first job instead of after.
Each worker imports Hydra and the pipeline (0.4 to 0.8 s) before it can run a job. Hydra calls a
launcher's `setup` before the sweeper composes the jobs' configs to check them, so `setup` starts
the workers then, in a thread, with a first task that unpickles the task function (importing what
every job imports). joblib keeps one pool per process and reuses it for the same settings, so
`launch` gets these workers. Each job's config is composed in the sweep process while the jobs
before it run (the sweeper's, where it composed them already), not in the worker between two
jobs. The sweep also waits for its workers to exit at its end; they skip the interpreter's last
garbage collections.

Hydra imports this module on every run to find plugins, so it does not import joblib: `_core.py`
does, and only a sweep on this launcher imports it.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before putting it
# in sys.modules, and dataclasses cannot resolve string annotations there.
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class JoblibLauncherConf:
    _target_: str = "hydra_plugins.ernie_joblib_launcher.joblib_launcher.JoblibLauncher"
    n_jobs: int = -1  # jobs at a time; -1: one per CPU
    backend: str | None = None  # always loky: worker processes (threads cannot run Hydra jobs)
    prefer: str = "processes"
    require: str | None = None
    verbose: int = 0  # > 0: joblib prints its progress
    timeout: float | None = None  # seconds a job may take (joblib.Parallel's timeout)
    pre_dispatch: str = "2*n_jobs"  # jobs handed to the workers ahead of time
    batch_size: str = "auto"  # jobs per hand-over
    temp_folder: str | None = None  # where large numpy arrays are memory-mapped for workers
    max_nbytes: str | None = None
    mmap_mode: str = "r"


ConfigStore.instance().store(
    group="hydra/launcher", name="joblib", node=JoblibLauncherConf, provider="ernie_joblib_launcher"
)


class JoblibLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # joblib.Parallel(...)'s, as the user wrote them
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self._starting: threading.Thread | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context
        from hydra_plugins.ernie_joblib_launcher import _core  # imports joblib

        self._starting = threading.Thread(
            target=_core.start_workers,
            args=(self.settings, task_function),
            name="joblib-workers-start",
            daemon=True,
        )
        self._starting.start()

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.ernie_joblib_launcher import _core

        if self._starting is not None:
            self._starting.join()
            self._starting = None
        return _core.launch(self, job_overrides, initial_job_idx)
