"""Hydra callback that makes a multirun one MLflow parent run with a summary of its jobs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.cache import atomic_write_text
from pipeline.config import MlflowConfig
from pipeline.tracking.mlflow_runs import attach_run, environment_tags, start_run
from pipeline.tracking.reports import sweep_rows, write_sweep_summary

log = logging.getLogger(__name__)
PARENT_RUN_FILE = "mlflow_parent_run.json"


def parent_run_id(sweep_dir: Path) -> str | None:
    """The sweep's parent run, for a job of that sweep to attach to."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


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
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        swept = list(config.hydra.overrides.task)
        tags = {
            **environment_tags(),
            "sweep_dir": str(sweep_dir.resolve()),
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
        atomic_write_text(sweep_dir / PARENT_RUN_FILE, json.dumps({"run_id": run.run_id}) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
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
        run = attach_run(_mlflow_config(config), self._run_id)
        for path in written:
            run.log_artifact(path)
        run.log_metrics({"jobs": len(rows), "jobs_failed": len(failed), "jobs_skipped": len(skipped)})
        run.end("FINISHED")
