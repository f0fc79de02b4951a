"""A sweep composes each job's config once: the launcher gets the configs that the sweeper composed
to check them or to find their folders (hydra_plugins.ernie_sweep_job._composed), with real Hydra
composition and Hydra's basic launcher running the jobs in this process."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig

import pipeline.options.config  # noqa: F401  (registers the config schema)
from hydra_plugins.ernie_sweep_job._composed import KEEP_AT_MOST, ComposedOnce
from pipeline import PROJECT_ROOT


class CountingLoader(ComposedOnce):
    """Hydra's config loader, counting the job configs composed (it keeps none itself)."""

    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self.composed: list[tuple[str, ...]] = []

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self.composed.append(tuple(sweep_overrides))
        return super().load_sweep_config(master_config, sweep_overrides)


def _sweep(sweep_dir: Path, arguments: list[str]) -> tuple[list[tuple[str, ...]], list[tuple[str, int]]]:
    """Runs the sweep of `arguments` with trivial jobs; returns the configs composed and, for each
    job, its precision and batch size as its config said."""
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        "config",
        [f"hydra.sweep.dir={sweep_dir}", "hydra/job_logging=none", "hydra/hydra_logging=none"],
        run_mode=RunMode.MULTIRUN,
    )
    HydraConfig.instance().set_config(master)
    counting = CountingLoader(loader)
    jobs: list[tuple[str, int]] = []

    def task(cfg: DictConfig) -> None:
        jobs.append((cfg.precision.name, cfg.batch_size))

    # Hydra's plugin scan runs the plugins' modules once more: the sweeper's class is taken after it.
    Plugins.instance()
    from hydra_plugins.ernie_basic_sweeper.basic_sweeper import ResumableSweeper

    sweeper = ResumableSweeper(max_batch_size=None)
    sweeper.setup(
        hydra_context=HydraContext(config_loader=counting, callbacks=Callbacks()),
        task_function=task,
        config=master,
    )
    sweeper.sweep(arguments)
    return counting.composed, jobs


def test_each_job_config_is_composed_once_in_a_new_sweep_and_in_its_resume(tmp_path: Path) -> None:
    grid = ["precision=fp32,int8", "batch_size=8,32"]
    expected_jobs = [("fp32", 8), ("fp32", 32), ("int8", 8), ("int8", 32)]
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        # New: the sweeper checks two jobs that hold every value between them; the launcher takes
        # their configs and composes the other two (Hydra's own sweeper and launcher: 4 + 4).
        composed, jobs = _sweep(tmp_path / "sweep", grid)
        assert jobs == expected_jobs
        assert sorted(composed) == sorted(
            [("precision=fp32", "batch_size=8"), ("precision=fp32", "batch_size=32"),
             ("precision=int8", "batch_size=8"), ("precision=int8", "batch_size=32")]
        )  # fmt: skip
        # The same command again: no job wrote a status that says FINISHED, so every job runs again;
        # the sweeper composes each one to find its folder, and the launcher composes none.
        composed, jobs = _sweep(tmp_path / "sweep", grid)
        assert jobs == expected_jobs
        assert len(composed) == 4 and len(set(composed)) == 4


def test_a_kept_config_is_handed_over_once_and_never_pickled(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [], run_mode=RunMode.MULTIRUN)
        configs = ComposedOnce(loader)
        kept = loader.load_sweep_config(master, ["precision=int8"])
        configs.keep(master, ["precision=int8"], kept)
        assert pickle.loads(pickle.dumps(configs))._kept == {}  # a worker's task carries none
        assert configs.load_sweep_config(master, ["precision=int8"]) is kept
        again = configs.load_sweep_config(master, ["precision=int8"])
        assert again is not kept and again.precision.name == "int8"
        assert configs.load_sweep_config(master, ["precision=fp32"]).precision.name == "fp32"
        # A resume of hundreds of pending jobs keeps the first KEEP_AT_MOST configs, not all of them.
        for size in range(KEEP_AT_MOST + 5):
            configs.keep(master, [f"batch_size={size + 1}"], kept)
        assert configs.load_sweep_config(master, [f"batch_size={KEEP_AT_MOST}"]) is kept
        assert configs.load_sweep_config(master, [f"batch_size={KEEP_AT_MOST + 1}"]) is not kept
