"""`hydra/sweeper=optuna` and `hydra/sweeper/sampler=NAME`: the names and keys of Hydra's own Optuna sweeper.

Hydra's hydra-optuna-sweeper names its samplers tpe, random, cmaes, nsgaii, grid, qmc and gp; so
do we, with each sampler's main settings and `seed`. A setting left null takes Optuna's own
default (which may differ between Optuna 4 and 5). `grid` enumerates the grid of the searched
choices and ranges, every point once (Optuna's BruteForceSampler, which knows that a precision is
drawn only with the engines that run it; Hydra's GridSampler would draw impossible pairs).

No Optuna import here: Hydra imports this module on every run to find plugins.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before putting it
# in sys.modules, and dataclasses cannot resolve string annotations there.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "ernie_optuna_sweeper"


@dataclass
class SamplerConf:
    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10  # random trials before TPE models the results
    n_ei_candidates: int = 24
    multivariate: bool | None = None  # model the parameters jointly
    group: bool | None = None  # with multivariate: conditional parameters in groups
    constant_liar: bool | None = None  # parallel trials: count running ones as bad (Optuna 5: on)


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.CmaEsSampler"  # the `cmaes` package (in the optuna extra)
    sigma0: float | None = None
    n_startup_trials: int = 1
    restart_strategy: str | None = None  # ipop or bipop
    popsize: int | None = None
    inc_popsize: int | None = None
    use_separable_cma: bool = False
    with_margin: bool = False  # CMA-ES with margin, for integer and discrete parameters


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class GridSamplerConf(SamplerConf):
    # Every point of the grid once: choice(...) and range(...) values (an interval has no grid).
    # n_trials larger than the grid: the search ends when the grid is done.
    _target_: str = "optuna.samplers.BruteForceSampler"


@dataclass
class QMCSamplerConf(SamplerConf):
    # A quasi-random sequence (SciPy's, which MLflow brings); its seed scrambles the sequence.
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"  # sobol or halton
    scramble: bool = False


@dataclass
class GPSamplerConf(SamplerConf):
    # Gaussian-process Bayesian optimisation: needs PyTorch, which this project does not install.
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10
    deterministic_objective: bool = False


SAMPLERS: dict[str, type[SamplerConf]] = {
    "tpe": TPESamplerConf,
    "random": RandomSamplerConf,
    "cmaes": CmaEsSamplerConf,
    "nsgaii": NSGAIISamplerConf,
    "grid": GridSamplerConf,
    "qmc": QMCSamplerConf,
    "gp": GPSamplerConf,
}

# What a sampler imports beyond Optuna, and how to get it.
SAMPLER_PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "optuna.samplers.CmaEsSampler": (("cmaes", "pip install -e '.[cpu,optuna]'"),),
    "optuna.samplers.QMCSampler": (("scipy", "pip install scipy"),),
    "optuna.samplers.GPSampler": (
        ("torch", "pip install torch (the CPU build is enough)"),
        ("scipy", "pip install scipy"),
    ),
}


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.ernie_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # Hydra would build the sampler with the sweeper; the search builds it, once it knows the seed.
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
    # An RDB URL (sqlite:///optuna.db, postgresql://...): the study outlives the search, and
    # several searches may share it. null: in memory, for this search only.
    storage: str | None = None
    n_trials: int = 20  # finished trials of the whole study, other searches' and earlier runs' too
    n_jobs: int = 2  # trials asked and launched together
    max_failure_rate: float = 0.0  # of a batch's trials; more failed stops the search
    # Hydra's sweep syntax: choice(a, b), range(1, 9, 2), interval(0.1, 1), tag(log, interval(...)).
    params: dict[str, str] = field(default_factory=dict)
    # "module.function": called as function(config, trial) to suggest more parameters.
    custom_search_space: str | None = None
    # RDB storages: each search records a heartbeat of its running trials every this many seconds;
    # a trial without one for grace_period (null: twice the interval) has lost its search, is
    # recorded FAILED by any search of the study and run again, at most max_retry times.
    heartbeat_interval: int = 30
    grace_period: int | None = None
    max_retry: int = 2


_STORE = ConfigStore.instance()
_STORE.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider=PROVIDER)
for _name, _node in SAMPLERS.items():
    _STORE.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider=PROVIDER)
_STORE.store(
    group="hydra/callbacks",
    name="require_optuna",
    node={"_target_": "hydra_plugins.ernie_optuna_sweeper.optuna_sweeper.RequireOptuna"},
    provider=PROVIDER,
)
