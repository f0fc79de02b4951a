"""The search itself (imports Optuna; only a search imports this module).

- `Plan`: what a search searches, from `hydra.sweeper.params` and the command line: each
  parameter's distribution, the device/engine/precision values that can run
  (pipeline.options.search_space.GroupSpace), the fixed overrides, and the study's identity.
- `check_study`: a stored study searched the same thing, or the one line that says what differs.
- `Search.run`: ask, launch, tell, in batches, on a study that other searches may share.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.trial import FrozenTrial, TrialState

from pipeline.core.errors import PipelineError
from pipeline.core.job_folder import (
    JOB_STATUS_FILE,
    METRICS_FILE,
    job_status,
    read_json,
    record_lost_job,
)
from pipeline.core.sweep_state import job_difference, job_done
from pipeline.options.search_space import GROUPS, GroupSpace, parameter_key

log = logging.getLogger(__name__)

# Study and trial user attributes this sweeper keeps (a colon: no config key has one).
IDENTITY_ATTR = "search:identity"  # study: what it searches (model, dataset, space, objectives)
OWNER_ATTR = "search:owner"  # trial: the search that runs it (host:pid)
OVERRIDES_ATTR = "search:overrides"  # trial: its job's overrides
FAILURE_ATTR = "search:failure"  # trial: why its job failed (a FAIL that counts as a trial done)
INTERRUPTED_ATTR = "search:interrupted"  # trial: its search was interrupted; a copy runs again
SURPLUS_ATTR = "search:surplus"  # trial: asked when another search had taken the study's last place
# trial: its job folder: its own number, or for a copy of a trial that was cut short (an
# interrupt, a search that died) the folder of the trial it copies, where it runs again.
FOLDER_ATTR = "search:folder"

# Parts of the composed config that say what a search measures (where the app has them).
IDENTITY_NODES = ("task", "model", "dataset", "objectives")
# Fixed overrides that do not change what a trial measures: where things are and how they run.
NOT_IDENTITY = ("hydra", "mlflow", "model", "dataset", "task", "objectives", "cache_dir", "select")


class SearchError(Exception):
    """The search cannot start or go on: one line for the user."""


def owner() -> str:
    return f"{platform.node()}:{os.getpid()}"


def storage_url(storage: str | None) -> str | None:
    """The storage as SQLAlchemy names it: `postgresql://` means psycopg2 there, and this project
    installs psycopg 3 (the server extra)."""
    if not storage:
        return None
    url = str(storage)
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            if importlib.util.find_spec("psycopg") is None:
                raise SearchError(
                    "a PostgreSQL hydra.sweeper.storage needs psycopg: pip install -e '.[cpu,server]'"
                )
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def shown_url(url: str | None) -> str:
    """A storage URL as messages show it: without its password."""
    if url is None:
        return "memory"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


# --- the search space -----------------------------------------------------------------------


def distribution(override: Override) -> BaseDistribution:
    """A sweep override as an Optuna distribution (Hydra's Optuna sweeper's mapping)."""
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        assert sweep.start is not None and sweep.end is not None
        log_scale = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):  # int(interval(...))
            return IntDistribution(sweep.start, sweep.end, log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    # Keeps Python's meaning of range(): `stop` is not a value.
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if isinstance(sweep, RangeSweep) and not sweep.shuffle and len(numbers) == len(values):
        return IntDistribution(min(numbers), max(numbers), step=abs(int(sweep.step)))
    return CategoricalDistribution(cast("list[CategoricalChoiceType]", values))


def describe(dist: BaseDistribution) -> str:
    """A distribution as Hydra's sweep syntax writes it."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(_override_value(v) for v in dist.choices)})"
    if isinstance(dist, IntDistribution):
        if dist.log:
            return f"tag(log, int(interval({dist.low}, {dist.high})))"
        return f"range({dist.low}, {dist.high + dist.step}, {dist.step})"
    assert isinstance(dist, FloatDistribution)
    text = f"interval({dist.low}, {dist.high})"
    return f"tag(log, {text})" if dist.log else text


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _override_value(value: Any) -> str:
    """A trial's parameter as Hydra's override grammar writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _resolved(config: DictConfig, key: str) -> Any:
    node = OmegaConf.select(config, key, default=None)
    if node is None or not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # an interpolation this process cannot resolve: compare it as written
        return OmegaConf.to_container(node, resolve=False)


@dataclass
class Plan:
    """What a search searches: built the same way by the start-up check and by the sweeper."""

    searched: dict[str, BaseDistribution]  # the non-group keys searched, by key
    groups: GroupSpace | None  # the device/engine/precision values, where any is searched
    fixed: dict[str, Override]  # key -> a value set for every trial
    identity: dict[str, Any]  # what the study records and a rerun must match
    left_out: list[str] = field(default_factory=list)

    def draw(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggests the trial's parameters: groups first (each given those before), then the rest."""
        drawn: dict[str, Any] = {}
        if self.groups is not None:
            for key in self.groups.order():
                name, values = self.groups.choices(key, drawn)
                drawn[key] = trial.suggest_categorical(name, list(values))
        for key, dist in self.searched.items():
            drawn[key] = suggest(trial, key, dist)
        return drawn

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter name a trial can draw before custom_search_space, with its distribution."""
        named: dict[str, BaseDistribution] = {}
        if self.groups is not None:
            named |= {name: CategoricalDistribution(v) for name, v in self.groups.parameters().items()}
        return named | dict(self.searched)


def make_plan(
    config: DictConfig, params: Mapping[str, str], arguments: Sequence[str], directions: list[str]
) -> Plan:
    """The plan of a search: `params` and then the command line's `arguments`, which win."""
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    searched: dict[str, Override] = {}
    fixed: dict[str, Override] = {}
    for override in parser.parse_overrides(lines):
        key = override.get_key_element()
        searched.pop(key, None)
        fixed.pop(key, None)
        (searched if override.is_sweep_override() else fixed)[key] = override
    distributions = {key: distribution(override) for key, override in searched.items()}
    groups = None
    declared = {
        key: list(dist.choices)
        for key, dist in distributions.items()
        if key in GROUPS and isinstance(dist, CategoricalDistribution)
    }
    if declared and "precision" in declared | _group_values(config, fixed):
        try:
            groups = GroupSpace.build(declared, _group_values(config, fixed, exclude=declared))
        except PipelineError as exc:
            raise SearchError(str(exc)) from None
        distributions = {key: dist for key, dist in distributions.items() if key not in declared}
    identity: dict[str, Any] = {node: _resolved(config, node) for node in IDENTITY_NODES}
    identity["directions"] = list(directions)
    identity["fixed"] = {
        key: override.get_value_element_as_str()
        for key, override in fixed.items()
        if key.lstrip("+~").replace("/", ".").split(".")[0] not in NOT_IDENTITY
    }
    identity["custom_search_space"] = OmegaConf.select(
        config, "hydra.sweeper.custom_search_space", default=None
    )
    plan = Plan(distributions, groups, fixed, identity, list(groups.left_out) if groups else [])
    space = sorted(plan.distributions().items())
    plan.identity["space"] = {name: distribution_to_json(dist) for name, dist in space}
    return plan


def _group_values(
    config: DictConfig, fixed: Mapping[str, Override], exclude: Mapping[str, object] | None = None
) -> dict[str, str]:
    """The value of each device/engine/precision group that is not searched (command line, else config)."""
    values = {}
    for key in GROUPS:
        if exclude and key in exclude:
            continue
        if key in fixed:
            values[key] = fixed[key].get_value_element_as_str()
        elif (name := OmegaConf.select(config, f"{key}.name", default=None)) is not None:
            values[key] = str(name)
    return values


# --- the study's identity ---------------------------------------------------------------------


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: value}


def difference(stored: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(The first difference that makes the study another search, or None; the safe ones)."""
    for node in (*IDENTITY_NODES, "directions", "custom_search_space", "fixed"):
        if node not in stored:
            continue
        old, new = _flat(stored.get(node), node), _flat(current.get(node), node)
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                return f"{key}: the study has {_shown(old.get(key))}, this search {_shown(new.get(key))}", []
    problem, safe = space_difference(
        {name: json_to_distribution(text) for name, text in stored.get("space", {}).items()},
        {name: json_to_distribution(text) for name, text in current.get("space", {}).items()},
    )
    return problem, safe


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def space_difference(
    old: Mapping[str, BaseDistribution], new: Mapping[str, BaseDistribution]
) -> tuple[str | None, list[str]]:
    safe = []
    for name in sorted(old.keys() | new.keys(), key=lambda n: (n not in new, n)):
        if name not in old:
            return f"{name} is searched here ({describe(new[name])}), not in the study", []
        if name not in new:
            return f"the study searches {name} ({describe(old[name])}), this search does not", []
        if old[name] == new[name]:
            continue
        try:
            check_distribution_compatibility(old[name], new[name])
        except ValueError:
            return f"{name}: the study searches {describe(old[name])}, this search {describe(new[name])}", []
        safe.append(f"{name}: {describe(old[name])} -> {describe(new[name])}")
    return None, safe


def _stored_space(study: optuna.Study) -> dict[str, BaseDistribution]:
    """The distributions of a study's trials (for a study that has no identity recorded)."""
    space: dict[str, BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        space |= trial.distributions
    return space


def check_study(study: optuna.Study, plan: Plan, storage: str | None) -> list[str]:
    """Raises SearchError where the study searched something else; returns the safe changes."""
    where = f"study {study.study_name} in {shown_url(storage)}"
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != [d.lower() for d in plan.identity["directions"]]:
        raise SearchError(
            f"{where} optimises {stored_directions}, not {plan.identity['directions']}: "
            f"a new search wants a new hydra.sweeper.study_name"
        )
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is None:  # a study of an earlier sweeper, or one made by hand: its trials say what it searched
        space = _stored_space(study)
        mine = plan.distributions()
        known = {name: dist for name, dist in space.items() if name in mine}
        problem, safe = space_difference(known, mine) if space else (None, [])
    else:
        problem, safe = difference(stored, plan.identity)
    if problem:
        raise SearchError(f"{where} differs from this search: {problem}; {_NEW_STUDY}")
    return safe


_NEW_STUDY = "rerun it as it was, or start a new study: hydra.sweeper.study_name=NEW_NAME"
# What Optuna says of a parameter the study knows with another distribution.
_OTHER_DISTRIBUTION = ("does not support dynamic value space", "different distribution kind", "different log")
# Samplers of one objective only.
_SINGLE_OBJECTIVE = ("CmaEsSampler",)


class _Branch(Exception):
    def __init__(self, name: str, values: list[Any]) -> None:
        self.name = name
        self.values = values


class _GridPath:
    """Stands in for a trial to walk one path of a conditional space (the grid's points)."""

    def __init__(self, chosen: Mapping[str, Any], user_attrs: Mapping[str, Any]) -> None:
        self.params: dict[str, Any] = {}
        self.user_attrs = dict(user_attrs)
        self._chosen = chosen

    def _draw(self, name: str, values: list[Any]) -> Any:
        if name not in self.params:
            if name not in self._chosen:
                raise _Branch(name, values)
            self.params[name] = self._chosen[name]
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._draw(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> Any:
        return self._draw(name, list(range(low, high + 1, step)))

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> Any:
        if step is None:
            raise SearchError(
                f"hydra/sweeper/sampler=grid tries every value of each parameter, and {name} is "
                f"{describe(FloatDistribution(low, high, log=log))}: give it choice(...) or range(...)"
            )
        return self._draw(name, [low + i * step for i in range(round((high - low) / step) + 1)])


def grid_points(
    plan: Plan,
    custom: Callable[[DictConfig, optuna.Trial], None] | None,
    config: DictConfig,
    at_most: int,
) -> int:
    """How many points the grid has (custom_search_space's included), counting up to `at_most`."""
    fixed = {key: override.get_value_element_as_str() for key, override in plan.fixed.items()}

    def count(chosen: dict[str, Any], budget: int) -> int:
        path = _GridPath(chosen, fixed)
        trial = cast("optuna.Trial", path)
        try:
            plan.draw(trial)
            if custom is not None:
                custom(config, trial)
        except _Branch as branch:
            total = 0
            for value in branch.values:
                total += count({**chosen, branch.name: value}, budget - total)
                if total >= budget:
                    break
            return total
        return 1

    return count({}, at_most)


def check_sampler(plan: Plan, target: str) -> None:
    name = target.rsplit(".", 1)[-1]
    objectives = len(plan.identity["directions"])
    if name in _SINGLE_OBJECTIVE and objectives > 1:
        raise SearchError(
            f"{name} (hydra.sweeper.sampler) optimises one objective, and this search has {objectives} "
            "(hydra.sweeper.direction): choose tpe, nsgaii, random, grid, qmc or gp"
        )
    if target.endswith("BruteForceSampler"):
        for name, dist in plan.distributions().items():
            if isinstance(dist, FloatDistribution) and dist.step is None:
                raise SearchError(
                    f"hydra/sweeper/sampler=grid tries every value of each parameter, and {name} is "
                    f"{describe(dist)}: give it choice(...) or range(...)"
                )


def check_stored_study(plan: Plan, study_name: str | None, storage: str | None, sweep_dir: Path) -> None:
    """Before the search starts: the study it would continue searched the same thing."""
    url = storage_url(storage)
    if url is None:
        if job_folder_states(sweep_dir):
            raise SearchError(
                f"{sweep_dir} holds the job folders of an earlier search, and an in-memory study "
                "(hydra.sweeper.storage=null) numbers its trials from 0: give this search a new "
                "hydra.sweep.dir, or a storage to resume the earlier one in"
            )
        return
    if study_name is None:  # Optuna names a new study itself
        return
    rdb = open_rdb(url)
    try:
        with quiet_optuna():
            study = optuna.load_study(
                study_name=study_name, storage=rdb, sampler=optuna.samplers.RandomSampler()
            )
    except KeyError:  # no such study yet
        return
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"the Optuna storage {shown_url(url)} cannot be read: {first}") from None
    check_study(study, plan, url)


def record_identity(study: optuna.Study, plan: Plan, storage: str | None) -> list[str]:
    """Checks a stored study against the plan, or records the plan in a new one (and checks
    that another search did not record another plan at the same moment)."""
    if IDENTITY_ATTR in study.user_attrs:
        return check_study(study, plan, storage)
    safe = check_study(study, plan, storage)
    study.set_user_attr(IDENTITY_ATTR, plan.identity)
    check_study(study, plan, storage)  # `user_attrs` reads the storage: another search's record wins
    return safe


# --- storage, sampler -------------------------------------------------------------------------


# How long a search waits for a SQLite study another process has locked (a search writes for
# milliseconds at a time; a longer lock is someone else's, and the search says so).
SQLITE_LOCK_WAIT_SECONDS = 30


def _storage_problem(exc: BaseException) -> str:
    """An error's first line, and for a locked SQLite file how long this search waited for it."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "database is locked" in first:  # the wait of `connect_args` has run out already
        first += f" (another process has held it for {SQLITE_LOCK_WAIT_SECONDS} s)"
    return first


def open_rdb(url: str, **options: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url`: several searches opening a new one at once all open it (the
    first creates its tables; the others retry), or one line that says why it cannot be opened."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several searches on one file: wait for its lock, not fail
        engine_kwargs["connect_args"] = {"timeout": SQLITE_LOCK_WAIT_SECONDS}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **options)
        except Exception as exc:  # e.g. "table ... already exists": another search made it meanwhile
            first = _storage_problem(exc)
            if attempt == 3 or "database is locked" in first:
                raise SearchError(f"the Optuna storage {shown_url(url)} cannot be opened: {first}") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def storage_failures(storage: str | None) -> Iterator[None]:
    """A study storage that fails while the search uses it (locked past the wait, read-only, damaged,
    unreachable) ends the search with one line (SearchError), not a traceback; other errors pass."""
    import sqlalchemy.exc

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, sqlalchemy.exc.SQLAlchemyError) else exc
        raise SearchError(
            f"the Optuna storage {shown_url(storage_url(storage))} failed: {_storage_problem(cause)}; "
            "the finished trials are kept (in the study and their job folders): rerun the same command "
            "once it works"
        ) from None


def make_storage(
    url: str | None, heartbeat_interval: int, grace_period: int | None, on_stale: Callable[..., None]
) -> optuna.storages.BaseStorage | None:
    """An RDB storage with Optuna's heartbeat, or None (in memory)."""
    url = storage_url(url)
    if url is None:
        return None
    callback_key = (
        "heartbeat_stale_trial_callback"  # Optuna >= 4.9; `failed_trial_callback` before
        if "heartbeat_stale_trial_callback" in optuna.storages.RDBStorage.__init__.__code__.co_varnames
        else "failed_trial_callback"
    )
    callback: dict[str, Any] = {callback_key: on_stale}
    return open_rdb(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, **callback)


def retry_callback(max_retry: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    # Optuna >= 4.9 names it RetryHeartbeatStaleTrialCallback.
    cls: Any = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    cls = cls or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        callback: Callable[[optuna.Study, FrozenTrial], None] = cls(max_retry=max_retry)
    return callback


def make_sampler(conf: Mapping[str, Any], seed: int | None) -> optuna.samplers.BaseSampler:
    options = {key: value for key, value in conf.items() if value is not None and key != "_target_"}
    if seed is not None:
        options["seed"] = seed
    sampler_class = get_class(str(conf["_target_"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = sampler_class(**options)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    return sampler


# --- running the study ------------------------------------------------------------------------


class Heartbeat:
    """Records a heartbeat for this search's running trials every `interval` seconds (Optuna
    does this in `study.optimize`; an ask-and-tell search does it itself)."""

    def __init__(self, storage: Any, interval: int) -> None:
        self._storage = storage
        self._interval = interval
        self._trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
        if storage is not None:
            self._thread.start()

    def add(self, trial_id: int) -> None:
        if self._storage is None:
            return
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trial_ids.discard(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                trial_ids = sorted(self._trial_ids)
            for trial_id in trial_ids:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception as exc:  # a storage hiccup: the next beat tries again
                    log.warning("heartbeat of trial %d not recorded: %s", trial_id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)


def counts_as_done(trial: FrozenTrial) -> bool:
    """A trial that used a place of `n_trials`: finished with results, or failed by its job.

    Not one that failed because its search died or was interrupted: a copy of it runs again.
    """
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and FAILURE_ATTR in trial.user_attrs


def takes_a_place(trial: FrozenTrial) -> bool:
    """Done, running, or waiting to run (a copy): a trial that holds one of the `n_trials` places."""
    return counts_as_done(trial) or trial.state in (TrialState.RUNNING, TrialState.WAITING)


def surplus(trials: Sequence[FrozenTrial], number: int, n_trials: int) -> bool:
    """Whether trial `number` came after the study's places were all taken.

    Two searches that both see one place left both ask: counting what is taken before asking cannot
    stop that on a storage without locks. Afterwards the study's numbering settles it the same way
    for every search: the trials with lower numbers hold the places first. No lock, and any storage.
    """
    return sum(1 for t in trials if t.number < number and takes_a_place(t)) >= n_trials


@dataclass
class Batch:
    trials: list[optuna.Trial]
    folders: list[int]  # each trial's job folder
    overrides: list[list[str]]


class Search:
    """One search on a study: asks trials in batches, launches them, tells their results."""

    def __init__(
        self,
        study: optuna.Study,
        plan: Plan,
        launcher: Launcher,
        sweep_dir: Path,
        *,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        sampler_conf: Mapping[str, Any],
        custom_search_space: Callable[[DictConfig, optuna.Trial], None] | None,
        config: DictConfig,
        heartbeat: Heartbeat,
        poll_seconds: float,
    ) -> None:
        self.study = study
        self.plan = plan
        self.launcher = launcher
        self.sweep_dir = sweep_dir
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.sampler_conf = sampler_conf
        self.custom_search_space = custom_search_space
        self.config = config
        self.heartbeat = heartbeat
        self.poll_seconds = poll_seconds
        self.owner = owner()
        self.open: dict[int, optuna.Trial] = {}  # this search's RUNNING trials, by number
        self.grid_done = False
        seed = sampler_conf.get("seed")
        self.seed = int(seed) if seed is not None else None
        # Samplers draw from their own random state: seeded again for each trial with seed + its
        # number, two searches sharing a study never draw alike, and a search stays reproducible.
        # A QMC sequence is one sequence: its seed stays.
        self.reseed = self.seed is not None and not str(sampler_conf["_target_"]).endswith("QMCSampler")

    # -- the loop

    def run(self) -> str | None:
        """Runs trials until the study has `n_trials` done; returns why it stopped early, if it did."""
        waiting_said: set[int] = set()
        while True:
            fail_stale_trials(self.study)
            trials = self.study.get_trials(deepcopy=False)
            done = sum(1 for trial in trials if counts_as_done(trial))
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if done >= self.n_trials or self.grid_done:
                return None
            wanted = self.n_trials - done - len(running)
            if wanted <= 0:  # the rest is running in other searches: wait for them, or their heartbeat
                if set(running) - waiting_said:
                    log.info("Waiting for trials %s of other searches on this study", running)
                    waiting_said |= set(running)
                time.sleep(self.poll_seconds)
                continue
            batch = self.ask(min(self.n_jobs, wanted))
            if not batch.trials:  # each was a copy whose job had finished: told already
                continue
            results = self.launch(batch)
            failed = self.tell(batch, results)
            if failed / len(batch.trials) > self.max_failure_rate:
                return (
                    f"{failed} of {len(batch.trials)} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the search stops"
                )

    def wanted(self) -> int:
        """Trials still to ask for: `n_trials` less those done and those running (any search's)."""
        trials = self.study.get_trials(deepcopy=False)
        done = sum(1 for trial in trials if counts_as_done(trial))
        return self.n_trials - done - sum(1 for t in trials if t.state == TrialState.RUNNING)

    def ask(self, n: int) -> Batch:
        batch = Batch([], [], [])
        for _ in range(n):
            if batch.trials and self.wanted() <= 0:  # another search asked meanwhile
                break
            with warnings.catch_warnings():  # heartbeats outside Study.optimize: this class records them
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            if surplus(self.study.get_trials(deepcopy=False), trial.number, self.n_trials):
                log.info(
                    "Trial %d not run: another search took the study's last place meanwhile", trial.number
                )
                trial.set_user_attr(
                    SURPLUS_ATTR, "asked when the study's n_trials places were taken; not run"
                )
                self.close(trial, state=TrialState.FAIL)
                break
            self.open[trial.number] = trial
            self.heartbeat.add(trial._trial_id)
            trial.set_user_attr(OWNER_ATTR, self.owner)
            if self.reseed:
                assert self.seed is not None
                self.study.sampler = make_sampler(self.sampler_conf, self.seed + trial.number)
            overrides = self.overrides(trial)
            trial.set_user_attr(OVERRIDES_ATTR, overrides)
            folder = int(trial.user_attrs.get(FOLDER_ATTR, trial.number))  # a copy: its original's
            trial.set_user_attr(FOLDER_ATTR, folder)
            self.check_folder(trial, folder, overrides)
            if folder != trial.number and (values := self.finished_values(folder)) is not None:
                # The job had finished when its search stopped: its result stands, nothing reruns.
                log.info("Trial %d: job folder %d had finished; its result is told", trial.number, folder)
                self.close(trial, values=values)
                continue
            batch.trials.append(trial)
            batch.folders.append(folder)
            batch.overrides.append(overrides)
        return batch

    def finished_values(self, folder: int) -> list[float] | None:
        """The objectives of a job folder whose job FINISHED (the project's metrics.json), if any."""
        job_dir = self.sweep_dir / str(folder)
        names = OmegaConf.select(self.config, "objectives", default=None)
        metrics = read_json(job_dir / METRICS_FILE)
        if not job_done(job_dir) or not names or metrics is None:  # every sweep's rule (sweep_state)
            return None
        if not all(isinstance(metrics.get(str(name)), int | float) for name in names):
            return None
        return [float(metrics[str(name)]) for name in names]

    def check_folder(self, trial: optuna.Trial, folder: int, overrides: list[str]) -> None:
        """Job folder N is trial N's (or, for a copy, its original's): never another job's."""
        job_dir = self.sweep_dir / str(folder)
        if not job_dir.exists():
            return
        if folder == trial.number:
            raise SearchError(
                f"{job_dir} exists, but trial {trial.number} of study {self.study.study_name} is new: "
                "the folder belongs to another search; give this one a hydra.sweep.dir of its own"
            )
        if difference := job_difference(job_dir, overrides):  # every sweep's rule (sweep_state)
            raise SearchError(difference)

    def overrides(self, trial: optuna.Trial) -> list[str]:
        for key, override in self.plan.fixed.items():  # also for custom_search_space to read
            trial.set_user_attr(key, override.get_value_element_as_str())
        try:
            self.plan.draw(trial)
            if self.custom_search_space is not None:
                self.custom_search_space(self.config, trial)
        except ValueError as exc:
            if any(
                phrase in str(exc) for phrase in _OTHER_DISTRIBUTION
            ):  # the study knows it with other values
                raise SearchError(
                    f"study {self.study.study_name}: trial {trial.number}: {exc} "
                    f"(custom_search_space changed?); {_NEW_STUDY}"
                ) from None
            raise SearchError(f"study {self.study.study_name}: trial {trial.number}: {exc}") from None
        keys = {name: parameter_key(name) for name in trial.params}
        clash = set(keys.values()) & {override.key_or_group for override in self.plan.fixed.values()}
        if clash:
            raise SearchError(f"{', '.join(sorted(clash))}: both searched and set on the command line")
        return [f"{keys[name]}={_override_value(value)}" for name, value in trial.params.items()] + [
            str(override.input_line) for override in self.plan.fixed.values()
        ]

    def launch(self, batch: Batch) -> list[JobReturn]:
        """Launches the batch; Hydra numbers a launch's jobs (and folders) from its first, so each
        run of consecutive folders apart (another search on the study may hold the numbers between)."""
        results: list[JobReturn] = []
        start = 0
        for end in range(1, len(batch.trials) + 1):
            if end == len(batch.trials) or batch.folders[end] != batch.folders[end - 1] + 1:
                run = batch.overrides[start:end]
                results += self.launcher.launch(run, initial_job_idx=batch.folders[start])
                start = end
        return results

    def tell(self, batch: Batch, results: Sequence[JobReturn]) -> int:
        failed = 0
        for trial, result in zip(batch.trials, results, strict=True):
            try:
                values = self.values(result)
            except Exception as exc:
                log.warning("Failed experiment: trial %d: %s", trial.number, exc)
                trial.set_user_attr(FAILURE_ATTR, str(exc)[:1000])
                self.close(trial, state=TrialState.FAIL)
                failed += 1
            else:
                self.close(trial, values=values)
        return failed

    def close(self, trial: optuna.Trial, **outcome: Any) -> None:
        try:
            frozen = self.study.tell(trial, skip_if_finished=True, **outcome)
        except RuntimeError as exc:  # the grid sampler is done: it asks to stop (the trial is told)
            if "Study.stop" not in str(exc):
                raise
            self.grid_done = True
            log.info("The grid is done: every point has been tried")
        else:
            if frozen.state == TrialState.FAIL and outcome.get("values") is not None:
                log.warning(
                    "Trial %d was recorded FAILED by another search before its result came (its "
                    "heartbeat was late); the result is kept in its folder",
                    trial.number,
                )
        self.heartbeat.discard(trial._trial_id)
        self.open.pop(trial.number, None)

    def values(self, result: JobReturn) -> list[float]:
        """The job's objectives; raises for a job that raised, returned None or the wrong number."""
        value = result.return_value  # re-raises the job's exception
        if value is None:
            raise ValueError("the job returned no objectives (it failed or was SKIPPED; see its folder)")
        values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
        directions = self.plan.identity["directions"]
        if len(values) != len(directions):
            raise ValueError(f"the job returned {len(values)} objectives, not {len(directions)}")
        return values

    def close_open(self, interrupted: bool) -> list[int]:
        """Closes this search's RUNNING trials (none of another search's): FAIL, and where the
        search was interrupted, a copy WAITING for the same command (or another search) to run."""
        closed = []
        states = {t.number: t.state for t in self.study.get_trials(deepcopy=False)}
        for number, trial in sorted(self.open.items()):
            frozen = self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            self.heartbeat.discard(trial._trial_id)
            closed.append(number)
            if interrupted and states.get(number) == TrialState.RUNNING:  # not already failed and retried
                folder = int(frozen.user_attrs.get(FOLDER_ATTR, number))
                copy = {INTERRUPTED_ATTR: number, FOLDER_ATTR: folder}
                self.study.enqueue_trial(dict(frozen.params), user_attrs=copy)
        self.open.clear()
        return closed


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def stale_trial_handler(
    sweep_dir: Path, max_retry: int, grace_period: int
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Optuna's failed-trial callback (a copy runs again), after saying so in the trial's job folder."""
    retry = retry_callback(max_retry)

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        job_dir = sweep_dir / str(trial.user_attrs.get(FOLDER_ATTR, trial.number))
        if job_dir.is_dir() and job_status(job_dir)["status"] not in ("FINISHED", "KILLED"):
            record_lost_job(
                job_dir,
                list(trial.user_attrs.get(OVERRIDES_ATTR) or []),
                f"its search ({trial.user_attrs.get(OWNER_ATTR, 'unknown')}) stopped: no heartbeat for "
                f"{grace_period} s; a copy of trial {trial.number} runs again in this folder",
            )
        log.warning("Trial %d lost its search (no heartbeat): recorded FAILED, to run again", trial.number)
        retry(study, trial)

    return on_stale


def adopt_orphans(study: optuna.Study, heartbeat_storage: Any) -> None:
    """RUNNING trials that no search of this sweeper runs (an older sweeper's, or one asked by
    hand) get a first heartbeat: without a later one they go stale, and are failed and rerun."""
    if heartbeat_storage is None:
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if OWNER_ATTR not in trial.user_attrs:
            heartbeat_storage.record_heartbeat(trial._trial_id)


def optimization_results(study: optuna.Study) -> dict[str, Any] | None:
    """What Hydra's Optuna sweeper writes to optimization_results.yaml (parameters as the job's keys)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None

    def params(trial: FrozenTrial) -> dict[str, Any]:
        return {parameter_key(name): value for name, value in trial.params.items()}

    if len(study.directions) < 2:
        best = study.best_trial
        return {"name": "optuna", "best_params": params(best), "best_value": best.value}
    return {
        "name": "optuna",
        "solutions": [{"params": params(t), "values": list(t.values)} for t in study.best_trials],
    }


def job_folder_states(sweep_dir: Path) -> dict[int, str]:
    """The status of each job folder in a sweep folder (for the in-memory study check)."""
    states = {}
    if sweep_dir.is_dir():
        for child in sweep_dir.iterdir():
            if child.name.isdigit() and child.is_dir():
                states[int(child.name)] = (read_json(child / JOB_STATUS_FILE) or {}).get("status", "UNKNOWN")
    return states


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines ("Trial 3 finished ...") are this sweeper's to say."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
