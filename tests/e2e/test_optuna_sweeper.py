"""`hydra/sweeper=optuna` (hydra_plugins/ernie_optuna_sweeper) on a toy Hydra app, and without Optuna.

The toy app's jobs take a moment (`sleep`), so these tests check the sweeper itself with real
processes and real Optuna storages: the search space, batches through Hydra's launchers, what
Optuna is told, resuming and refusing to resume, studies shared by several searches on SQLite and
on PostgreSQL, a search killed mid-trial, Hydra's sampler names, and the one-line errors. The
real search (the project's jobs) runs in tests/e2e/test_experiments.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import PROJECT_ROOT
from tests.helpers.without import run_without

optuna = pytest.importorskip("optuna")

APP = """
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    time.sleep(float(cfg.sleep))
    if "ray" in sys.modules:  # a Ray worker: which cluster ran the job
        import ray

        if ray.is_initialized():
            with open(f"{HydraConfig.get().runtime.output_dir}/ray_cluster.txt", "w") as out:
                out.write(ray.get_runtime_context().gcs_address)
    if cfg.outcome == "raise":
        raise RuntimeError("the job raised")
    if cfg.outcome == "none":  # as this project's failed jobs
        return None
    return [float(cfg.n), float(cfg.lr)] if cfg.objectives == 2 else float(cfg.n)

main()
"""

SPACE = """
def extra(config, trial):
    if trial.params["kind"] == "b":
        trial.suggest_categorical("extra", ["x", "y"])
"""

# A real Hydra callback: what Hydra's end-of-sweep callbacks saw of how the sweep ended.
CALLBACKS = """
import json
from pathlib import Path

from hydra.experimental.callback import Callback

class EndOfSweep(Callback):
    def on_multirun_end(self, config, **kwargs):
        folder = Path(config.hydra.sweep.dir)
        end = folder / "sweep_end.json"
        record = json.loads(end.read_text()) if end.exists() else None
        (folder / "end_of_sweep.json").write_text(json.dumps({"sweep_end": record}))
"""

CONFIG = {
    "defaults": [{"override hydra/sweeper": "optuna"}, "_self_"],
    "outcome": "ok",
    "objectives": 2,
    "sleep": 0.0,
    "kind": "a",
    "n": 0,
    "lr": 0.0,
    "extra": "none",
    "model": {"path": "m1"},  # what a study records besides its space
    "hydra": {
        "mode": "MULTIRUN",
        "sweep": {"dir": "search", "subdir": "${hydra.job.num}"},
        "callbacks": {"end_of_sweep": {"_target_": "callbacks.EndOfSweep"}},
        "sweeper": {
            "direction": ["maximize", "minimize"],
            "study_name": "toy",
            "storage": "sqlite:///optuna.db",
            "n_trials": 5,
            "n_jobs": 2,
            "max_failure_rate": 1.0,
            "heartbeat_interval": 1,
            "grace_period": 3,
            "sampler": {"seed": 0},
            "custom_search_space": "space.extra",
            "params": {"kind": "choice(a, b)", "n": "range(1, 4)", "lr": "tag(log, interval(0.001, 0.1))"},
        },
    },
}


def write_app(folder: Path, space: str = SPACE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "app.py").exists():
        (folder / "app.py").write_text(APP)
        (folder / "space.py").write_text(space)
        (folder / "callbacks.py").write_text(CALLBACKS)
        (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))


def app_env(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(PROJECT_ROOT)])}
    env.pop("RAY_ADDRESS", None)  # never another engineer's cluster
    return {**env, **(extra or {})}


def run_app(
    folder: Path, *overrides: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python app.py OVERRIDES` in `folder`, as a user runs a Hydra app."""
    write_app(folder)
    return subprocess.run(
        [sys.executable, "app.py", *overrides],
        cwd=folder,
        env=app_env(folder, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_app(folder: Path, *overrides: str, log_name: str) -> subprocess.Popen:
    """The same, started in a session of its own (to run beside another, or to be killed)."""
    write_app(folder)
    with (folder / log_name).open("w") as log:
        return subprocess.Popen(
            [sys.executable, "app.py", *overrides],
            cwd=folder,
            env=app_env(folder),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, timeout: int = 300) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        raise


def load_study(folder: Path, storage: str | None = None) -> Any:
    return optuna.load_study(study_name="toy", storage=storage or f"sqlite:///{folder}/optuna.db")


def job_overrides(folder: Path, job: int) -> list[str]:
    return yaml.safe_load((folder / "search" / str(job) / ".hydra" / "overrides.yaml").read_text())


def job_folders(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in (folder / "search").iterdir() if p.name.isdigit())


def states(study: Any) -> list[str]:
    return [t.state.name for t in study.trials]


def last_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("launcher", ["basic", "joblib", pytest.param("ray", marks=pytest.mark.slow)])
def test_each_trial_is_a_job_of_the_configured_launcher(
    tmp_path: Path, launcher: str, request: pytest.FixtureRequest
) -> None:
    options = [f"hydra/launcher={launcher}"]
    env = None
    if launcher == "ray":  # the project's launcher config, on a Ray cluster of the search's own
        # Ray looks for a running cluster under RAY_TMPDIR: a root of the search's own.
        env = {"RAY_TMPDIR": str(request.getfixturevalue("ray_tmp"))}
        options += [f"hydra.searchpath=[file://{PROJECT_ROOT}/conf]", "hydra.launcher.ray.init.num_cpus=2"]
    result = run_app(tmp_path, *options, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE"] * 5
    for trial in study.trials:
        assert trial.distributions["kind"] == optuna.distributions.CategoricalDistribution(["a", "b"])
        assert trial.distributions["n"] == optuna.distributions.IntDistribution(1, 3)  # range(): 4 is out
        assert trial.distributions["lr"] == optuna.distributions.FloatDistribution(0.001, 0.1, log=True)
        assert ("extra" in trial.params) == (trial.params["kind"] == "b")  # custom_search_space
        assert trial.values == [trial.params["n"], trial.params["lr"]]  # what the job returned
        searched = [f"{key}={value}" for key, value in trial.params.items()]
        assert job_overrides(tmp_path, trial.number) == searched  # job folder N is trial N
    # As Hydra's Optuna sweeper writes it: the Pareto-optimal trials of two objectives.
    results = yaml.safe_load((tmp_path / "search" / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    expected = [{"params": t.params, "values": t.values} for t in study.best_trials]
    assert results["solutions"] == expected


def test_failed_jobs_count_and_too_many_stop_the_search_which_ends_as_a_sweep(tmp_path: Path) -> None:
    result = run_app(tmp_path / "none", "outcome=none", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("Failed experiment") == 3
    assert states(load_study(tmp_path / "none")) == ["FAIL"] * 3  # failed jobs use places of n_trials

    folder = tmp_path / "raise"
    stopping = ["outcome=raise", "hydra.sweeper.n_trials=9", "hydra.sweeper.max_failure_rate=0.5"]
    result = run_app(folder, *stopping)
    assert result.returncode == 2
    message = "2 of 2 trials failed, more than hydra.sweeper.max_failure_rate=0.5: the search stops"
    assert last_error(result) == f"error: {message}"
    assert "the job raised" in result.stdout + result.stderr
    assert states(load_study(folder)) == ["FAIL"] * 2  # one batch, not four; none RUNNING
    # The sweep ended as a sweep ends: sweep_end.json says FAILED and why, and Hydra's
    # end-of-sweep callbacks ran after it was written (the project's: summary, parent run FAILED).
    assert json.loads((folder / "search" / "sweep_end.json").read_text()) == {
        "status": "FAILED",
        "reason": message,
    }
    end = json.loads((folder / "search" / "end_of_sweep.json").read_text())
    assert end["sweep_end"]["status"] == "FAILED"


def test_a_rerun_resumes_the_study_and_a_changed_range_goes_on(tmp_path: Path) -> None:
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    result = run_app(tmp_path, "hydra.sweeper.n_trials=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert states(load_study(tmp_path)) == ["COMPLETE"] * 4
    assert job_folders(tmp_path) == [0, 1, 2, 3]
    assert run_app(tmp_path, "hydra.sweeper.n_trials=4").returncode == 0  # complete: nothing to run
    assert len(load_study(tmp_path).trials) == 4
    # A narrower interval is one Optuna takes within a study: the search goes on, and says so.
    result = run_app(tmp_path, "hydra.sweeper.n_trials=5", "lr=tag(log, interval(0.01, 0.1))")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "lr: tag(log, interval(0.001, 0.1)) -> tag(log, interval(0.01, 0.1))" in result.stdout + result.stderr
    )
    assert states(load_study(tmp_path)) == ["COMPLETE"] * 5
    assert load_study(tmp_path).trials[4].params["lr"] >= 0.01


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        # The docs' own example: Optuna cannot narrow a choice within a study.
        ("kind=choice(a)", "kind: the study searches choice(a, b), this search choice(a)"),
        ("model.path=m2", "model.path: the study has m1, this search m2"),
        ("outcome=none", "fixed.outcome: the study has nothing, this search none"),
        ("+width=range(1,3)", "+width is searched here (range(1, 3, 1)), not in the study"),
        (
            "~hydra.sweeper.params.lr",
            "the study searches lr (tag(log, interval(0.001, 0.1))), this search does not",
        ),
    ],
)
def test_a_rerun_that_searches_something_else_is_one_line_and_starts_nothing(
    tmp_path: Path, change: str, difference: str
) -> None:
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    before = (tmp_path / "optuna.db").read_bytes()
    result = run_app(tmp_path, "hydra.sweeper.n_trials=4", change)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert last_error(result) == (
        f"error: study toy in sqlite:///optuna.db differs from this search: {difference}; "
        "rerun it as it was, or start a new study: hydra.sweeper.study_name=NEW_NAME"
    )
    # Refused before anything of the search started: no trial, no job folder, no end of sweep.
    assert states(load_study(tmp_path)) == ["COMPLETE"] * 2
    assert job_folders(tmp_path) == [0, 1]
    assert (tmp_path / "optuna.db").read_bytes() == before


def test_other_directions_are_one_line(tmp_path: Path) -> None:
    assert run_app(tmp_path, "hydra.sweeper.n_trials=1").returncode == 0
    result = run_app(tmp_path, "hydra.sweeper.direction=[minimize,minimize]")
    assert result.returncode == 2
    assert last_error(result) == (
        "error: study toy in sqlite:///optuna.db optimises ['maximize', 'minimize'], not "
        "['minimize', 'minimize']: a new search wants a new hydra.sweeper.study_name"
    )


def test_a_direction_optuna_does_not_take_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    result = run_app(tmp_path, "hydra.sweeper.direction=[max,minimize]")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "error: hydra.sweeper.direction=max: each direction is minimize or maximize"
    ]
    assert not (tmp_path / "search").exists() and not (tmp_path / "optuna.db").exists()


def test_a_custom_search_space_that_changed_is_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    write_app(
        tmp_path, space="def extra(config, trial):\n    trial.suggest_categorical('extra', ['x', 'y'])\n"
    )
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    (tmp_path / "space.py").write_text(
        "def extra(config, trial):\n    trial.suggest_categorical('extra', ['x'])\n"
    )
    result = run_app(tmp_path, "hydra.sweeper.n_trials=4")
    assert result.returncode == 2
    error = last_error(result)
    assert error.startswith(
        "error: study toy: trial 2: CategoricalDistribution does not support dynamic value"
    )
    assert error.endswith("hydra.sweeper.study_name=NEW_NAME")
    assert states(load_study(tmp_path)) == ["COMPLETE", "COMPLETE", "FAIL"]  # nothing left RUNNING
    assert job_folders(tmp_path) == [0, 1]


def test_a_search_killed_mid_trial_is_found_by_its_heartbeat_and_its_trial_runs_again(tmp_path: Path) -> None:
    command = ["sleep=2", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1"]
    killed = start_app(tmp_path, *command, log_name="killed.log")
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "search" / "0" / ".hydra" / "overrides.yaml").exists():
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "trial 0 never started"
            time.sleep(0.2)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # no chance to say anything: as a machine that dies
        killed.wait(timeout=30)
    assert states(load_study(tmp_path)) == ["RUNNING"]

    result = run_app(tmp_path, *command)  # the same command, once the heartbeat is stale
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 3
    assert study.trials[0].state.name == "FAIL"
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    assert retried[0].params == study.trials[0].params  # the same trial, run again
    assert retried[0].user_attrs["search:folder"] == 0  # in its folder, as any sweep reruns a job
    # The dead trial's folder said so (the toy job writes no status of its own when it reruns).
    status = json.loads((tmp_path / "search" / "0" / "job_status.json").read_text())
    assert status["status"] == "FAILED" and "no heartbeat" in status["error"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert job_folders(tmp_path) == sorted(t.user_attrs["search:folder"] for t in complete)


def test_an_interrupted_search_closes_its_trials_and_the_same_command_resumes(tmp_path: Path) -> None:
    command = ["sleep=3", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1"]
    search = start_app(tmp_path, *command, log_name="interrupted.log")
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "search" / "1" / ".hydra" / "overrides.yaml").exists():  # trial 1 runs
            assert search.poll() is None, (tmp_path / "interrupted.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "trial 1 never started"
            time.sleep(0.2)
        os.killpg(search.pid, signal.SIGINT)  # Ctrl-C
        search.wait(timeout=60)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "FAIL", "WAITING"]  # nothing RUNNING; a copy of trial 1 waits
    assert study.trials[2].system_attrs["fixed_params"] == study.trials[1].params

    result = run_app(tmp_path, *command)  # the same command
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # the copy ran first
    assert study.trials[2].user_attrs["search:interrupted"] == 1
    assert study.trials[2].params == study.trials[1].params
    assert study.trials[2].user_attrs["search:folder"] == 1  # in the interrupted trial's folder
    assert job_folders(tmp_path) == [0, 1, 3]


def shared_search(folder: Path, storage: str) -> None:
    """Two searches started together on one study and one sweep folder, as two terminals (or
    machines on a shared folder) would: they share its trials and leave each other's alone."""
    command = [
        "sleep=2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.custom_search_space=null",
    ]
    first = start_app(folder, *command, log_name="first.log")
    second = start_app(folder, *command, log_name="second.log")
    codes = [finish(first), finish(second)]
    assert codes == [0, 0], (folder / "first.log").read_text()[-3000:] + (folder / "second.log").read_text()[
        -3000:
    ]
    study = load_study(folder, storage)
    # Both searches may ask for the last place at once: the later number is told FAIL unrun.
    ran = [t for t in study.trials if "search:surplus" not in t.user_attrs]
    assert {t.state.name for t in study.trials if t not in ran} <= {"FAIL"}
    assert [t.state.name for t in ran] == ["COMPLETE"] * 6  # none FAILED by the other search, none RUNNING
    owners = {t.user_attrs["search:owner"] for t in ran}
    assert len(owners) == 2, owners  # both searches ran trials of the study
    assert job_folders(folder) == [t.number for t in ran] == list(range(6))
    for trial in ran:  # job folder N is trial N: never written by another trial
        searched = [f"{k}={v}" for k, v in trial.params.items()]
        assert job_overrides(folder, trial.number) == [*searched, "sleep=2"]
    results = yaml.safe_load((folder / "search" / "optimization_results.yaml").read_text())
    assert len(results["solutions"]) == len(study.best_trials)


def test_two_searches_share_a_study_on_sqlite(tmp_path: Path) -> None:
    shared_search(tmp_path, f"sqlite:///{tmp_path}/shared.db")


@pytest.mark.slow
def test_two_searches_share_a_study_on_postgresql(tmp_path: Path) -> None:
    from tests.helpers.postgres import running_postgres

    with running_postgres() as server:
        shared_search(tmp_path, server.create_database("optuna"))


@pytest.mark.slow
def test_two_project_searches_share_a_study_a_sweep_folder_and_one_parent_run(
    tmp_path: Path, tiny_model: Path, cache_dir: Path
) -> None:
    """run.py twice at once, as two terminals: the project's jobs, one study, one MLflow parent run."""
    from tests.conftest import runs_by_kind

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "run.py"),
        "experiment=optuna_search",
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri={tracking}",
        "mlflow.experiment_name=shared",
        "hydra.sweeper.n_trials=4",
        # The command line wins over the preset's params: a small, quick space.
        "engine=onnxruntime",
        "precision=choice(fp32, int8)",
        "batch_size=choice(32, 64)",
        "max_seq_length=64",
        "device.num_threads=1",
    ]
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}
    searches = []
    for name in ("first", "second"):
        with (tmp_path / f"{name}.log").open("w") as log:
            searches.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    codes = [finish(search, timeout=900) for search in searches]
    logs = "".join((tmp_path / f"{name}.log").read_text()[-3000:] for name in ("first", "second"))
    assert codes == [0, 0], logs
    study = optuna.load_study(study_name="ernie-onnx-search", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert states(study) == ["COMPLETE"] * 4
    assert len({t.user_attrs["search:owner"] for t in study.trials}) == 2, logs
    search = tmp_path / "outputs" / "search" / "ernie-onnx-search"
    assert sorted(int(p.name) for p in search.iterdir() if p.name.isdigit()) == [0, 1, 2, 3]
    parents, children = runs_by_kind(tracking, "shared")
    assert len(parents) == 1 and len(children) == 4  # one parent run holds every trial
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    assert parents[0].info.status == "FINISHED"


def test_a_project_search_stopped_by_failures_writes_its_summary_and_fails_its_parent_run(
    tmp_path: Path, tiny_model: Path, cache_dir: Path
) -> None:
    """The preset stops at a failed trial: the summary is written, the parent run ends FAILED,
    one line, exit 2, and no trial is left RUNNING."""
    from tests.conftest import dataset_with_a_bad_test_split, runs_by_kind

    data = dataset_with_a_bad_test_split(tmp_path / "data")
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "run.py"),
            "experiment=optuna_search",
            f"model.path_prefix={tiny_model / 'export' / 'float32'}",
            f"model.name_or_path={tiny_model / 'tokenizer'}",
            f"dataset.dir={data}",
            "dataset.eval_split=test",  # its line 2 has a label the model does not know: every job fails
            f"mlflow.tracking_uri={tracking}",
            "mlflow.experiment_name=stopped",
            "hydra.sweeper.params.engine='choice(onnxruntime)'",
        ],
        cwd=tmp_path,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    message = "1 of 1 trials failed, more than hydra.sweeper.max_failure_rate=0.0: the search stops"
    assert last_error(result) == f"error: {message}"
    study = optuna.load_study(study_name="ernie-onnx-search", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert states(study) == ["FAIL"]
    search = tmp_path / "outputs" / "search" / "ernie-onnx-search"
    assert json.loads((search / "sweep_end.json").read_text()) == {"status": "FAILED", "reason": message}
    rows = (search / "summary.csv").read_text().splitlines()
    assert len(rows) == 2 and ",FAILED," in rows[1]
    (parent,), children = runs_by_kind(tracking, "stopped")
    assert parent.info.status == "FAILED"
    assert [c.info.status for c in children] == ["FAILED"]


@pytest.mark.slow
def test_a_project_search_stopped_by_sigterm_ends_as_any_sweep_and_the_same_command_resumes(
    tmp_path: Path, tiny_model: Path, cache_dir: Path
) -> None:
    """SIGTERM: exit 143, the interrupted trial's folder and the parent run KILLED, nothing RUNNING in
    the study; the same command reruns the trial in its folder and finishes the study."""
    pytest.importorskip("pipeline.core.interrupts")  # the interrupts of every sweep (issue 32)
    from tests.conftest import runs_by_kind

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "run.py"),
        "experiment=optuna_search",
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri={tracking}",
        "mlflow.experiment_name=interrupted",
        "hydra.sweeper.n_trials=3",
        "engine=onnxruntime",
    ]
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}
    search = tmp_path / "outputs" / "search" / "ernie-onnx-search"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (search / "1" / ".hydra" / "overrides.yaml").exists():  # trial 1 runs
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "trial 1 never started"
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 143, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    study = optuna.load_study(study_name="ernie-onnx-search", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert states(study) == ["COMPLETE", "FAIL", "WAITING"]  # nothing RUNNING
    assert json.loads((search / "1" / "job_status.json").read_text())["status"] == "KILLED"
    (parent,), _ = runs_by_kind(tracking, "interrupted")
    assert parent.info.status == "KILLED"

    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = optuna.load_study(study_name="ernie-onnx-search", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert study.trials[2].user_attrs["search:folder"] == 1  # the copy ran in the interrupted folder
    assert sorted(int(p.name) for p in search.iterdir() if p.name.isdigit()) == [0, 1, 3]
    assert json.loads((search / "1" / "job_status.json").read_text())["status"] == "FINISHED"
    (parent,), children = runs_by_kind(tracking, "interrupted")
    assert parent.info.status == "FINISHED" and {c.info.status for c in children} == {"FINISHED"}


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "nsgaii", "qmc"])
def test_hydras_sampler_names(tmp_path: Path, sampler: str) -> None:
    # CMA-ES optimises one objective (and says so in one line otherwise).
    single = ["objectives=1", "hydra.sweeper.direction=minimize"] if sampler == "cmaes" else []
    options = [f"hydra/sweeper/sampler={sampler}", "hydra.sweeper.sampler.seed=7", "hydra.sweeper.n_trials=3"]
    result = run_app(tmp_path, *options, *single)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {"tpe": "TPE", "random": "Random", "cmaes": "CmaEs", "nsgaii": "NSGAII", "qmc": "QMC"}
    assert f"sampler {names[sampler]}Sampler" in result.stdout + result.stderr
    assert states(load_study(tmp_path)) == ["COMPLETE"] * 3
    if sampler == "cmaes":
        result = run_app(tmp_path / "two", *options)
        assert result.returncode == 2
        assert last_error(result) == (
            "error: CmaEsSampler (hydra.sweeper.sampler) optimises one objective, and this search has 2 "
            "(hydra.sweeper.direction): choose tpe, nsgaii, random, grid, qmc or gp"
        )


def test_the_grid_sampler_tries_every_point_once_and_wants_discrete_values(tmp_path: Path) -> None:
    grid = ["hydra/sweeper/sampler=grid", "lr=choice(0.01, 0.1)", "hydra.sweeper.n_trials=50"]
    result = run_app(tmp_path / "grid", *grid)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(tmp_path / "grid")
    points = [(t.params["kind"], t.params["n"], t.params["lr"], t.params.get("extra")) for t in study.trials]
    # kind=a: 3 n x 2 lr; kind=b: 3 n x 2 lr x 2 extra (custom_search_space): 18 points, each once.
    assert len(points) == len(set(points)) == 18
    assert states(study) == ["COMPLETE"] * 18

    result = run_app(tmp_path / "interval", "hydra/sweeper/sampler=grid")
    assert result.returncode == 2
    assert last_error(result) == (
        "error: hydra/sweeper/sampler=grid tries every value of each parameter, and lr is "
        "tag(log, interval(0.001, 0.1)): give it choice(...) or range(...)"
    )
    assert (
        not (tmp_path / "interval" / "search").exists() and not (tmp_path / "interval" / "optuna.db").exists()
    )


def test_a_sampler_whose_package_is_missing_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    write_app(tmp_path)
    env = app_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, "app.py", "hydra/sweeper/sampler=gp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "error: GPSampler (hydra.sweeper.sampler) needs the torch package: "
        "pip install torch (the CPU build is enough)"
    ]
    assert not (tmp_path / "search").exists() and not (tmp_path / "optuna.db").exists()


# app.py in a Python that cannot import torch (whether or not this machine has it).
WITHOUT_TORCH = """
import importlib.machinery, runpy, sys

class PathFinderWithout(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "torch":
            return None
        return super().find_spec(name, path, target)

sys.meta_path = [PathFinderWithout if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_an_in_memory_study_never_writes_over_an_earlier_search(tmp_path: Path) -> None:
    assert run_app(tmp_path, "hydra.sweeper.storage=null", "hydra.sweeper.n_trials=1").returncode == 0
    result = run_app(tmp_path, "hydra.sweeper.storage=null", "hydra.sweeper.n_trials=1")
    assert result.returncode == 2
    assert last_error(result).startswith(
        f"error: {tmp_path / 'search'} holds the job folders of an earlier search"
    )


def test_the_sweeper_plugin_loads_without_optuna(tmp_path: Path) -> None:
    """Hydra imports every plugin module on every run: ours must not need Optuna to be imported."""
    result = run_without("optuna", tmp_path, "--hydra-help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ernie_optuna_sweeper" not in result.stderr
    assert "hydra/sweeper: basic, optuna" in result.stdout
    assert "hydra/sweeper/sampler: cmaes, gp, grid, nsgaii, qmc, random, tpe" in result.stdout


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


def _damaged(folder: Path) -> tuple[str, Any]:
    (folder / "optuna.db").write_bytes(b"not a database, " * 400)
    return "sqlite:///optuna.db", None


def _read_only(folder: Path) -> tuple[str, Any]:
    # Tests run as root, whom file modes do not stop: SQLite's own read-only mode.
    return '"sqlite:///file:optuna.db?mode=ro&uri=true"', None


def _locked(folder: Path) -> tuple[str, Any]:
    import sqlite3

    holder = sqlite3.connect(folder / "optuna.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write
    return "sqlite:///optuna.db", holder


def _unreachable(folder: Path) -> tuple[str, Any]:
    from tests.conftest import free_port

    return f"postgresql://search:secret@127.0.0.1:{free_port()}/studies", None


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (_damaged, "cannot be opened: (sqlite3.DatabaseError) file is not a database"),
        (_read_only, "failed: (sqlite3.OperationalError) attempt to write a readonly database"),
        (_locked, "cannot be opened: (sqlite3.OperationalError) database is locked (another process has"),
        (_unreachable, "cannot be opened: (psycopg.OperationalError) connection failed"),
    ],
    ids=["damaged", "read-only", "locked", "unreachable"],
)
def test_a_study_storage_that_fails_is_one_line_and_the_next_correct_run_works(
    tmp_path: Path, fault: Any, expected: str
) -> None:
    """A storage that is damaged, read-only, locked by another process or unreachable: one line that
    names it (its password hidden) and exit 2. One that cannot be opened is found before anything of
    the search starts (the sweep's callbacks included); one that fails later (read-only: the first
    write) ends the sweep FAILED through Hydra's end-of-sweep callbacks. The search runs once the
    storage works again."""
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    if fault is _damaged:
        (tmp_path / "optuna.db").rename(tmp_path / "optuna.db.kept")
    storage, holder = fault(tmp_path)
    try:
        result = run_app(tmp_path, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=4")
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    assert result.returncode == 2, result.stderr[-3000:]
    error = last_error(result)
    assert error.startswith("error: the Optuna storage ") and expected in error, error
    assert "secret" not in result.stderr
    ended = json.loads((tmp_path / "search" / "end_of_sweep.json").read_text())["sweep_end"]
    if "cannot be opened" in expected:
        assert ended is None  # what the first search's end saw: this one never started
    else:
        assert ended["status"] == "FAILED" and expected in ended["reason"]
    if fault is _damaged:
        (tmp_path / "optuna.db.kept").replace(tmp_path / "optuna.db")
    again = run_app(tmp_path, "hydra.sweeper.n_trials=4")
    assert again.returncode == 0, again.stderr[-3000:]
    assert states(load_study(tmp_path)) == ["COMPLETE"] * 4
    assert job_folders(tmp_path) == [0, 1, 2, 3]
