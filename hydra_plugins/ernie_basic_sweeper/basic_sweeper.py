"""`hydra/sweeper=basic`, Hydra's default sweeper, as this project runs it: Hydra's BasicSweeper
(the grid of every `a,b` override, in the same order and job numbers) that also resumes.

Rerunning a sweep with the same `hydra.sweep.dir` continues it: jobs whose folders say they
FINISHED (and were logged) are not launched again; KILLED, FAILED, SKIPPED and never-started
jobs are, in their own folders under their own numbers. Hydra's launchers number the jobs of one
`launch` call consecutively, so each run of consecutive pending jobs is one call, on any launcher
(basic, joblib, ray). `hydra.sweeper.recompute=true` runs every job again, FINISHED ones included.
The rules live in pipeline.core.sweep_state, which the Optuna sweeper shares; the sweep callback
(pipeline.sweep.callback) refuses a folder that holds another sweep before this runs.

This module registers its config as `hydra/sweeper/basic` after Hydra's own (Hydra scans its
core plugins first), so the default, command lines and presets that name `basic` get it, and a
preset may still choose another sweeper (experiment=optuna_search).
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before putting it
# in sys.modules, and dataclasses cannot resolve string annotations there.
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.ernie_sweep_job._composed import ComposedOnce
from pipeline.core.job_folder import write_sweep_end
from pipeline.core.sweep_state import RECOMPUTE_KEY, job_difference, job_done, job_folders

log = logging.getLogger(__name__)


@dataclass
class ResumableSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.ernie_basic_sweeper.basic_sweeper.ResumableSweeper"
    recompute: bool = False  # run every job again, FINISHED ones included


ConfigStore.instance().store(
    group="hydra/sweeper", name="basic", node=ResumableSweeperConf, provider="ernie_basic_sweeper"
)


def consecutive_runs(numbers: list[int]) -> list[list[int]]:
    """[3, 4, 5, 7] -> [[3, 4, 5], [7]]: what one launch call each can number."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


def covering_jobs(batch: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """Jobs of `batch` that hold each of its override values at least once, few of them: each one
    taken holds the most values not held yet (the first such job). A grid of `a=1,2,3 b=x,y` needs
    three (a=1 b=x, a=2 b=y, a=3 b=x), as many as its longest list of values."""
    missing = {value for overrides in batch for value in overrides}
    covering = []
    while missing:
        best = max(batch, key=lambda overrides: len(missing.intersection(overrides)))
        covering.append(best)
        missing.difference_update(best)
    return covering


class ResumableSweeper(BasicSweeper):
    def __init__(
        self, max_batch_size: int | None, params: dict[str, str] | None = None, recompute: bool = False
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.recompute = recompute
        self.configs: ComposedOnce | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """The launcher gets the configs this sweeper composes, instead of composing them again."""
        self.configs = ComposedOnce(hydra_context.config_loader)
        hydra_context = HydraContext(config_loader=self.configs, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def _compose(self, overrides: Sequence[str]) -> DictConfig:
        assert self.configs is not None and self.config is not None
        return self.configs.loader.load_sweep_config(self.config, list(overrides))

    def _job_dir(self, job_config: DictConfig, number: int) -> Path:
        """Job `number`'s folder, as the launcher will name it."""
        with open_dict(job_config):
            job_config.hydra.job.num = number
        return Path(str(job_config.hydra.sweep.dir)).absolute() / str(job_config.hydra.sweep.subdir)

    def _check(self, batch: Sequence[Sequence[str]]) -> None:
        """Composes the configs of as few of a new sweep's jobs as hold every override value of the
        batch between them, so that a bad value stops the sweep before any job runs (BasicSweeper
        composes every job: 0.1-0.3 s each, minutes for a grid of hundreds); the launcher gets
        these configs and composes the others."""
        assert self.configs is not None and self.config is not None
        for overrides in covering_jobs(batch):
            self.configs.keep(self.config, list(overrides), self._compose(overrides))

    def _pending(self, batch: Sequence[Sequence[str]], first: int) -> list[int]:
        """The numbers of the batch's jobs to launch: all of them with `recompute` or in a new sweep
        (no job folder yet), else those not done."""
        assert self.config is not None
        if not job_folders(Path(str(self.config.hydra.sweep.dir))):
            self._check(batch)
            return list(range(first, first + len(batch)))
        assert self.configs is not None
        pending = []
        for offset, overrides in enumerate(batch):
            job_config = self._compose(overrides)  # also checks it (BasicSweeper.validate_batch_is_legal)
            job_dir = self._job_dir(job_config, first + offset)
            if difference := job_difference(job_dir, list(overrides)):
                self._refuse(difference)
            if self.recompute or not job_done(job_dir):
                self.configs.keep(self.config, list(overrides), job_config)
                pending.append(first + offset)
        return pending

    def _refuse(self, reason: str) -> None:
        """Ends the sweep FAILED through the sweep_end contract (the parent run ends FAILED), then
        one line and exit status 2."""
        assert self.hydra_context is not None and self.config is not None
        write_sweep_end(Path(str(self.config.hydra.sweep.dir)).absolute(), "FAILED", reason)
        self.hydra_context.callbacks.on_multirun_end(config=self.config)
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(2)

    def sweep(self, arguments: list[str]) -> Any:
        """BasicSweeper.sweep, launching only the pending jobs of each batch."""
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        plan = []  # (batch, its first job's number, the numbers to launch)
        first = 0
        while not self.is_done():
            batch = self.get_job_batch()
            plan.append((batch, first, self._pending(batch, first)))
            first += len(batch)
        _say_what_runs(
            sweep_dir, total=first, pending=sum(len(p) for _, _, p in plan), recompute=self.recompute
        )

        returns: list[Sequence[JobReturn]] = []
        for batch, start, pending in plan:
            for numbers in consecutive_runs(pending):
                jobs = [batch[number - start] for number in numbers]
                results = self.launcher.launch(jobs, initial_job_idx=numbers[0])
                for result in results:
                    _ = result.return_value  # re-raises a job's exception, as BasicSweeper does
                returns.append(results)
        return returns


def _say_what_runs(sweep_dir: Path, total: int, pending: int, recompute: bool) -> None:
    if recompute or pending == total:
        return
    if pending == 0:
        print(
            f"sweep {sweep_dir.absolute()}: all {total} jobs finished already, nothing to run "
            f"({RECOMPUTE_KEY}=true runs them again)"
        )
        return
    done = total - pending
    print(f"resuming sweep {sweep_dir.absolute()}: {done} of {total} jobs finished, running {pending}")
