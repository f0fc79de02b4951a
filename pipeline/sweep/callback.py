"""The Hydra callback that makes a multirun one MLflow parent run with a summary of its jobs.

At the start it checks that the sweep folder holds no other sweep (rerunning the same command
into its folder resumes it: pipeline.core.sweep_state), opens the parent run and starts logging
the jobs as they end, from their folders, in this process (pipeline.sweep.job_logging). At the
end it logs the jobs still due, writes the summary, the selection and the Pareto front from the
job folders, makes the parent run whole, marks and registers the winner, and says once which
jobs the store did not take.

A sweep that does not end FINISHED says so in sweep_end.json before Hydra's end-of-sweep
callbacks run (an Optuna search stopped early: FAILED); the parent run ends with that status and
the summary is still written. An interrupt (Ctrl-C, SIGTERM) reaches the top of the process
(pipeline/cli.py), which runs the clean-up registered here: the logging ends after the run it is
making, the jobs that had not ended become KILLED, then sweep_end.json, the parent run and its
running child runs KILLED, then the summary. Ended jobs not logged yet wait for the resume.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.core import interrupts
from pipeline.core.errors import TrackingError
from pipeline.core.files import atomic_write_text
from pipeline.core.job_folder import (
    JOB_FILE,
    SWEEP_FILE,
    SWEEPER_RESULTS_FILE,
    clear_sweep_end,
    now_iso,
    read_json,
    sweep_end,
    write_json,
    write_sweep_end,
)
from pipeline.core.sweep_state import (
    hold_sweep,
    mark_killed,
    release_sweep,
    sweep_difference,
)
from pipeline.options.config import SelectConfig
from pipeline.options.tracking import MlflowConfig
from pipeline.sweep.job_logging import abandon_logging, finish_logging, start_logging
from pipeline.sweep.pareto import write_pareto
from pipeline.sweep.selection import Selection, select_winner, write_selection
from pipeline.sweep.summary import headline_metric, number, summary_columns, sweep_rows, write_sweep_summary
from pipeline.tracking.job_record import JOB_DIR_TAG, tracking_state
from pipeline.tracking.store import CredentialsRefused, Store
from pipeline.tracking.sweep_record import (
    SWEEP_DIR_TAG,
    end_sweep_runs,
    log_sweep_folder,
    sweep_folder,
)

BASE_CONFIG_FILE = "base_config.yaml"


def _swept_on_command_line(overrides: list[str]) -> frozenset[str]:
    """The keys given a sweep (a,b  choice(...)  range(...)  interval(...)) among `overrides`."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return frozenset(o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override())


def swept_keys(config: DictConfig) -> list[str]:
    """The keys whose values differ between the sweep's jobs: swept on the command line (a,b,
    choice(...), range(...)) or in the sweeper's `params` (Optuna's search space)."""
    keys = set(_swept_on_command_line([str(o) for o in config.hydra.overrides.task]))
    keys |= {str(key) for key in config.hydra.sweeper.get("params") or {}}
    # An Optuna search also tries each precision's own options (pipeline.options.search_space).
    if config.hydra.sweeper.get("custom_search_space"):
        keys |= {f"precision.{key}" for key in _precision_option_keys()}
    return sorted(keys)


def _precision_option_keys() -> set[str]:
    from pipeline.options.precisions import PRECISIONS

    return {key for name in PRECISIONS.names() for key in PRECISIONS.get(name).search_options}


def _mlflow_config(config: DictConfig) -> MlflowConfig:
    return MlflowConfig(**cast(dict[str, Any], OmegaConf.to_container(config.mlflow, resolve=True)))


class SweepTracking(Callback):
    # Launchers such as joblib and Ray pickle callbacks into their workers: no state here.

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        overrides = [str(o) for o in config.hydra.overrides.task]
        # A search whose study lives in a storage is shared by design: several processes run its
        # folder at once (docs/search.md). Any other sweep folder is run by one process at a time.
        # Such a search's study records its space, and decides on a resume whether a changed range
        # goes on (hydra_plugins/ernie_optuna_sweeper).
        shared = bool(config.hydra.sweeper.get("storage"))
        busy = None if shared else hold_sweep(sweep_dir)
        left_to_sweeper = _swept_on_command_line(overrides) if shared else frozenset()
        if difference := busy or sweep_difference(sweep_dir, overrides, left_to_sweeper):  # before any write
            print(f"error: {difference}", file=sys.stderr)
            sys.exit(2)
        recorded = read_json(sweep_dir / SWEEP_FILE)
        if recorded is None and (sweep_dir / SWEEP_FILE).is_file():
            print(
                f"warning: {sweep_dir / SWEEP_FILE} was damaged; it is written again from this command "
                "(each job folder's own overrides are still checked)",
                file=sys.stderr,
            )
        # From here an interrupt ends the sweep KILLED (pipeline/cli.py runs this).
        interrupts.on_interrupt(_cleanup_key(sweep_dir), lambda reason: self.interrupted(config, reason))
        earlier = recorded or {}
        sweep_dir.mkdir(parents=True, exist_ok=True)
        clear_sweep_end(sweep_dir)
        base = cast(dict[str, Any], OmegaConf.to_container(config, resolve=False))
        base.pop("hydra", None)
        atomic_write_text(sweep_dir / BASE_CONFIG_FILE, OmegaConf.to_yaml(base))
        record = {
            "overrides": overrides,
            "swept_keys": swept_keys(config),
            "files": [BASE_CONFIG_FILE],
            "started_at": earlier.get("started_at") or now_iso(),  # a resumed sweep keeps its start
        }
        write_json(sweep_dir / SWEEP_FILE, record)
        mlflow_config = _mlflow_config(config)
        if not mlflow_config.enabled:
            return
        try:
            start_logging(mlflow_config, sweep_dir)
        except CredentialsRefused as exc:  # every job would be refused too: say it once, run nothing
            print(f"error: {exc}; nothing ran", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        status = sweep_end(sweep_dir)["status"]
        if status != "KILLED":  # an interrupt's clean-up stays short: the resume logs the rest
            finish_logging(sweep_dir)
        rows = sweep_rows(sweep_dir)
        select = cast(dict[str, Any], OmegaConf.to_container(config.select, resolve=True))
        selection = select_winner(rows, SelectConfig(**select))
        written = [*write_sweep_summary(sweep_dir), write_selection(sweep_dir, selection)]
        written += write_pareto(sweep_dir, rows, headline_metric(rows))
        written += [path for path in [sweep_dir / SWEEPER_RESULTS_FILE] if path.is_file()]
        if status != "KILLED":  # an interrupt ends with one line (pipeline/cli.py)
            _print_outcome(sweep_dir, rows, selection)
        record = sweep_outcome(config, rows, selection, [p.name for p in written])
        write_json(sweep_dir / SWEEP_FILE, record)
        mlflow_config = _mlflow_config(config)
        reasons = []
        if mlflow_config.enabled:
            try:
                # A sweep that ends early ends soon: its store calls give up within seconds.
                log_sweep_folder(mlflow_config, sweep_dir, quick=status != "FINISHED")
                if selection.winner is not None and status == "FINISHED":
                    _record_winner(mlflow_config, sweep_dir, selection)
            except TrackingError as exc:
                reasons.append(str(exc))
        interrupts.done(_cleanup_key(sweep_dir))
        release_sweep(sweep_dir)
        if mlflow_config.enabled and status != "KILLED":
            _report_untracked(sweep_dir, rows, reasons)

    def interrupted(self, config: DictConfig, reason: str) -> interrupts.Stopped:
        """The clean-up after an interrupt, once the launcher has stopped its workers: jobs that had
        not ended KILLED, then the parent run and its running child runs KILLED (before the rest:
        no run is left RUNNING), then the summary of every job so far."""
        sweep_dir = sweep_folder(config.hydra.sweep.dir)
        mlflow_config = _mlflow_config(config)
        abandon_logging(sweep_dir)
        mark_killed(sweep_dir, reason)
        write_sweep_end(sweep_dir, "KILLED", reason)
        if mlflow_config.enabled:
            try:
                end_sweep_runs(mlflow_config, sweep_dir, "KILLED")
            except TrackingError as exc:
                print(
                    f"warning: {exc}; later: python -m pipeline.tracking resync {sweep_dir}", file=sys.stderr
                )
        self.on_multirun_end(config)
        rows = sweep_rows(sweep_dir)
        finished = sum(1 for r in rows if r["status"] == "FINISHED")
        killed = [str(r["job"]) for r in rows if r["status"] == "KILLED"]
        stopped = f"KILLED: job {', '.join(killed)}" if killed else "none was running"
        what = f"sweep {sweep_dir} ({finished} {'job' if finished == 1 else 'jobs'} finished; {stopped})"
        return interrupts.Stopped(what, {"hydra.sweep.dir": str(sweep_dir)})


def _cleanup_key(sweep_dir: Path) -> str:
    return f"sweep {sweep_dir}"


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
    finished = sum(1 for r in rows if r["status"] == "FINISHED")
    print(
        f"sweep {sweep_dir}: {finished} finished, "
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
        values = [value for r in finished if (value := number(r, metric)) is not None]
        return pick(values) if values else None

    winner = selection.winner or {}
    quality = headline_metric(rows)
    metrics = {
        "jobs": len(rows),
        "jobs_failed": sum(1 for r in rows if r["status"] == "FAILED"),
        "jobs_skipped": sum(1 for r in rows if r["status"] == "SKIPPED"),
        "jobs_killed": sum(1 for r in rows if r["status"] == "KILLED"),
        f"best_{quality}": best(quality, max),
        "best_latency_ms": best("latency_ms", min),
        "winner_latency_ms": winner.get("latency_ms"),
        "winner_e2e_ms": winner.get("e2e_ms"),
        f"winner_{quality}": winner.get(quality),
    }
    tags = {"winner_job": str(winner["job"]), "winner_overrides": str(winner["overrides"])} if winner else {}
    sweep_dir = sweep_folder(config.hydra.sweep.dir)
    summary = (sweep_dir / "summary.md").read_text(encoding="utf-8")
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
        "started_at": (read_json(sweep_dir / SWEEP_FILE) or {}).get("started_at"),
        "ended_at": now_iso(),
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
