"""The Hydra callback that makes a multirun one MLflow parent run with a summary of its jobs.

At the start it opens the parent run (jobs nest under it by its `sweep_dir` tag); at the end it
writes the summary, the selection and the Pareto front from the job folders, makes the parent
run whole, marks and registers the winner, and says once which jobs the store did not take.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.core.errors import TrackingError
from pipeline.core.files import atomic_write_text
from pipeline.core.job_folder import JOB_FILE, SWEEP_FILE, write_json
from pipeline.options.config import SelectConfig
from pipeline.options.tracking import MlflowConfig
from pipeline.sweep.pareto import write_pareto
from pipeline.sweep.selection import Selection, select_winner, write_selection
from pipeline.sweep.summary import headline_metric, summary_columns, sweep_rows, write_sweep_summary
from pipeline.tracking.job_record import JOB_DIR_TAG, tracking_state
from pipeline.tracking.store import CredentialsRefused, Store
from pipeline.tracking.sweep_record import SWEEP_DIR_TAG, log_sweep_folder, open_sweep_run, sweep_folder

BASE_CONFIG_FILE = "base_config.yaml"


def swept_keys(config: DictConfig) -> list[str]:
    """The keys whose values differ between the sweep's jobs: swept on the command line (a,b,
    choice(...), range(...)) or in the sweeper's `params` (Optuna's search space)."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
    keys = {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}
    keys |= {str(key) for key in config.hydra.sweeper.get("params") or {}}
    # An Optuna search also tries each precision's own options (pipeline.options.search_space).
    if config.hydra.sweeper.get("custom_search_space"):
        keys |= {f"precision.{key}" for key in _precision_option_keys()}
    return sorted(keys)


def _precision_option_keys() -> set[str]:
    from pipeline.options.precisions import PRECISIONS

    return {key for name in PRECISIONS.names() for key in PRECISIONS.get(name).search_options}


def _mlflow_config(config: DictConfig) -> MlflowConfig:
    return MlflowConfig(**OmegaConf.to_container(config.mlflow, resolve=True))


class SweepTracking(Callback):
    # Launchers such as joblib and Ray pickle callbacks into their workers: no state here.

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        base = OmegaConf.to_container(config, resolve=False)
        base.pop("hydra", None)
        atomic_write_text(sweep_dir / BASE_CONFIG_FILE, OmegaConf.to_yaml(base))
        overrides = [str(o) for o in config.hydra.overrides.task]
        record = {"overrides": overrides, "swept_keys": swept_keys(config), "files": [BASE_CONFIG_FILE]}
        write_json(sweep_dir / SWEEP_FILE, record)
        mlflow_config = _mlflow_config(config)
        if not mlflow_config.enabled:
            return
        try:
            run_id, existed = open_sweep_run(mlflow_config, sweep_dir, reopen=True)
        except CredentialsRefused as exc:  # every job would be refused too: say it once, run nothing
            print(f"error: {exc}; nothing ran", file=sys.stderr)
            sys.exit(2)
        except TrackingError as exc:
            print(f"warning: {exc} -- the sweep runs on; its folders keep every result", file=sys.stderr)
            return
        if existed:
            print(f"continuing the sweep in {sweep_dir} (MLflow parent run {run_id})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        selection = select_winner(rows, SelectConfig(**OmegaConf.to_container(config.select, resolve=True)))
        written = [*write_sweep_summary(sweep_dir), write_selection(sweep_dir, selection)]
        written += write_pareto(sweep_dir, rows, headline_metric(rows))
        _print_outcome(sweep_dir, rows, selection)
        record = sweep_outcome(config, rows, selection, [p.name for p in written])
        write_json(sweep_dir / SWEEP_FILE, record)
        mlflow_config = _mlflow_config(config)
        if not mlflow_config.enabled:
            return
        reasons = []
        try:
            log_sweep_folder(mlflow_config, sweep_dir)
            if selection.winner is not None:
                _record_winner(mlflow_config, sweep_dir, selection)
        except TrackingError as exc:
            reasons.append(str(exc))
        _report_untracked(sweep_dir, rows, reasons)


def _report_untracked(sweep_dir: Path, rows: list[dict[str, object]], reasons: list[str]) -> None:
    """One line for every job (and the parent run) the store did not take, with the first reason."""
    # Jobs that ran (SKIPPED jobs and invalid configs have no run to record).
    ran = [str(r["job"]) for r in rows if (sweep_dir / str(r["job"]) / JOB_FILE).is_file()]
    states = {job: tracking_state(sweep_dir / job) for job in ran}
    untracked = [job for job, state in states.items() if "run_id" not in state]
    reasons += [state["error"] for job, state in states.items() if "error" in state and job in untracked]
    if not untracked and not reasons:
        return
    what = f"jobs {', '.join(untracked)} of this sweep" if untracked else "the sweep's parent run"
    print(
        f"error: the MLflow store did not take {what} ({reasons[0] if reasons else 'no reason recorded'}); "
        f"their files are kept: python -m pipeline.tracking resync {sweep_dir}",
        file=sys.stderr,
    )
    sys.exit(2)


def _print_outcome(sweep_dir: Path, rows: list[dict[str, object]], selection: Selection) -> None:
    failed = [r for r in rows if r["status"] == "FAILED"]
    skipped = [r for r in rows if r["status"] == "SKIPPED"]
    print(
        f"sweep {sweep_dir}: {len(rows) - len(failed) - len(skipped)} finished, "
        f"{len(failed)} failed, {len(skipped)} skipped; summary in {sweep_dir / 'summary.md'}"
    )
    for row in failed:
        print(f"  FAILED {row['overrides']}: {row['error']}")
    print(f"  {selection.headline}")


def sweep_outcome(
    config: DictConfig, rows: list[dict[str, object]], selection: Selection, files: list[str]
) -> dict[str, Any]:
    """sweep.json at the end: what the parent run shows (headline metrics, tags, description, tables)."""
    finished = [r for r in rows if r["status"] == "FINISHED"]

    def best(metric: str, pick: Any) -> float | None:
        values = [float(r[metric]) for r in finished if isinstance(r.get(metric), int | float)]
        return pick(values) if values else None

    winner = selection.winner or {}
    quality = headline_metric(rows)
    metrics = {
        "jobs": len(rows),
        "jobs_failed": sum(1 for r in rows if r["status"] == "FAILED"),
        "jobs_skipped": sum(1 for r in rows if r["status"] == "SKIPPED"),
        f"best_{quality}": best(quality, max),
        "best_latency_ms": best("latency_ms", min),
        "winner_latency_ms": winner.get("latency_ms"),
        "winner_e2e_ms": winner.get("e2e_ms"),
        f"winner_{quality}": winner.get(quality),
    }
    tags = {"winner_job": str(winner["job"]), "winner_overrides": str(winner["overrides"])} if winner else {}
    summary = (sweep_folder(config.hydra.sweep.dir) / "summary.md").read_text(encoding="utf-8")
    note = "\n\n".join(["\n".join(f"- {line}" for line in selection.reasons), summary])
    table = [{column: row.get(column) for column in summary_columns(rows)} for row in rows]
    return {
        "overrides": [str(o) for o in config.hydra.overrides.task],
        "swept_keys": swept_keys(config),
        "files": [BASE_CONFIG_FILE, *files],
        "metrics": {k: v for k, v in metrics.items() if v is not None},
        "tags": tags,
        "note": note,
        "tables": {"summary_table.json": table},
    }


def _record_winner(cfg: MlflowConfig, sweep_dir: Path, selection: Selection) -> None:
    """Tags the winner's run and, with mlflow.registered_model_name, registers its model as `champion`."""
    winner = selection.winner or {}
    job_dir = sweep_dir / str(winner["job"])
    store = Store(cfg)
    found = store.find_run(JOB_DIR_TAG, str(job_dir.absolute()))
    if found is None:
        return
    store.run(found.info.run_id).set_tags({"sweep_winner": "true"})
    parent = store.find_run(SWEEP_DIR_TAG, str(sweep_dir))
    if parent is not None:
        store.run(parent.info.run_id).set_tags({"winner_run_id": found.info.run_id})
    if not cfg.registered_model_name:
        return
    from pipeline.tracking.models import CHAMPION, register_job_model

    try:
        version = register_job_model(job_dir, cfg, found.info.run_id, cfg.registered_model_name, CHAMPION)
    except TrackingError as exc:  # e.g. the winner ran on an engine the served model does not use
        print(f"  the winner is not registered: {exc}")
        return
    if parent is not None:
        store.run(parent.info.run_id).set_tags({"registered_version": version})
    print(f"  registered the winner as models:/{cfg.registered_model_name}@{CHAMPION} (version {version})")
