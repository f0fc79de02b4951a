"""Every `experiment=` preset composes, every job of its sweep composes, and a preset runs end to end."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipeline.config import PROJECT_ROOT, compose_config
from tests.conftest import RunCli

PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


def sweep_jobs(preset: str) -> list[list[str]]:
    """The override list of each job the preset's sweep would launch (Hydra's basic sweeper: a product)."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    axes = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


def test_presets_exist() -> None:
    assert {"latency_grid", "seed_table"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_composes(preset: str) -> None:
    jobs = sweep_jobs(preset)
    assert jobs, f"experiment={preset} sweeps nothing"
    for job in jobs:
        composed = OmegaConf.structured(compose_config(f"experiment={preset}", *job))
        for override in job:
            key, value = override.split("=", 1)
            if key in ("device", "precision", "engine"):  # a group option: its class's name
                key += ".name"
            if key == "+seed_row":  # a row selects a device and a precision: gpu_fp16
                key, value = "device.name,precision.name", value.replace("_", ",")
            for k, v in zip(key.split(","), value.split(","), strict=True):
                assert str(OmegaConf.select(composed, k)) == v, (preset, job, k)


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
        ("precision=int8,batch_size=8,max_seq_length=64,experiment=latency_grid", "FINISHED")
    ]
    assert not (tmp_path / "sweep" / "0" / "predictions.jsonl").exists()  # the preset turns predictions off
