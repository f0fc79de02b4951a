"""`hydra/sweeper=optuna` (hydra_plugins/ernie_optuna_sweeper) on a toy Hydra app, and without Optuna.

The toy app's jobs take milliseconds, so these tests check the sweeper itself: the search space,
batches through Hydra's launchers, what Optuna is told, resuming, and the one-line errors. The
real search runs in tests/test_experiments.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import PROJECT_ROOT
from tests.helpers.without import run_without

optuna = pytest.importorskip("optuna")

APP = """
import hydra

@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    if cfg.outcome == "raise":
        raise RuntimeError("the job raised")
    if cfg.outcome == "none":  # as this project's failed and SKIPPED jobs
        return None
    return [float(cfg.n), float(cfg.lr)]

main()
"""

SPACE = """
def extra(config, trial):
    if trial.params["kind"] == "b":
        trial.suggest_categorical("extra", ["x", "y"])
"""

CONFIG = {
    "defaults": [{"override hydra/sweeper": "optuna"}, "_self_"],
    "outcome": "ok",
    "kind": "a",
    "n": 0,
    "lr": 0.0,
    "extra": "none",
    "hydra": {
        "mode": "MULTIRUN",
        "sweep": {"dir": "search", "subdir": "${hydra.job.num}"},
        "sweeper": {
            "direction": ["maximize", "minimize"],
            "study_name": "toy",
            "storage": "sqlite:///optuna.db",
            "n_trials": 5,
            "n_jobs": 2,
            "max_failure_rate": 1.0,
            "sampler": {"seed": 0},
            "custom_search_space": "space.extra",
            "params": {"kind": "choice(a, b)", "n": "range(1, 4)", "lr": "tag(log, interval(0.001, 0.1))"},
        },
    },
}


# What `import optuna` does without the extra; runs the script as `python SCRIPT ARGS` would.
def run_app(folder: Path, *overrides: str) -> subprocess.CompletedProcess:
    if not (folder / "app.py").exists():
        (folder / "app.py").write_text(APP)
        (folder / "space.py").write_text(SPACE)
        (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(PROJECT_ROOT)])}
    return subprocess.run(
        [sys.executable, "app.py", *overrides],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def load_study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="toy", storage=f"sqlite:///{folder}/optuna.db")


def job_overrides(folder: Path, job: int) -> list[str]:
    return yaml.safe_load((folder / "search" / str(job) / ".hydra" / "overrides.yaml").read_text())


@pytest.mark.parametrize("launcher", ["basic", "joblib", pytest.param("ray", marks=pytest.mark.slow)])
def test_each_trial_is_a_job_of_the_configured_launcher(tmp_path: Path, launcher: str) -> None:
    options = [f"hydra/launcher={launcher}"]
    if launcher == "ray":  # the project's launcher config, on a Ray cluster of the search's own
        pytest.importorskip("ray")
        options += [f"hydra.searchpath=[file://{PROJECT_ROOT}/conf]", "hydra.launcher.ray.init.num_cpus=2"]
    result = run_app(tmp_path, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    for trial in study.trials:
        assert trial.distributions["kind"] == optuna.distributions.CategoricalDistribution(["a", "b"])
        assert trial.distributions["n"] == optuna.distributions.IntDistribution(1, 3)  # range(): 4 is out
        assert trial.distributions["lr"] == optuna.distributions.FloatDistribution(0.001, 0.1, log=True)
        assert ("extra" in trial.params) == (trial.params["kind"] == "b")  # custom_search_space
        assert trial.values == [trial.params["n"], trial.params["lr"]]  # what the job returned
        searched = [f"{key}={value}" for key, value in trial.params.items()]
        assert job_overrides(tmp_path, trial.number) == searched


def test_failed_jobs_are_told_fail_and_too_many_stop_the_search(tmp_path: Path) -> None:
    result = run_app(tmp_path, "outcome=none")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("Failed experiment") == 5
    assert [t.state.name for t in load_study(tmp_path).trials] == ["FAIL"] * 5

    stopping = ["hydra.sweeper.n_trials=9", "hydra.sweeper.max_failure_rate=0.5"]
    result = run_app(tmp_path, "outcome=raise", *stopping)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: 2 of 2 trials failed, more than hydra.sweeper.max_failure_rate=0.5: the search stops"
    )
    assert "the job raised" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert [t.state.name for t in load_study(tmp_path).trials] == ["FAIL"] * 7  # one batch, not four


def test_a_rerun_resumes_the_study(tmp_path: Path) -> None:
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    load_study(tmp_path).ask()  # trial 2 is left RUNNING, as by a search killed during it

    result = run_app(tmp_path, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load_study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert sorted(int(p.name) for p in (tmp_path / "search").iterdir() if p.name.isdigit()) == [0, 1, 3]
    assert run_app(tmp_path, "hydra.sweeper.n_trials=4").returncode == 0  # complete: nothing to run
    assert len(load_study(tmp_path).trials) == 4

    result = run_app(tmp_path, "hydra.sweeper.direction=[minimize,minimize]")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (  # after Optuna's own log lines
        "error: study toy in sqlite:///optuna.db optimises ['maximize', 'minimize'], not "
        "['minimize', 'minimize']: a new search wants a new hydra.sweeper.study_name"
    )
    assert "Traceback" not in result.stderr


def test_the_sweeper_plugin_loads_without_optuna(tmp_path: Path) -> None:
    """Hydra imports every plugin module on every run: ours must not need Optuna to be imported."""
    result = run_without("optuna", tmp_path, "--hydra-help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ernie_optuna_sweeper" not in result.stderr
    assert "hydra/sweeper: basic, optuna" in result.stdout


def test_a_search_without_optuna_is_one_error_before_anything_starts(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    result = run_without(
        "optuna", tmp_path, "experiment=optuna_search", f"mlflow.tracking_uri=sqlite:///{store}"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "error: experiment=optuna_search needs the optuna extra: pip install -e '.[cpu,optuna]'"
    ]
    # Neither a sweep folder nor the sweep's MLflow parent run was started.
    assert not (tmp_path / "outputs").exists() and not store.exists()
