"""Hydra callback that makes a multirun one MLflow parent run with a summary of its jobs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.cache import atomic_write_text
from pipeline.config import MlflowConfig
from pipeline.errors import TrackingError
from pipeline.tracking.mlflow_runs import attach_run, environment_tags, find_run_by_tag, start_run
from pipeline.tracking.reports import sweep_rows, write_sweep_summary

log = logging.getLogger(__name__)
# The parent run's tag that jobs find it by: through the tracking store, so that a job on
# another machine finds it too.
SWEEP_DIR_TAG = "sweep_dir"


def sweep_folder(sweep_dir: str | Path) -> Path:
    """The sweep folder as every job names it (the Ray launcher gives jobs this absolute path)."""
    return Path(str(sweep_dir)).absolute()


def parent_run_id(cfg: MlflowConfig, sweep_dir: str | Path) -> str | None:
    """The sweep's parent run, for a job of that sweep to attach to."""
    if not cfg.enabled:
        return None
    return find_run_by_tag(cfg, SWEEP_DIR_TAG, str(sweep_folder(sweep_dir)))


def _mlflow_config(config: DictConfig) -> MlflowConfig:
    return MlflowConfig(**OmegaConf.to_container(config.mlflow, resolve=True))


class SweepTracking(Callback):
    # Launchers such as joblib pickle callbacks into their workers: keep only plain data here.
    def __init__(self) -> None:
        self._run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mlflow_config = _mlflow_config(config)
        if not mlflow_config.enabled:
            return
        try:
            self._start_parent(mlflow_config, config)
        except TrackingError as exc:
            print(
                f"warning: {exc} -- the sweep runs untracked; its folders keep every result", file=sys.stderr
            )

    def _start_parent(self, mlflow_config: MlflowConfig, config: DictConfig) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        swept = list(config.hydra.overrides.task)
        tags = {
            **environment_tags(),
            SWEEP_DIR_TAG: str(sweep_dir),
            "sweep_overrides": " ".join(swept),
        }
        run = start_run(mlflow_config, f"sweep {sweep_dir.name}", tags)
        self._run_id = run.run_id
        run.log_params({"sweep.overrides": " ".join(swept), "sweep.dir": str(sweep_dir)})
        base = OmegaConf.to_container(config, resolve=False)
        base.pop("hydra", None)
        base_file = sweep_dir / "base_config.yaml"
        atomic_write_text(base_file, OmegaConf.to_yaml(base))
        run.log_artifact(base_file)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        written = write_sweep_summary(sweep_dir)
        rows = sweep_rows(sweep_dir)
        failed = [r for r in rows if r["status"] == "FAILED"]
        skipped = [r for r in rows if r["status"] == "SKIPPED"]
        print(
            f"sweep {sweep_dir}: {len(rows) - len(failed) - len(skipped)} finished, "
            f"{len(failed)} failed, {len(skipped)} skipped; summary in {sweep_dir / 'summary.md'}"
        )
        for row in failed:
            print(f"  FAILED {row['overrides']}: {row['error']}")
        if self._run_id is None:
            return
        try:
            run = attach_run(_mlflow_config(config), self._run_id)
            for path in written:
                run.log_artifact(path)
            run.log_metrics({"jobs": len(rows), "jobs_failed": len(failed), "jobs_skipped": len(skipped)})
            run.end("FINISHED")
        except TrackingError as exc:
            print(f"warning: {exc} -- the summary is in {sweep_dir}", file=sys.stderr)
