"""`hydra/sweeper=optuna` (experiment=optuna_search): an Optuna study whose trials are Hydra jobs.

Ask and tell: each batch asks Optuna for `n_jobs` trials, launches them through the configured
launcher (basic, joblib, ray) and tells Optuna each job's return value (one float, or a list with
one per `direction`); a job that raised or returned None (this project's failed and SKIPPED jobs)
is told FAIL. With a persistent `storage`, rerunning the same search continues its study:
`n_trials` is the size of the whole study, so a rerun runs only the trials still missing; trials a
killed search left RUNNING are told FAIL; job folder N is trial N, so the rerun adds folders
beside the first run's (pipeline.sweep.callback keeps one MLflow parent run per sweep folder).

Hydra imports every module of the `hydra_plugins` package on every run: Optuna is imported only
when a search starts. Without it, the search ends with one line before anything of it exists
(`RequireOptuna`).
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before putting it
# in sys.modules, and dataclasses cannot resolve string annotations there.
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import MISSING, DictConfig

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


@dataclass
class SamplerConf:
    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.ernie_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # Hydra would build the sampler with the sweeper; sweep() builds it, once it knows the seed.
    _recursive_: bool = False
    # The callback sits in Hydra's own config tree, so it comes before the project's callbacks.
    defaults: list[Any] = field(
        default_factory=lambda: [
            {"sampler": "tpe"},
            {"/hydra/callbacks@_global_.hydra.callbacks.require_optuna": "require_optuna"},
        ]
    )
    sampler: SamplerConf = MISSING
    direction: Any = "minimize"  # one per objective: minimize, maximize or a list of them
    study_name: str | None = None
    storage: str | None = None  # an RDB URL (sqlite:///optuna.db); null: in memory
    n_trials: int = 20  # of the whole study, trials of earlier runs included
    n_jobs: int = 2  # trials asked and launched together
    max_failure_rate: float = 0.0  # of a batch's trials; more failed stops the search
    # Hydra's sweep syntax: choice(a, b), range(1, 9, 2), interval(0.1, 1), tag(log, interval(...)).
    params: dict[str, str] = field(default_factory=dict)
    # "module.function": called as function(config, trial) to suggest more parameters.
    custom_search_space: str | None = None


def _stop(message: str) -> NoReturn:
    """Ends the search as this project ends a failing run: one line, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        _stop("experiment=optuna_search needs the optuna extra: pip install -e '.[cpu,optuna]'")


class RequireOptuna(Callback):
    """The Optuna sweeper's callback: Hydra starts the sweep's callbacks (pipeline.sweep.callback's
    MLflow parent run and sweep folder) before it creates the sweeper, and this one runs first, so
    a missing Optuna ends the search before anything of it exists."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_optuna()


_STORE = ConfigStore.instance()
_STORE.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="ernie_optuna_sweeper")
_STORE.store(group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConf, provider="ernie_optuna_sweeper")
_STORE.store(
    group="hydra/sweeper/sampler", name="nsgaii", node=NSGAIISamplerConf, provider="ernie_optuna_sweeper"
)
_STORE.store(
    group="hydra/callbacks",
    name="require_optuna",
    node={"_target_": f"{__name__}.{RequireOptuna.__qualname__}"},
    provider="ernie_optuna_sweeper",
)


def _override_value(value: Any) -> str:
    """A trial's parameter as Hydra's override grammar writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


Direction = Literal["minimize", "maximize"]


def _directions(direction: str | list[str]) -> list[Direction]:
    """`direction`, one or a list, checked here: Optuna takes only these two words."""
    names = [direction] if isinstance(direction, str) else [str(d) for d in direction]
    for name in names:
        if name not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction: {name!r} is neither minimize nor maximize")
    return [cast(Direction, name) for name in names]


def _choices(override: Override) -> list[str | int | float | bool]:
    """A choice or range sweep's values; Transformer.encode writes the others (lists, dicts, null)
    as override strings, so each is a value Optuna stores."""
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    choices = [v for v in values if isinstance(v, str | int | float | bool)]
    assert len(choices) == len(values), values
    return choices


def _suggest(trial: "optuna.Trial", name: str, override: Override) -> None:
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        assert sweep.start is not None and sweep.end is not None
        log_scale = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):  # int(interval(...))
            trial.suggest_int(name, sweep.start, sweep.end, log=log_scale)
        else:
            trial.suggest_float(name, float(sweep.start), float(sweep.end), log=log_scale)
        return
    # Keeps Python's meaning of range(): `stop` is not a value.
    values = _choices(override)
    ints = [v for v in values if isinstance(v, int)]
    if isinstance(sweep, RangeSweep) and len(ints) == len(values) and isinstance(sweep.step, int):
        trial.suggest_int(name, min(ints), max(ints), step=abs(sweep.step))
    else:
        trial.suggest_categorical(name, values)


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
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0 or n_jobs < 1:
            raise ValueError(f"want 0 <= max_failure_rate <= 1 and n_jobs >= 1: {max_failure_rate}, {n_jobs}")
        self.sampler = sampler
        self.directions = _directions(direction)
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = {str(key): str(value) for key, value in params.items()}
        self.custom_search_space: Callable[[DictConfig, optuna.Trial], None] | None = (
            get_method(custom_search_space) if custom_search_space else None
        )
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        require_optuna()  # also where a config has replaced hydra.callbacks
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def _search_space(self, arguments: list[str]) -> tuple[dict[str, Override], dict[str, Override]]:
        """(searched, fixed) overrides by key, of `params` and then the command line, which wins."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        searched: dict[str, Override] = {}
        fixed: dict[str, Override] = {}
        for override in parser.parse_overrides(lines):
            key = override.get_key_element()
            searched.pop(key, None)
            fixed.pop(key, None)
            (searched if override.is_sweep_override() else fixed)[key] = override
        return searched, fixed

    def _trial_overrides(
        self, trial: "optuna.Trial", searched: dict[str, Override], fixed: dict[str, Override]
    ) -> list[str]:
        assert self.config is not None
        for key, override in searched.items():
            _suggest(trial, key, override)
        for key, override in fixed.items():  # also for custom_search_space to read
            trial.set_user_attr(key, override.get_value_element_as_str())
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        clash = trial.params.keys() & {override.key_or_group for override in fixed.values()}
        if clash:
            _stop(f"{', '.join(sorted(clash))}: both searched and set on the command line")
        return [f"{key}={_override_value(value)}" for key, value in trial.params.items()] + [
            str(override.input_line) for override in fixed.values()
        ]

    def _values(self, result: JobReturn) -> list[float]:
        """The job's objectives; raises for a job that raised, returned None or the wrong number."""
        value = result.return_value  # re-raises the job's exception
        if value is None:
            raise ValueError("the job returned no objectives (it failed or was SKIPPED; see its folder)")
        values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
        if len(values) != len(self.directions):
            raise ValueError(f"the job returned {len(values)} objectives, not {len(self.directions)}")
        return values

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        assert self.launcher is not None
        searched, fixed = self._search_space(arguments)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=instantiate(self.sampler),
            directions=self.directions,
            load_if_exists=True,
        )
        stored = [direction.name.lower() for direction in study.directions]
        if stored != [direction.lower() for direction in self.directions]:
            _stop(
                f"study {study.study_name} in {self.storage} optimises {stored}, not {self.directions}: "
                "a new search wants a new hydra.sweeper.study_name"
            )
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(stale.number, state=TrialState.FAIL)
            log.warning("Trial %d of an interrupted search is recorded as FAILED", stale.number)
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        done = len(study.get_trials(deepcopy=False, states=finished))
        if done:
            log.info("Resuming study %s: %d of %d trials done", study.study_name, done, self.n_trials)
            if self.sampler.get("seed") is not None:
                # The same seed would draw the first run's trials again; seed + trials done keeps
                # a resumed search reproducible.
                study.sampler = instantiate(self.sampler, seed=int(self.sampler.seed) + done)

        remaining = self.n_trials - done
        while remaining > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, remaining))]
            overrides = [self._trial_overrides(trial, searched, fixed) for trial in trials]
            # Job folder N is trial N: one search asks at a time, so a batch's numbers follow on.
            results = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            failed = 0
            for trial, result in zip(trials, results, strict=True):
                try:
                    values = self._values(result)
                except Exception as exc:
                    log.warning("Failed experiment: trial %d: %s", trial.number, exc)
                    study.tell(trial, state=TrialState.FAIL)
                    failed += 1
                else:
                    study.tell(trial, values)
            remaining -= len(trials)
            if failed / len(trials) > self.max_failure_rate:
                _stop(
                    f"{failed} of {len(trials)} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the search stops"
                )
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        log.info("Study %s: %d trials, %d complete", study.study_name, len(study.trials), complete)
