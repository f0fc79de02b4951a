"""Hydra callback that makes a multirun one MLflow parent run with a summary of its jobs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.cache import atomic_write_text
from pipeline.config import MlflowConfig, SelectConfig
from pipeline.errors import TrackingError
from pipeline.serving.registry import CHAMPION, register_run_model
from pipeline.tracking.mlflow_runs import (
    JOB_DIR_TAG,
    TrackedRun,
    attach_run,
    environment_tags,
    find_run_by_tag,
    start_run,
)
from pipeline.tracking.pareto import write_pareto
from pipeline.tracking.reports import sweep_rows, write_sweep_summary
from pipeline.tracking.selection import Selection, select_winner, write_selection

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
    @staticmethod
    def _record_winner(cfg: MlflowConfig, parent: TrackedRun, job_dir: Path, selection: Selection) -> None:
        """Tags the parent and the winner's run; registers the winner's model as `champion`."""
        winner = selection.winner or {}
        run_id = find_run_by_tag(cfg, JOB_DIR_TAG, str(job_dir))
        parent.set_tags({"winner_job": str(winner["job"]), "winner_overrides": str(winner["overrides"])})
        if run_id is None:
            return
        parent.set_tags({"winner_run_id": run_id})
        attach_run(cfg, run_id).set_tags({"sweep_winner": "true"})
        if cfg.registered_model_name:
            name = cfg.registered_model_name
            try:
                version = register_run_model(cfg.tracking_uri, run_id, name)
            except TrackingError as exc:  # e.g. the winner ran on an engine the served model does not use
                print(f"  the winner is not registered: {exc}")
                return
            parent.set_tags({"registered_version": version})
            print(f"  registered the winner as models:/{name}@{CHAMPION} (version {version})")

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
        # One sweep folder, one parent run: a sweep continued in its folder (a resumed Optuna
        # search) adds its jobs to the parent it already has.
        existing = parent_run_id(mlflow_config, sweep_dir)
        if existing is not None:
            attach_run(mlflow_config, existing).reopen()
            self._run_id = existing
            print(f"continuing the sweep in {sweep_dir} (MLflow parent run {existing})")
            return
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
        rule = SelectConfig(**OmegaConf.to_container(config.select, resolve=True))
        selection = select_winner(rows, rule)
        written.append(write_selection(sweep_dir, selection))
        written += write_pareto(sweep_dir, rows)
        print(f"  {selection.headline}")
        if self._run_id is None:
            return
        try:
            mlflow_config = _mlflow_config(config)
            run = attach_run(mlflow_config, self._run_id)
            for path in written:
                run.log_artifact(path)
            run.log_metrics({"jobs": len(rows), "jobs_failed": len(failed), "jobs_skipped": len(skipped)})
            if selection.winner is not None:
                self._record_winner(mlflow_config, run, sweep_dir / str(selection.winner["job"]), selection)
            run.end("FINISHED")
        except TrackingError as exc:
            print(f"warning: {exc} -- the summary is in {sweep_dir}", file=sys.stderr)
