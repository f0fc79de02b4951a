"""One Hydra job: validate, run its stages into the job folder, record how it ended, then (a single
run) make the folder its MLflow run. Tracking comes last and apart: a store that fails loses no
work. A sweep's jobs leave their runs to the sweep's own process (pipeline.sweep.job_logging):
its workers never import MLflow.

Ctrl-C or SIGTERM at any moment of the job (pipeline.core.interrupts) records it KILLED, ends its
run KILLED where logging had begun, and raises Interrupted: run.py prints one line and exits
130 or 143; in a sweep the sweep's own clean-up follows (pipeline.sweep.callback).
"""

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

from pipeline.core import interrupts
from pipeline.core.errors import ConfigError, PipelineError, TrackingError, UnsupportedCombination
from pipeline.core.files import write_error
from pipeline.core.job_folder import (
    TRACKING_FILE,
    job_name,
    job_status,
    start_job,
    swept_names,
    write_job_status,
    write_json,
)
from pipeline.core.sweep_state import job_ended
from pipeline.options.config import Config, validate
from pipeline.options.paths import check_paths
from pipeline.options.tracking import MlflowConfig
from pipeline.runner.evaluate import evaluate_job
from pipeline.runner.predict import predict_job
from pipeline.runner.record import begin_record
from pipeline.tracking.job_record import end_job_run, log_job_folder, tracking_state

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str  # FINISHED | FAILED | SKIPPED
    config: Config | None = None
    error: str = ""
    metrics: dict = field(default_factory=dict)
    bug: BaseException | None = None  # an unexpected exception: a single run shows its traceback
    tracking_error: TrackingError | None = None  # the store did not take the run; the files are kept


@dataclass
class Attempt:
    """The job running in `job_dir`, as an interrupt's clean-up needs it."""

    job_dir: Path
    name: str
    mlflow: MlflowConfig | None = None  # set once logging begins: there may be a run to end

    def stop(self, reason: str) -> interrupts.Stopped:
        """KILLED, unless the job had ended (and been logged, where it logs itself); its run KILLED
        where logging had begun. Bounded: the store's calls end within seconds, and further
        signals wait for the end of it."""
        with interrupts.deferred(raise_last=False):
            logging_cut = self.mlflow is not None and "run_id" not in tracking_state(self.job_dir)
            if logging_cut or not job_ended(self.job_dir):
                write_job_status(self.job_dir, "KILLED", reason)
                if self.mlflow is not None:
                    try:
                        end_job_run(self.job_dir, self.mlflow, "KILLED")
                    except TrackingError as exc:
                        log.warning("the interrupted job's run was not marked KILLED: %s", exc)
        status = job_status(self.job_dir)["status"]
        return interrupts.Stopped(f"job {self.name} in {self.job_dir} ({status})")


def run_job(cfg: DictConfig) -> float | list[float] | None:
    """Returns the `objectives` metrics (for sweepers that optimise them), or None for a job that
    failed or was skipped. A failing single run exits 2 with one line on stderr; in a sweep the
    job is recorded and the sweep goes on. An interrupt raises interrupts.Interrupted."""
    hydra = HydraConfig.get()
    job_dir = Path(hydra.runtime.output_dir).absolute()
    multirun = hydra.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra.sweep.dir).absolute() if multirun else None
    # A sweep's jobs are named by what they sweep; the overrides they share are in the parent run.
    overrides = swept_names(list(hydra.overrides.task), sweep_dir)
    # Also in a joblib or Ray worker, which runs jobs in its main thread.
    with interrupts.handled():
        return _attempt(cfg, Attempt(job_dir, job_name(overrides)), overrides, multirun, sweep_dir)


def _attempt(
    cfg: DictConfig, attempt: Attempt, overrides: list[str], multirun: bool, sweep_dir: Path | None
) -> float | list[float] | None:
    interrupts.forget()
    key = f"job {attempt.job_dir}"
    # Where the job runs in the process that started it, its clean-up also runs at the top of it
    # (pipeline/cli.py), should a second signal cut the one below short.
    interrupts.on_interrupt(key, attempt.stop)
    interrupted = False
    try:
        start_job(attempt.job_dir)
        outcome = _run(cfg, attempt, overrides, multirun, sweep_dir)
        _report(outcome, attempt.name, attempt.job_dir, multirun)
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        interrupted = True
        signum = interrupts.signal_of(exc)
        stopped = attempt.stop(f"interrupted by {interrupts.NAMES[signum]}")
        interrupts.done(key)
        raise interrupts.Interrupted(signum, stopped.what) from None
    finally:
        if not interrupted:
            interrupts.done(key)
    return _objectives(outcome)


def _run(
    cfg: DictConfig, attempt: Attempt, overrides: list[str], multirun: bool, sweep_dir: Path | None
) -> Outcome:
    checked = _validated(cfg, attempt.job_dir, multirun)
    if isinstance(checked, Outcome):
        write_job_status(attempt.job_dir, checked.status, checked.error)
        return checked
    composed = OmegaConf.to_yaml(cfg, resolve=True)
    return execute(checked, attempt.job_dir, overrides, composed, sweep_dir, attempt)


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
    config: Config,
    job_dir: Path,
    overrides: list[str],
    composed_yaml: str,
    sweep_dir: Path | None = None,
    attempt: Attempt | None = None,
) -> Outcome:
    """Runs a valid config's stages into `job_dir`, writes how the job ended, then, outside a sweep
    (`sweep_dir` None), logs the folder as its MLflow run."""
    outcome = Outcome("FAILED", config)
    try:
        begin_record(config, job_dir, overrides, composed_yaml)
        run = predict_job if config.mode == "predict" else evaluate_job
        outcome.metrics = run(config, job_dir)
        outcome.status = "FINISHED"
    except PipelineError as exc:
        interrupts.raise_if_received()  # a library turned the interrupt into an error
        outcome.error = str(exc)
    except Exception as exc:
        interrupts.raise_if_received()
        if isinstance(exc, OSError) and (error := write_error(exc)) is not None:
            outcome.error = str(error)  # a full disk or a read-only folder, met by a library's own write
        else:
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.bug = exc
            if sweep_dir is not None:
                log.error("job %s failed:\n%s", job_dir.name, traceback.format_exc())
    where = f" [host {platform.node()}]" if sweep_dir is not None and outcome.status == "FAILED" else ""
    write_job_status(job_dir, outcome.status, outcome.error + where)
    if config.mlflow.enabled and sweep_dir is None:
        if attempt is not None:
            attempt.mlflow = config.mlflow
        outcome.tracking_error = _track(config, job_dir, outcome.status)
    return outcome


def _track(config: Config, job_dir: Path, status: str) -> TrackingError | None:
    try:
        run_id = log_job_folder(job_dir, config.mlflow)
        name = config.mlflow.registered_model_name
        if name and status == "FINISHED":
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
