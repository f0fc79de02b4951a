"""Which trials hold the places of a shared study's `n_trials` (the Optuna sweeper's rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.ernie_optuna_sweeper._search import (
    FAILURE_ATTR,
    SURPLUS_ATTR,
    Heartbeat,
    Search,
    counts_as_done,
    make_plan,
    surplus,
)


def study_with(*states: TrialState) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for state in states:
        trial = study.ask()
        if state == TrialState.COMPLETE:
            study.tell(trial, 1.0)
        elif state == TrialState.FAIL:
            study.tell(trial, state=TrialState.FAIL)
    return study


def test_two_searches_asking_for_the_last_place_leave_it_to_the_lower_number() -> None:
    study = study_with(TrialState.COMPLETE, TrialState.RUNNING)  # 2 of 3 places taken
    first, second = study.ask(), study.ask()  # both searches saw one place left
    trials = study.get_trials(deepcopy=False)
    assert not surplus(trials, first.number, n_trials=3)
    assert surplus(trials, second.number, n_trials=3)


def test_a_waiting_copy_holds_a_place_and_a_fail_of_a_dead_search_does_not() -> None:
    study = study_with(TrialState.COMPLETE, TrialState.FAIL)  # the FAIL: its search died
    study.enqueue_trial({}, user_attrs={"search:interrupted": 1})  # its copy waits
    trial = study.ask()  # takes the copy
    assert trial.number == 2
    newer = study.ask()
    trials = study.get_trials(deepcopy=False)
    assert not surplus(trials, trial.number, n_trials=3)
    assert not surplus(trials, newer.number, n_trials=3)
    assert surplus(trials, study.ask().number, n_trials=3)


def test_a_failed_job_holds_its_place() -> None:
    study = study_with(TrialState.COMPLETE)
    failed = study.ask()
    failed.set_user_attr(FAILURE_ATTR, "the job raised")
    study.tell(failed, state=TrialState.FAIL)
    assert surplus(study.get_trials(deepcopy=False), study.ask().number, n_trials=2)


def test_a_search_that_asks_for_a_taken_place_runs_nothing(tmp_path: Path) -> None:
    study = study_with(TrialState.COMPLETE, TrialState.RUNNING)  # another search runs the last place
    plan = make_plan(OmegaConf.create({}), {"x": "choice(1,2)"}, [], ["minimize"])
    sampler = {"_target_": "optuna.samplers.RandomSampler", "seed": 1}
    search = Search(
        study, plan, cast(Any, None), tmp_path, n_trials=2, n_jobs=1, max_failure_rate=0.0,
        sampler_conf=sampler, custom_search_space=None, config=OmegaConf.create({}),
        heartbeat=Heartbeat(None, 60), poll_seconds=0.1,
    )  # fmt: skip
    batch = search.ask(1)  # as after seeing one place left, when the other search asked first
    assert batch.trials == [] and search.open == {}
    late = study.get_trials(deepcopy=False)[-1]
    assert late.state == TrialState.FAIL and SURPLUS_ATTR in late.user_attrs
    assert sum(counts_as_done(t) for t in study.get_trials(deepcopy=False)) == 1
    assert list(tmp_path.iterdir()) == []  # no job folder
