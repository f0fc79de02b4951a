"""Every `experiment=` preset composes, every job of its sweep composes, and a preset runs end to end."""

from __future__ import annotations

import csv
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import mlflow
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipeline import PROJECT_ROOT
from pipeline.core.errors import UnsupportedCombination
from pipeline.options.config import compose_config
from pipeline.options.precisions import PRECISIONS
from tests.conftest import RunCli, runs_by_kind

PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


def sweep_jobs(preset: str) -> list[list[str]]:
    """The override list of each job the preset's sweep would launch: for Hydra's basic sweeper the
    whole product; for an Optuna search every combination of config groups, each other value once."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    search = any(str(spec).startswith("choice(") for spec in params.values())

    def values(text: str) -> list[str]:  # "a,b" (basic sweeper) or "choice(a, b)" (Optuna)
        text = text.removeprefix("choice(").removesuffix(")")
        return [value.strip() for value in text.split(",")]

    axes = {key: [f"{key}={value}" for value in values(str(spec))] for key, spec in params.items()}
    if not search:
        return [list(job) for job in itertools.product(*axes.values())]
    groups = [axis for key, axis in axes.items() if (PROJECT_ROOT / "conf" / key).is_dir()]
    scalars = [axis for key, axis in axes.items() if not (PROJECT_ROOT / "conf" / key).is_dir()]
    combinations = list(itertools.product(*groups))
    rounds = max(len(combinations), *(len(axis) for axis in scalars))
    return [
        [*combinations[i % len(combinations)], *(axis[i % len(axis)] for axis in scalars)]
        for i in range(rounds)
    ]


def test_presets_exist() -> None:
    assert {"latency_grid", "seed_table"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_composes(preset: str) -> None:
    jobs = sweep_jobs(preset)
    assert jobs, f"experiment={preset} sweeps nothing"
    for job in jobs:
        try:
            config = compose_config(f"experiment={preset}", *job)
        except UnsupportedCombination:  # e.g. engine=openvino precision=int8: SKIPPED in the sweep
            continue
        composed = OmegaConf.structured(config)
        for override in job:
            key, value = override.split("=", 1)
            if key in ("device", "precision", "engine"):  # a group option: its class's name
                key += ".name"
            if key == "+seed_row":  # a row selects a device and a precision: gpu_fp16
                key, value = "device.name,precision.name", value.replace("_", ",")
            for k, v in zip(key.split(","), value.split(","), strict=True):
                assert str(OmegaConf.select(composed, k)) == v, (preset, job, k)


SEARCHED_PRECISIONS = [name for name in PRECISIONS.names() if PRECISIONS.get(name).search_options]


@pytest.mark.parametrize("precision", SEARCHED_PRECISIONS)
def test_each_trial_searches_the_options_of_its_precision(precision: str) -> None:
    optuna = pytest.importorskip("optuna")
    from pipeline.options.search_space import precision_options

    options = PRECISIONS.get(precision).search_options
    trial = optuna.create_study().ask()
    trial.suggest_categorical("precision", [precision])
    precision_options(OmegaConf.create({"precision": {"name": "fp32"}}), trial)
    assert set(trial.params) == {"precision"} | {f"precision.{key}" for key in options}
    for values in itertools.product(*options.values()):  # every combination composes and is used
        chosen = [f"precision.{key}={value}" for key, value in zip(options, values, strict=True)]
        config = compose_config("experiment=optuna_search", f"precision={precision}", *chosen)
        composed = OmegaConf.structured(config.precision)
        assert [OmegaConf.select(composed, key) for key in options] == list(values)


def test_fp32_trials_search_no_precision_options() -> None:
    optuna = pytest.importorskip("optuna")
    from pipeline.options.search_space import precision_options

    trial = optuna.create_study().ask()
    trial.suggest_categorical("precision", ["fp32"])
    precision_options(OmegaConf.create({"precision": {"name": "int8"}}), trial)
    assert set(trial.params) == {"precision"}


@pytest.mark.slow
def test_latency_grid_runs_one_cell(run_cli: RunCli, user_overrides: list[str], tmp_path: Path) -> None:
    result = run_cli(
        "experiment=latency_grid",
        *user_overrides,
        "hydra.sweeper.params.precision=int8",
        "hydra.sweeper.params.batch_size=8",
        "hydra.sweeper.params.max_seq_length=64",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert [(r["overrides"], r["status"]) for r in rows] == [
        ("precision=int8,batch_size=8,max_seq_length=64", "FINISHED")
    ]
    assert not (tmp_path / "sweep" / "0" / "predictions.jsonl").exists()  # the preset turns predictions off


def test_the_presets_search_draws_only_what_each_engine_runs() -> None:
    """The search space takes each engine's precisions from its class: no trial is SKIPPED."""
    from pipeline.options.engines import ENGINES
    from pipeline.options.search_space import GroupSpace

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=optuna_search"], return_hydra_config=True)
    params = {key: str(spec) for key, spec in cfg.hydra.sweeper.params.items()}
    declared = {
        key: [v.strip() for v in params[key].removeprefix("choice(").removesuffix(")").split(",")]
        for key in ("engine", "precision")
    }
    space = GroupSpace.build(declared, {"device": "cpu"})
    parameters = space.parameters()
    assert parameters["engine"] == declared["engine"]
    for engine in declared["engine"]:
        runs = [p for p in declared["precision"] if p in ENGINES.get(engine).precisions]
        assert parameters[f"precision[engine={engine}]"] == runs
    assert space.left_out == []


def test_a_search_in_which_nothing_can_run_is_one_line_before_anything_starts(
    run_cli: RunCli, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    result = run_cli(
        "experiment=optuna_search",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "hydra.sweeper.params.engine='choice(openvino)'",  # quoted: a value for the sweeper, not a sweep
        "hydra.sweeper.params.precision='choice(int8)'",  # OpenVINO runs no dynamic INT8
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "error: no trial of this search can run: engine=openvino does not run precision=int8 "
        "(it runs fp32, bf16, int8_static)"
    ]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.slow
def test_optuna_search_on_the_demo_model_runs_every_trial_finds_a_pareto_front_and_resumes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The preset's whole space (engines and precisions that do not all pair) on the demo model."""
    optuna = pytest.importorskip("optuna")
    search_overrides = [
        "experiment=optuna_search",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=cli-test",
    ]
    first = run_cli(*search_overrides, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/optuna.db"  # beside the tracking database
    resumed = run_cli(*search_overrides, "hydra.sweeper.n_trials=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = optuna.load_study(study_name="ernie-onnx-search", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    search = tmp_path / "outputs" / "search" / "ernie-onnx-search"
    rows = list(csv.DictReader((search / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [(str(n), "FINISHED") for n in range(4)]  # trial N
    front = list(csv.DictReader((search / "pareto.csv").open()))
    assert 1 <= len(front) <= len(rows)
    for row in front:  # no finished trial beats a front member on both objectives
        assert not any(
            float(o["accuracy"]) > float(row["accuracy"])
            and float(o["latency_ms"]) < float(row["latency_ms"])
            for o in rows
        )
    circles = ET.parse(search / "pareto_front.svg").getroot().iter("{http://www.w3.org/2000/svg}circle")
    assert len(list(circles)) == len(rows) + len(front) + 2  # every job, the front again, the legend
    results = yaml.safe_load((search / "optimization_results.yaml").read_text())
    assert len(results["solutions"]) == len(study.best_trials)
    assert all("precision" in solution["params"] for solution in results["solutions"])  # the job's keys
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = runs_by_kind(f"sqlite:///{tmp_path}/mlflow.db", "cli-test")
    assert len(children) == 4 and parent.info.status == "FINISHED"
    assert {"pareto.md", "pareto.csv", "pareto_front.svg"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


def test_selection_rule_keeps_jobs_at_the_constraint_bound_and_zero() -> None:
    from pipeline.options.config import SelectConfig
    from pipeline.sweep.selection import select_winner

    rows = [
        {
            "job": "0",
            "overrides": "fp32",
            "status": "FINISHED",
            "latency_ms": 2.0,
            "accuracy_delta_vs_fp32": 0.0,
        },
        {
            "job": "1",
            "overrides": "int8",
            "status": "FINISHED",
            "latency_ms": 1.0,
            "accuracy_delta_vs_fp32": -0.02,
        },
        {"job": "2", "overrides": "gpu", "status": "SKIPPED"},
    ]
    selection = select_winner(rows, SelectConfig())
    assert selection.winner is not None and selection.winner["job"] == "0"  # int8 loses 2 points
    assert (selection.eligible, selection.finished) == (1, 2)
    fastest = select_winner(rows, SelectConfig(constraint_metric=None))
    assert fastest.winner is not None and fastest.winner["job"] == "1"
