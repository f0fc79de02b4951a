"""One Hydra job: validate, run, and record how it ended (for the sweep summary and the shell)."""

from __future__ import annotations

import logging
import platform
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline.config import Config, validate
from pipeline.errors import PipelineError, TrackingError, UnsupportedCombination
from pipeline.job_files import write_job_status
from pipeline.runner import run_experiment, run_prediction
from pipeline.tracking.mlflow_runs import run_name
from pipeline.tracking.run_process import RunProcess
from pipeline.tracking.sweep import parent_run_id

log = logging.getLogger(__name__)


def _parent_run(config: Config, sweep_dir: str) -> str | None:
    """The sweep's parent run; where the store cannot say, the job's own run reports that."""
    try:
        return parent_run_id(config.mlflow, sweep_dir)
    except TrackingError:
        return None


def _where(multirun: bool) -> str:
    """Sweep jobs may run on other machines: a failure names the host it happened on."""
    return f" [host {platform.node()}]" if multirun else ""


def run_job(cfg: DictConfig, tracking_helper: RunProcess | None = None) -> float | list[float] | None:
    """Returns the `objectives` metrics (for sweepers that optimise them), or None for a failed job.

    A failing job in a sweep is recorded and the sweep goes on; a failing single run exits 2
    with one line on stderr. A single tracked run has `tracking_helper` (run.py's) write its run.
    """
    hydra = HydraConfig.get()
    output_dir = Path(hydra.runtime.output_dir)
    multirun = hydra.mode == RunMode.MULTIRUN
    name = run_name(list(hydra.overrides.task))
    try:
        config = validate(cfg)
        if tracking_helper is not None and (multirun or not config.mlflow.enabled):
            tracking_helper.discard()  # a sweep's jobs log in-process: one MLflow import for them all
            tracking_helper = None
        if multirun and config.skip_unavailable_device and (reason := config.device.unavailable_reason()):
            write_job_status(output_dir, "SKIPPED", reason)
            print(f"skipped {name}: {reason.split(';')[0].split('. ')[0]}")
            return None
        composed = OmegaConf.to_yaml(cfg, resolve=True)
        parent = _parent_run(config, hydra.sweep.dir) if multirun else None
        if config.mode == "predict":
            metrics = run_prediction(
                config, output_dir, composed, name, parent_run_id=parent, tracking_helper=tracking_helper
            )
        else:
            # A sweep registers only its winner (pipeline.tracking.sweep), not every job.
            metrics = run_experiment(
                config,
                output_dir,
                composed,
                name,
                parent_run_id=parent,
                register=not multirun,
                tracking_helper=tracking_helper,
            )
    except UnsupportedCombination as exc:
        if not multirun:
            write_job_status(output_dir, "FAILED", str(exc))
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        write_job_status(output_dir, "SKIPPED", str(exc))
        print(f"skipped {name}: {exc}")
        return None
    except PipelineError as exc:
        kept = f"; the job's files are in {output_dir}" if isinstance(exc, TrackingError) else ""
        write_job_status(output_dir, "FAILED", f"{exc}{_where(multirun)}")
        print(f"error: {exc}{kept}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except Exception as exc:
        write_job_status(output_dir, "FAILED", f"{type(exc).__name__}: {exc}{_where(multirun)}")
        if not multirun:
            raise
        log.error("job %s failed:\n%s", name, traceback.format_exc())
        return None
    write_job_status(output_dir, "FINISHED")
    if config.mode == "predict":
        m = metrics
        print(
            f"{name}: {m['rows']} rows from {m['input_lines']} lines in {m['wall_s']:.1f} s "
            f"({m['lines_per_s']:.0f} lines/s, peak RSS {m['peak_rss_mb']:.0f} MB) -> {m['output']}"
        )
        return None
    quality = (
        "accuracy n/a (random weights)"
        if config.model.weights == "random"
        else f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}"
    )
    print(
        f"{name}: {quality}  latency {metrics['latency_ms']:.3f} ms/sample  "
        f"e2e {metrics['e2e_ms']:.3f} ms/sample  ({metrics['n_samples']} samples) -> {output_dir}"
    )
    values = [float(metrics[name]) for name in config.objectives if name in metrics]
    if len(values) != len(config.objectives):
        missing = [name for name in config.objectives if name not in metrics]
        print(f"error: objectives {missing} are not metrics of this job", file=sys.stderr)
        return None
    return values[0] if len(values) == 1 else values
