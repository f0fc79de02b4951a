"""`hydra/sweeper=optuna` (experiment=optuna_search): an Optuna study whose trials are Hydra jobs.

Ask and tell, with Hydra's Optuna sweeper's names (config.py): each batch asks Optuna for `n_jobs`
trials, launches them through the configured launcher (basic, joblib, ray) and tells Optuna each
job's return value (one float, or a list with one per `direction`). A job that raised or
returned None (this project's failed jobs) is told FAIL, and counts towards `max_failure_rate`.

- Only runnable trials: a trial draws its device, engine and precision among the combinations
  that can run (pipeline.options.search_space), so no trial is SKIPPED for a pair the project
  knows it cannot run.
- Safe resume: with an RDB `storage` the study outlives the search, and records what it searches
  (space, model, dataset, objectives, directions). A rerun that searches something else stops
  with one line naming the difference; `n_trials` is the size of the whole study.
- Shared studies: several searches (terminals, machines) may run on one study. Each records a
  heartbeat of its running trials; a trial whose search died goes stale, is recorded FAILED by
  whichever search sees it and runs again (Optuna's failed-trial callback). A search only ever
  closes its own trials. Job folder N is trial N: a batch is launched in runs of consecutive
  numbers, and an existing folder is never written over.
- Every end closes the search: at the end `optimization_results.yaml` (as Hydra's sweeper writes
  it); an early stop (`max_failure_rate`) records FAILED in sweep_end.json, runs Hydra's
  end-of-sweep callbacks (summary, parent run), prints one line and exits 2; an interrupt closes
  this search's trials and leaves copies WAITING for the same command.

Hydra imports every module of the `hydra_plugins` package on every run: Optuna is imported only
when a search starts (`_search.py`). Without it, or without what the chosen sampler needs, the
search ends with one line before anything of it exists (`RequireOptuna`).
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before putting it
# in sys.modules, and dataclasses cannot resolve string annotations there.
import contextlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

from hydra.core.plugins import Plugins
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ernie_optuna_sweeper.config import SAMPLER_PACKAGES
from pipeline.core import interrupts
from pipeline.core.job_folder import SWEEPER_RESULTS_FILE, clear_sweep_end, write_sweep_end

if TYPE_CHECKING:
    import optuna

    from hydra_plugins.ernie_optuna_sweeper._search import Plan

log = logging.getLogger(__name__)


def _stop(message: str) -> NoReturn:
    """Ends the search as this project ends a failing run: one line, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def require_optuna(sampler_target: str | None = None) -> None:
    """Optuna, and what the sampler imports beyond it (checked without importing either)."""
    if importlib.util.find_spec("optuna") is None:
        _stop("experiment=optuna_search needs the optuna extra: pip install -e '.[cpu,optuna]'")
    for module, install in SAMPLER_PACKAGES.get(str(sampler_target), ()):
        if importlib.util.find_spec(module) is None:
            name = str(sampler_target).rsplit(".", 1)[-1]
            _stop(f"{name} (hydra.sweeper.sampler) needs the {module} package: {install}")


Direction = Literal["minimize", "maximize"]
_DIRECTIONS: dict[str, Direction] = {"minimize": "minimize", "maximize": "maximize"}


def _directions(direction: Any) -> list[Direction]:
    """`direction`, one or a list; each minimize or maximize, the only words Optuna takes."""
    names = [direction] if isinstance(direction, str) else [str(d) for d in direction]
    if wrong := [name for name in names if name not in _DIRECTIONS]:
        _stop(f"hydra.sweeper.direction={wrong[0]}: each direction is minimize or maximize")
    return [_DIRECTIONS[name] for name in names]


def _plan(config: DictConfig, arguments: list[str]) -> "Plan":
    """What the search searches, or the one line that says why it cannot start."""
    from hydra_plugins.ernie_optuna_sweeper import _search

    sweeper = config.hydra.sweeper
    params = {str(k): str(v) for k, v in (sweeper.get("params") or {}).items()}
    try:
        plan = _search.make_plan(config, params, arguments, list[str](_directions(sweeper.direction)))
        _search.check_sampler(plan, str(sweeper.sampler._target_))
    except _search.SearchError as exc:
        _stop(str(exc))
    return plan


class RequireOptuna(Callback):
    """The Optuna sweeper's callback: Hydra starts the sweep's callbacks (pipeline.sweep.callback's
    MLflow parent run and sweep folder) before it creates the sweeper, and this one runs first, so
    a search that cannot start (no Optuna, a sampler's package missing, nothing runnable, a stored
    study that searched something else) ends before anything of it exists."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        require_optuna(str(OmegaConf.select(sweeper, "sampler._target_", default="")))
        from hydra_plugins.ernie_optuna_sweeper import _search

        plan = _plan(config, [str(o) for o in config.hydra.overrides.task])
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        try:
            _search.check_stored_study(plan, sweeper.get("study_name"), sweeper.get("storage"), sweep_dir)
        except _search.SearchError as exc:
            _stop(str(exc))


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        direction: str | list[str],
        study_name: str | None,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | dict[str, str],
        custom_search_space: str | None,
        heartbeat_interval: int = 30,
        grace_period: int | None = None,
        max_retry: int = 2,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0 or n_jobs < 1 or heartbeat_interval < 1 or max_retry < 0:
            raise ValueError(
                "want 0 <= max_failure_rate <= 1, n_jobs >= 1, heartbeat_interval >= 1, max_retry >= 0: "
                f"{max_failure_rate}, {n_jobs}, {heartbeat_interval}, {max_retry}"
            )
        self.sampler = sampler
        self.directions = _directions(direction)
        self.study_name = study_name
        self.storage = str(storage) if storage else None
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = {str(key): str(value) for key, value in params.items()}
        self.custom_search_space: Callable[[DictConfig, optuna.Trial], None] | None = (
            get_method(custom_search_space) if custom_search_space else None
        )
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # Also where a config has replaced hydra.callbacks.
        require_optuna(str(OmegaConf.select(self.sampler, "_target_", default="")))
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.ernie_optuna_sweeper import _search

        assert self.launcher is not None and self.config is not None
        plan = _plan(self.config, arguments)
        for line in plan.left_out:
            log.warning(line)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        clear_sweep_end(sweep_dir)
        grace = self.grace_period or 2 * self.heartbeat_interval
        on_stale = _search.stale_trial_handler(sweep_dir, self.max_retry, grace)
        sampler_conf = cast(dict[str, Any], OmegaConf.to_container(self.sampler, resolve=True))
        try:
            with _search.storage_failures(self.storage):
                storage = _search.make_storage(
                    self.storage, self.heartbeat_interval, self.grace_period, on_stale
                )
                study, n_trials = self._open_study(storage, plan, sampler_conf)
        except _search.SearchError as exc:  # nothing of the search started: the sweep ends FAILED
            self._end_early(sweep_dir, str(exc))
        heartbeat = _search.Heartbeat(storage, self.heartbeat_interval)
        search = _search.Search(
            study,
            plan,
            self.launcher,
            sweep_dir,
            n_trials=n_trials,
            n_jobs=self.n_jobs,
            max_failure_rate=self.max_failure_rate,
            sampler_conf=sampler_conf,
            custom_search_space=self.custom_search_space,
            config=self.config,
            heartbeat=heartbeat,
            poll_seconds=min(5.0, float(self.heartbeat_interval)),
        )
        log.info(
            "Study %s (%s): %d of %d trials done; sampler %s",
            study.study_name,
            self.storage or "in memory",
            sum(1 for t in study.get_trials(deepcopy=False) if _search.counts_as_done(t)),
            n_trials,
            str(sampler_conf["_target_"]).rsplit(".", 1)[-1],
        )
        try:
            with _search.quiet_optuna(), _search.storage_failures(self.storage):
                early_stop = search.run()
        except _search.SearchError as exc:
            with contextlib.suppress(Exception):  # a storage that failed may refuse this too
                search.close_open(interrupted=False)
            self._end_early(sweep_dir, str(exc))
        except BaseException as exc:
            # An interrupt (Ctrl-C: KeyboardInterrupt; SIGTERM: pipeline.core.interrupts' Terminated,
            # neither an Exception) closes this search's trials, each with a copy WAITING for the
            # same command; the sweep's own clean-up (pipeline/cli.py) then ends the sweep KILLED.
            interrupted = not isinstance(exc, Exception | SystemExit)
            with interrupts.deferred(raise_last=False):  # a second Ctrl-C does not cut this short
                closed = search.close_open(interrupted=interrupted)
            if closed and interrupted:
                log.warning("Interrupted: trials %s are FAILED; copies wait for the same command", closed)
            raise
        finally:
            heartbeat.stop()
        self._write_results(study, sweep_dir)
        if early_stop:
            self._end_early(sweep_dir, early_stop)
        # A search sharing this folder may have ended early or been stopped meanwhile and said so in
        # sweep_end.json; this one filled the study, so the sweep ends FINISHED.
        clear_sweep_end(sweep_dir)
        trials = study.get_trials(deepcopy=False)
        complete = sum(1 for t in trials if t.state.name == "COMPLETE")
        log.info("Study %s: %d trials, %d complete", study.study_name, len(trials), complete)

    def _open_study(
        self, storage: "optuna.storages.BaseStorage | None", plan: "Plan", sampler_conf: dict[str, Any]
    ) -> "tuple[optuna.Study, int]":
        """The study, checked against what this search searches (or refused: SearchError), with its
        orphaned trials adopted; and the number of trials the whole study wants."""
        from hydra_plugins.ernie_optuna_sweeper import _search

        assert self.config is not None
        with _search.quiet_optuna():
            study = _search.optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=_search.make_sampler(sampler_conf, sampler_conf.get("seed")),
                directions=self.directions,
                load_if_exists=True,
            )
        for change in _search.record_identity(study, plan, self.storage):
            log.info("Study %s goes on with a changed range: %s", study.study_name, change)
        _search.adopt_orphans(study, storage)
        n_trials = self.n_trials
        if str(sampler_conf["_target_"]).endswith("BruteForceSampler"):
            points = _search.grid_points(plan, self.custom_search_space, self.config, n_trials + 1)
            if points < n_trials:  # as Hydra's sweeper does for its grid
                log.info("The grid has %d points: n_trials is %d", points, points)
                n_trials = points
        return study, n_trials

    def _write_results(self, study: "optuna.Study", sweep_dir: Path) -> None:
        """optimization_results.yaml, as Hydra's Optuna sweeper writes it, beside the Pareto files."""
        from hydra_plugins.ernie_optuna_sweeper import _search

        results = _search.optimization_results(study)
        if results is None:
            log.warning("No trial of study %s is complete: no %s", study.study_name, SWEEPER_RESULTS_FILE)
            return
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / SWEEPER_RESULTS_FILE)

    def _end_early(self, sweep_dir: Path, reason: str) -> NoReturn:
        """An early stop closes the sweep as its end would (summary, parent run FAILED), then one line."""
        assert self.hydra_context is not None and self.config is not None
        write_sweep_end(sweep_dir, "FAILED", reason)
        self.hydra_context.callbacks.on_multirun_end(config=self.config)
        _stop(reason)
