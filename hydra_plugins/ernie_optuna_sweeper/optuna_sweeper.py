"""`experiment=optuna_search`'s sweeper: Hydra's Optuna sweeper made resumable.

With a persistent `storage`, rerunning the same search continues its study instead of starting
over: `n_trials` is the size of the whole study, so a rerun runs only the trials still missing;
trials a killed search left RUNNING are told to Optuna as FAILED; job folders are numbered by
Optuna trial number, so the rerun adds folders beside the first run's in the same sweep folder
(and under the same MLflow parent run). Hydra loads sweepers only from the `hydra_plugins`
package, hence this module's home; Optuna is imported only when a search starts.

hydra-optuna-sweeper 1.3.0, the newest release for Hydra 1.3, requires optuna < 3, whose
database storage predates SQLAlchemy 2: see `rdb_storage`.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


def rdb_storage(url: str) -> Any:
    """Optuna 2.10's database storage, made to work under SQLAlchemy 2 (which MLflow 3 requires).

    Its alembic bookkeeping opens connections that it neither commits nor closes: under
    SQLAlchemy 2 they hold SQLite's write lock until collected, and its schema-version check
    fails on them (AssertionError in get_current_version). Its tables are created by SQLAlchemy
    itself, so the storage works once that check is skipped and those connections are collected.
    """
    from optuna.storages import RDBStorage

    storage = RDBStorage(url, skip_compatibility_check=True)
    gc.collect()
    return storage


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        search = self.sweeper
        if isinstance(search.storage, str):
            search.storage = rdb_storage(search.storage)
        study = optuna.create_study(
            study_name=search.study_name,
            storage=search.storage,
            directions=search._get_directions(),
            load_if_exists=True,
        )
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL)
            log.warning(f"Trial {trial.number} of an interrupted search is recorded as FAILED")
        done = len(study.trials)
        if done:
            log.info(f"Resuming study {study.study_name}: {done} of {search.n_trials} trials done")
            # The seeded sampler would draw the first run's trials again.
            search.sampler.reseed_rng()
        search.job_idx = done  # folder N is trial N (setup() has set it to 0)
        search.n_trials = max(0, search.n_trials - done)
        return super().sweep(arguments)
