"""`experiment=optuna_search`'s sweeper: Hydra's Optuna sweeper made resumable.

With a persistent `storage`, rerunning the same search continues its study instead of starting
over: `n_trials` is the size of the whole study, so a rerun runs only the trials still missing;
trials a killed search left RUNNING are told to Optuna as FAILED; job folders are numbered by
Optuna trial number, so the rerun adds folders beside the first run's in the same sweep folder
(and under the same MLflow parent run). Hydra loads sweepers only from the `hydra_plugins`
package, hence this module's home; Optuna is imported only when a search starts.
"""

from __future__ import annotations

import logging

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        search = self.sweeper
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
