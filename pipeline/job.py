"""One Hydra job: validate, run its stages into the job folder, record how it ended, then make
the folder its MLflow run. Tracking comes last and apart: a store that fails loses no work."""

from __future__ import annotations

import logging
import platform
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline.core.errors import ConfigError, PipelineError, TrackingError, UnsupportedCombination
from pipeline.core.job_folder import (
    TRACKING_FILE,
    job_name,
    swept_names,
    write_job_status,
    write_json,
)
from pipeline.options.config import Config, validate
from pipeline.options.paths import check_paths
from pipeline.runner.evaluate import evaluate_job
from pipeline.runner.predict import predict_job
from pipeline.runner.record import begin_record
from pipeline.tracking.job_record import log_job_folder, tracking_state

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str  # FINISHED | FAILED | SKIPPED
    config: Config | None = None
    error: str = ""
    metrics: dict = field(default_factory=dict)
    bug: BaseException | None = None  # an unexpected exception: a single run shows its traceback
    tracking_error: TrackingError | None = None  # the store did not take the run; the files are kept


def run_job(cfg: DictConfig) -> float | list[float] | None:
    """Returns the `objectives` metrics (for sweepers that optimise them), or None for a job that
    failed or was skipped. A failing single run exits 2 with one line on stderr; in a sweep the
    job is recorded and the sweep goes on."""
    hydra = HydraConfig.get()
    job_dir = Path(hydra.runtime.output_dir).absolute()
    multirun = hydra.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra.sweep.dir).absolute() if multirun else None
    # A sweep's jobs are named by what they sweep; the overrides they share are in the parent run.
    overrides = swept_names(list(hydra.overrides.task), sweep_dir)
    checked = _validated(cfg, job_dir, multirun)
    if isinstance(checked, Outcome):
        write_job_status(job_dir, checked.status, checked.error)
        outcome = checked
    else:
        outcome = execute(checked, job_dir, overrides, OmegaConf.to_yaml(cfg, resolve=True), sweep_dir)
    _report(outcome, job_name(overrides), job_dir, multirun)
    return _objectives(outcome)


def _validated(cfg: DictConfig, job_dir: Path, multirun: bool) -> Config | Outcome:
    """The config, or the outcome of a job that cannot run: FAILED, or SKIPPED in a sweep."""
    try:
        config = validate(cfg)
        check_paths(config, job_dir)
        if not multirun and config.mlflow.registered_model_name and config.engine.name != "onnxruntime":
            raise ConfigError(
                "mlflow.registered_model_name: the served model runs on ONNX Runtime; "
                f"engine={config.engine.name} jobs are measured but not registered (use engine=onnxruntime)"
            )
    except UnsupportedCombination as exc:
        return Outcome("SKIPPED" if multirun else "FAILED", error=str(exc))
    except PipelineError as exc:
        return Outcome("FAILED", error=str(exc))
    reason = (
        config.engine.unavailable_reason(config.device)
        if multirun and config.skip_unavailable_device
        else None
    )
    if reason:
        return Outcome("SKIPPED", config, reason.split(";")[0].split(". ")[0])
    return config


def execute(
    config: Config, job_dir: Path, overrides: list[str], composed_yaml: str, sweep_dir: Path | None = None
) -> Outcome:
    """Runs a valid config's stages into `job_dir`, writes how the job ended, then logs the folder
    as its MLflow run (nested under the sweep's parent run where `sweep_dir` has one)."""
    outcome = Outcome("FAILED", config)
    try:
        begin_record(config, job_dir, overrides, composed_yaml)
        run = predict_job if config.mode == "predict" else evaluate_job
        outcome.metrics = run(config, job_dir)
        outcome.status = "FINISHED"
    except PipelineError as exc:
        outcome.error = str(exc)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.bug = exc
        if sweep_dir is not None:
            log.error("job %s failed:\n%s", job_dir.name, traceback.format_exc())
    where = f" [host {platform.node()}]" if sweep_dir is not None and outcome.status == "FAILED" else ""
    write_job_status(job_dir, outcome.status, outcome.error + where)
    if config.mlflow.enabled:
        outcome.tracking_error = _track(config, job_dir, sweep_dir, outcome.status)
    return outcome


def _track(config: Config, job_dir: Path, sweep_dir: Path | None, status: str) -> TrackingError | None:
    try:
        run_id = log_job_folder(job_dir, config.mlflow)
        name = config.mlflow.registered_model_name
        if sweep_dir is None and name and status == "FINISHED":
            from pipeline.tracking.models import register_job_model

            version = register_job_model(job_dir, config.mlflow, run_id, name)
            print(f"registered {name} version {version}: models:/{name}/{version}")
    except TrackingError as exc:
        if "error" not in tracking_state(job_dir):
            write_json(
                job_dir / TRACKING_FILE, {"tracking_uri": config.mlflow.tracking_uri, "error": str(exc)}
            )
        return exc
    return None


def _report(outcome: Outcome, name: str, job_dir: Path, multirun: bool) -> None:
    if outcome.status == "SKIPPED":
        print(f"skipped {name}: {outcome.error}")
        return
    if outcome.status == "FAILED":
        if multirun:
            return  # the sweep's summary lists it
        if outcome.bug is not None:
            raise outcome.bug
        print(f"error: {outcome.error}", file=sys.stderr)
        sys.exit(2)
    print(_result_line(outcome, name, job_dir))
    if multirun:
        return  # the sweep reports its store's failures once, at its end
    if outcome.tracking_error is not None:
        print(f"error: {outcome.tracking_error}; the job's files are in {job_dir}", file=sys.stderr)
        sys.exit(2)
    if page := tracking_state(job_dir).get("runs_page"):
        print(f"MLflow: {page}")


def _result_line(outcome: Outcome, name: str, job_dir: Path) -> str:
    m, config = outcome.metrics, outcome.config
    assert config is not None
    if config.mode == "predict":
        return (
            f"{name}: {m['rows']} rows from {m['input_lines']} lines in {m['wall_s']:.1f} s "
            f"({m['lines_per_s']:.0f} lines/s, peak RSS {m['peak_rss_mb']:.0f} MB) -> {m['output']}"
        )
    headline = config.task.headline_metric
    quality = (
        f"{headline} n/a (random weights)"
        if config.model.weights == "random"
        else "  ".join(f"{name} {m[name]:.4f}" for name in dict.fromkeys([headline, "macro_f1"]))
    )
    return (
        f"{name}: {quality}  latency {m['latency_ms']:.3f} ms/sample  "
        f"e2e {m['e2e_ms']:.3f} ms/sample  ({m['n_samples']} samples) -> {job_dir}"
    )


def _objectives(outcome: Outcome) -> float | list[float] | None:
    """What an optimising sweeper is told: evaluate jobs' `objectives` metrics (a prediction has none)."""
    if outcome.status != "FINISHED" or outcome.config is None or outcome.config.mode == "predict":
        return None
    names = outcome.config.objectives
    missing = [n for n in names if n not in outcome.metrics]
    if missing:
        print(f"error: objectives {missing} are not metrics of this job")
        return None
    values = [float(outcome.metrics[n]) for n in names]
    return values[0] if len(values) == 1 else values
